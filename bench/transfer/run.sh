#!/bin/sh
# Data-plane benchmark (issue 4): our copy vs nbdcopy / qemu-img convert reading
# `qemu-nbd --read-only` through `ssh -L`, on the same disks and the same private sshd.
#
#   sudo bench/transfer/run.sh                       # full run: 4 GiB sparse5/half50/zero50, 2 GiB dense
#   sudo BIG_MIB=512 DENSE_MIB=256 bench/transfer/run.sh    # quick run
#   sudo DISKS="dense" SECTIONS="copy" REPS=3 bench/transfer/run.sh
#   sudo BIN=/path/to/os-migrate bench/transfer/run.sh      # skip the build
#
# Needs: openssh-server openssh-client qemu-utils libnbd-bin python3 (INSTALL=1 apt-installs them).
# Root is needed for sshd on a loopback port as root and for dropping the page cache.
# Knobs (see bench.py): SCRATCH BIG_MIB DENSE_MIB DISKS REPS SECTIONS DROP_CACHES KEEP_DISKS EXTRA REPORT PRIORITY
# (PRIORITY=1, the default, runs the race in its own cgroup v1 cpu group with high cpu.shares and
# reports that group's CPU time, so a busy shared machine distorts it less).
# Writes the tables to stdout and to bench/transfer/last-run.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ "${INSTALL:-0}" = 1 ]; then
    apt-get install -y openssh-server openssh-client qemu-utils libnbd-bin python3
fi
for tool in sshd:/usr/sbin/sshd ssh:ssh qemu-nbd:qemu-nbd nbdcopy:nbdcopy qemu-img:qemu-img python3:python3; do
    name=${tool%%:*}; path=${tool#*:}
    command -v "$path" >/dev/null 2>&1 || [ -x "$path" ] || { echo "missing $name (INSTALL=1 installs it)" >&2; exit 1; }
done

if [ -z "${BIN:-}" ]; then
    # /usr/bin/swift may be OpenStack's client: prefer the toolchain.
    PATH=/opt/swift/usr/bin:$PATH
    (cd "$root" && swift build -c release --scratch-path .build-release --product os-migrate >&2)
    BIN="$root/.build-release/release/os-migrate"
fi
export BIN
exec python3 "$here/bench.py"
