"""Cinder volume driver of the lab's "file" backend (the kernel here has no device-mapper).

It is Cinder's own NFS driver (cinder.volume.drivers.nfs.NfsDriver), pointed at a loop-mounted
local ext4 file system that stands in for the NFS share. One behaviour is changed: the upstream
driver hands snapshots of *attached* volumes to Nova ("assisted volume snapshots"), which only
the libvirt driver implements. With Nova's fake driver nothing opens the volume files, so the
driver's offline code paths are correct for attached volumes too. Without this, snapshots of
in-use volumes (and of volume-backed servers) stay "creating" forever.

OSMLAB_CINDER_SHIM=0 makes lab/up use the unmodified NfsDriver instead.
"""
from cinder.volume.drivers import nfs


class LabNfsDriver(nfs.NfsDriver):
    """NfsDriver that treats attached volumes like detached ones."""

    def _is_volume_attached(self, volume):
        return False
