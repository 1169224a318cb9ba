# Shared by the CGI scripts: the block device whose virtio serial starts with $1 (a volume id; the
# guest sees its first 20 characters).
param() { echo "$QUERY_STRING" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n1 | tr -cd 'A-Za-z0-9-'; }
disk_by_serial() {
  want=$(echo "$1" | cut -c1-20)
  [ -n "$want" ] || return 1
  for b in /sys/block/vd*; do
    [ "$(cat "$b/serial" 2>/dev/null)" = "$want" ] && { echo "/dev/${b##*/}"; return 0; }
  done
  return 1
}
reply() { printf 'Content-Type: text/plain\r\n\r\n%s\n' "$*"; }
# The reply when the request's serial names no disk: d=$(disk_by_serial "$(param serial)") || no_disk
no_disk() {
  printf 'Status: 404\r\n'
  reply "no disk with that serial"
  exit 0
}
# One line per virtio disk: "vda serial=... bytes=..." (also the console's OSMLAB-DISK lines).
list_disks() {
  for b in /sys/block/vd*; do
    [ -e "$b" ] || continue
    echo "${b##*/} serial=$(cat "$b/serial" 2>/dev/null) bytes=$(($(cat "$b/size") * 512))"
  done
}
