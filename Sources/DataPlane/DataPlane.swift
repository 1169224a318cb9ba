// DataPlane
