# Sourced by the scripts: the Swift toolchain first on PATH (Debian's python-swiftclient
# installs an unrelated /usr/bin/swift), where the lab's clouds.yaml is, and the packages the
# tests and the demo need besides the lab's own.
export PATH=/opt/swift/usr/bin:$PATH
export OSMLAB_STATE="${OSMLAB_STATE:-/var/lib/osmlab}"
export OSM_LAB_CLOUDS="${OSM_LAB_CLOUDS:-$OSMLAB_STATE/clouds.yaml}"

# ensure_packages PKG...: apt-get install what is missing (Debian 12, root).
ensure_packages() {
  local missing
  missing=$(for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  [ -n "$missing" ] || return 0
  echo "installing: $(echo $missing)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}
# What the data plane and its tests run besides the lab: ssh both ways, qemu-img, nbdkit/nbdcopy
# (the anchors of the transfer tests and benchmarks), debootstrap (the old-glibc agent test).
TEST_PACKAGES="openssh-server openssh-client qemu-utils nbdkit libnbd-bin debootstrap"
