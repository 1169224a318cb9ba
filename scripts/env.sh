# Sourced by the scripts: the Swift toolchain first on PATH (Debian's python-swiftclient
# installs an unrelated /usr/bin/swift), and where the lab's clouds.yaml is.
export PATH=/opt/swift/usr/bin:$PATH
export OSLAB_DIR="${OSLAB_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/oslab}"
export OSM_LAB_CLOUDS="${OSM_LAB_CLOUDS:-/var/lib/oslab/clouds.yaml}"
