#!/usr/bin/env bash
# Memory benchmark: migrate one image of SIZE (default 2 GiB) of random data between two
# throw-away lab tenants, streamed source Glance -> destination Glance, and report the peak
# resident memory of the `os-migrate import` process (GNU time) and the throughput.
#
#   bench/images/run.sh [SIZE]        SIZE as for head -c (2G, 500M)
#
# Needs the lab (scripts/lab-up) and the `openstack` CLI. Uses $OSM_BINARY, else the debug build
# in .build-res (built if missing). Everything it creates (projects osmt-bench-*, their users,
# images) is deleted on exit, whatever happens. The goal: peak RSS under 100 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
SIZE="${1:-2G}"
BIN="${OSM_BINARY:-$PWD/.build-res/debug/os-migrate}"
if [ ! -x "$BIN" ]; then swift build --scratch-path .build-res --product os-migrate >&2; fi
[ -x /usr/bin/time ] || { echo "bench: GNU time (/usr/bin/time) is needed" >&2; exit 2; }

WORK="$(mktemp -d /tmp/osm-bench-images.XXXXXX)"
TAG="osmt-bench-$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PASS="P$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')-x"
ADMIN=(env OS_CLIENT_CONFIG_FILE="$OSM_LAB_CLOUDS" openstack --os-cloud osmlab-admin)
export OS_CLIENT_CONFIG_FILE="$OSM_LAB_CLOUDS"

cleanup() {
  set +e
  for s in src dst; do
    # Images the tenant owns (the listing also shows the lab's public images: not those).
    for id in $("${ADMIN[@]}" image list --long -f value -c ID -c Project 2>/dev/null \
                 | awk -v p="$(cat "$WORK/$s.project" 2>/dev/null)" 'p != "" && $2 == p {print $1}'); do
      "${ADMIN[@]}" image delete "$id" >/dev/null 2>&1
    done
    "${ADMIN[@]}" user delete "$TAG-$s" >/dev/null 2>&1
    "${ADMIN[@]}" project delete "$TAG-$s" >/dev/null 2>&1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

for s in src dst; do
  "${ADMIN[@]}" project create "$TAG-$s" --description "os-migrate image benchmark; safe to delete" -f value -c id > "$WORK/$s.project"
  "${ADMIN[@]}" user create "$TAG-$s" --password "$PASS" --project "$TAG-$s" -f value -c id >/dev/null
  "${ADMIN[@]}" role add --user "$TAG-$s" --project "$TAG-$s" member
done
umask 077
{
  echo "clouds:"
  for s in src dst; do
    cat <<EOT
  $s:
    auth: {auth_url: 'http://127.0.0.1:5000/v3', username: '$TAG-$s', password: '$PASS', project_name: '$TAG-$s', user_domain_name: Default, project_domain_name: Default}
    region_name: RegionOne
    identity_api_version: 3
EOT
  done
} > "$WORK/clouds.yaml"
export OS_CLIENT_CONFIG_FILE="$WORK/clouds.yaml"

echo "bench: writing $SIZE of random data and uploading it to the source tenant" >&2
head -c "$SIZE" /dev/urandom > "$WORK/image.raw"
BYTES=$(stat -c %s "$WORK/image.raw")
openstack --os-cloud src image create bench-image --file "$WORK/image.raw" --disk-format raw --container-format bare >/dev/null
rm -f "$WORK/image.raw"
SRC_MD5=$(openstack --os-cloud src image show bench-image -f value -c checksum)

"$BIN" export images --src-cloud src --data-dir "$WORK/data" >/dev/null
echo "bench: importing (streamed from the source Glance to the destination Glance)" >&2
/usr/bin/time -v -o "$WORK/time.txt" "$BIN" import images --src-cloud src --dst-cloud dst --data-dir "$WORK/data" --json > "$WORK/import.out"
DST_MD5=$(openstack --os-cloud dst image show bench-image -f value -c checksum)
RSS_KB=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$WORK/time.txt")
WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
SECS=$(echo "$WALL" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
RECAP=$(grep '"event":"recap"' "$WORK/import.out")

echo "image size:        $BYTES bytes ($SIZE)"
echo "checksums:         source $SRC_MD5, destination $DST_MD5 $([ "$SRC_MD5" = "$DST_MD5" ] && echo '(equal)' || echo '(DIFFER)')"
echo "import wall time:  $WALL ($(awk -v b="$BYTES" -v s="$SECS" 'BEGIN { printf "%.1f MiB/s", b/1048576/s }'))"
echo "peak RSS:          $((RSS_KB / 1024)) MiB ($RSS_KB kB; goal: under 100 MB)"
echo "recap:             $RECAP"
[ "$SRC_MD5" = "$DST_MD5" ] && [ "$RSS_KB" -lt 97656 ]
