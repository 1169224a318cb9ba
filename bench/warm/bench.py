#!/usr/bin/python3
"""Warm vs cold migration of one VM over a shaped link, and the data plane's incremental copy.

Run by bench/warm/run (which brings up the lab, a release build and two conversion hosts in
network namespaces joined by a link shaped to RATE). Prints ratios measured in this one run:

  downtime, warm / cold   the same VM (BOOT_GIB boot + DATA_GIB data, 25 % data, 25 % explicit
                          zeros, 50 % holes), CHANGE % of each volume written by the "guest"
                          after the last sync; cold = import workloads --stop-source on the
                          running VM (its downtime is the whole migration), warm = two --sync
                          passes then --cutover. Goal ≤ 0.20.
  copy, incremental / full  `os-migrate copy` of a disk over the same link: a full copy into a
                          fresh file, then CHANGE % of the source rewritten and copied again
                          (--target-key, --trust-map). Goal ≤ 0.20.
  full copy, ours / nbdcopy  the same full copy by nbdcopy reading `qemu-nbd --read-only` on the
                          source host through `ssh -L` over the link, without and with its
                          set-up (qemu-nbd and the tunnel; ours includes its ssh). Goal ≤ 0.50.

Page cache dropped before every timed run; REPS alternating repetitions, medians.
Environment: OSM, VARS, DATA, SRC_NS/DST_NS/LINK (from run), BOOT_GIB, DATA_GIB, CHANGE, REPS, COPY.
"""
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("estate", os.path.join(HERE, "..", "..", "scripts", "demo-estate.py"))
estate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(estate)

OSM, VARS, DATA = os.environ["OSM"], os.environ["VARS"], os.environ["DATA"]
ARGS = ["--vars", VARS, "--src-cloud", f"{estate.LAB}-src", "--dst-cloud", f"{estate.LAB}-dst"]
BOOT_GIB, DATA_GIB = int(os.environ.get("BOOT_GIB", "2")), int(os.environ.get("DATA_GIB", "2"))
CHANGE = float(os.environ.get("CHANGE", "1"))
REPS = int(os.environ.get("REPS", "1"))
COPY = os.environ.get("COPY", "1") != "0"  # COPY=0: the downtime rows only (large VMs: disk space)
MIB = 1 << 20


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def mixed(path, gib, seed):
    """25 % random data, 25 % explicit zeros, 50 % holes, in 4 MiB runs."""
    rng = random.Random(seed)
    with open(path, "r+b") as f:
        for off in range(0, gib << 30, 16 * MIB):
            f.seek(off)
            f.write(rng.randbytes(4 * MIB))
            f.write(bytes(4 * MIB))


def guest_writes(path, gib, seed):
    """CHANGE % of the volume rewritten, in 1 MiB pieces at random places (a running guest)."""
    rng = random.Random(seed)
    pieces = max(1, int((gib << 30) * CHANGE / 100) // MIB)
    with open(path, "r+b") as f:
        for _ in range(pieces):
            f.seek(rng.randrange(0, (gib << 30) // MIB) * MIB)
            f.write(rng.randbytes(MIB))
        os.fsync(f.fileno())


def osm(*args):
    t0 = time.monotonic()
    r = subprocess.run([OSM, *args, *ARGS], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench: os-migrate {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return time.monotonic() - t0


def report():
    r = subprocess.run([OSM, "report", "--json", *ARGS], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["workloads"][0]


def steps(r):
    """Where the time went: the report's steps of the latest attempt."""
    return ", ".join(f"{s['step']} {s['seconds']:.1f}" for s in r.get("steps", []))


def seed():
    c = estate.conn("src")
    net, bs, nova = c.network, c.block_storage, c.compute
    n = net.create_network(name="warm-net")
    net.create_subnet(name="warm-subnet", network_id=n.id, ip_version=4, cidr="10.98.0.0/24")
    g = net.create_security_group(name="warm-sg", description="warm bench")
    with open(os.path.join(DATA, "conversion", "ssh.key.pub")) as f:
        nova.create_keypair(name="warm-key", public_key=f.read().strip())
    image = c.image.find_image(f"{estate.LAB}-image", ignore_missing=False)
    boot = bs.create_volume(name="warm-boot", size=BOOT_GIB, image_id=image.id)
    data = bs.create_volume(name="warm-data", size=DATA_GIB)
    boot = estate.wait("volume warm-boot", lambda: bs.get_volume(boot.id), "available")
    data = estate.wait("volume warm-data", lambda: bs.get_volume(data.id), "available")
    mixed(estate.volume_file(boot.id), BOOT_GIB, 1)
    mixed(estate.volume_file(data.id), DATA_GIB, 2)
    flavor = nova.find_flavor("m1.tiny", ignore_missing=False)
    vm = nova.create_server(name="warm-vm", flavor_id=flavor.id, networks=[{"uuid": n.id}], security_groups=[{"name": g.name}],
                            key_name="warm-key", block_device_mapping=[
                                {"uuid": boot.id, "source_type": "volume", "destination_type": "volume", "boot_index": 0,
                                 "delete_on_termination": False},
                                {"uuid": data.id, "source_type": "volume", "destination_type": "volume", "boot_index": -1,
                                 "delete_on_termination": False}])
    nova.wait_for_server(vm, status="ACTIVE", wait=300)
    return vm.id, [boot.id, data.id]


def reset_destination(vm):
    """The destination without the migrated VM; the source VM running again; no ledger."""
    d = estate.conn("dst")
    for x in [x for x in d.compute.servers() if x.name == "warm-vm"]:
        d.compute.delete_server(x)
        d.compute.wait_for_delete(x, wait=300)
    nets = {n.id for n in d.network.networks(name="warm-net")}
    for p in d.network.ports():
        if not p.device_id and p.network_id in nets:
            d.network.delete_port(p)
    for v in list(d.block_storage.volumes(details=True)):
        if v.name in ("warm-boot", "warm-data"):
            d.block_storage.delete_volume(v)
            d.block_storage.wait_for_delete(v, wait=300)
    for suffix in ("", "-wal", "-shm"):
        p = os.path.join(DATA, "migration-ledger.sqlite" + suffix)
        if os.path.exists(p):
            os.remove(p)
    s = estate.conn("src")
    server = s.compute.get_server(vm)
    if server.status == "SHUTOFF":
        s.compute.start_server(server)
        s.compute.wait_for_server(server, status="ACTIVE", wait=300)


def cold(vm):
    reset_destination(vm)
    drop_caches()
    seconds = osm("import", "workloads", "--stop-source")
    r = report()
    return seconds, r["downtime_seconds"], steps(r)


def warm(vm, volumes, rep):
    reset_destination(vm)
    drop_caches()
    first = osm("import", "workloads", "--sync")
    for i, v in enumerate(volumes):
        guest_writes(estate.volume_file(v), [BOOT_GIB, DATA_GIB][i], 100 * rep + i)
    drop_caches()
    second = osm("import", "workloads", "--sync")
    for i, v in enumerate(volumes):
        guest_writes(estate.volume_file(v), [BOOT_GIB, DATA_GIB][i], 100 * rep + 50 + i)
    drop_caches()
    cut = osm("import", "workloads", "--cutover")
    r = report()
    return first, second, cut, r["downtime_seconds"], r


def in_dst(*argv, **kw):
    return subprocess.Popen(["ip", "netns", "exec", os.environ["DST_NS"], *argv], **kw)


def wait_port(ns, port):
    for _ in range(200):
        if subprocess.run(["ip", "netns", "exec", ns, "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"],
                          stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.05)
    sys.exit(f"bench: nothing listens on 127.0.0.1:{port} in {ns}")


def nbdcopy_full(src, dst, key):
    """The anchor: nbdcopy in the destination host reading `qemu-nbd --read-only` on the source host
    through `ssh -L` (same key, same cipher as ours) over the link. Its set-up is not timed."""
    if os.path.exists(dst):
        os.remove(dst)
    nport, tport = 10809, 10810
    q = subprocess.Popen(["ip", "netns", "exec", os.environ["SRC_NS"], "qemu-nbd", "--read-only", "--persistent", "--shared=16",
                          "-f", "raw", "-b", "127.0.0.1", "-p", str(nport), src], stderr=subprocess.DEVNULL)
    t = in_dst("ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
               "-c", "aes128-gcm@openssh.com", "-N", "-o", "ExitOnForwardFailure=yes",
               "-L", f"127.0.0.1:{tport}:127.0.0.1:{nport}", f"root@{os.environ['LINK']}", stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        wait_port(os.environ["SRC_NS"], nport)
        wait_port(os.environ["DST_NS"], tport)
        setup = time.monotonic() - t0
        drop_caches()
        t0 = time.monotonic()
        r = subprocess.run(["ip", "netns", "exec", os.environ["DST_NS"], "nbdcopy", f"nbd://127.0.0.1:{tport}", dst],
                           capture_output=True, text=True)
        elapsed = time.monotonic() - t0
    finally:
        for p in (t, q):
            p.terminate()
            p.wait()
    if r.returncode != 0:
        sys.exit(f"bench: nbdcopy failed: {r.stderr[-2000:]}")
    if subprocess.run(["cmp", src, dst], capture_output=True).returncode != 0:
        sys.exit("bench: nbdcopy's copy differs from the source")
    os.remove(dst)
    return elapsed, setup


def copy_bench(rep):
    """Full then incremental `os-migrate copy` from the source host to the destination host, over the
    link, and nbdcopy's full copy (the anchor), alternating which full copy goes first."""
    work = os.path.join(DATA, "copy-bench")
    os.makedirs(work, exist_ok=True)
    src, dst = os.path.join(work, "src.img"), os.path.join(work, f"dst-{rep}.img")
    if not os.path.exists(src):
        with open(src, "wb") as f:
            f.truncate(BOOT_GIB << 30)
        mixed(src, BOOT_GIB, 3)
    if os.path.exists(dst):
        os.remove(dst)
    key = os.path.join(DATA, "conversion", "ssh.key")
    cmd = ["ip", "netns", "exec", os.environ["DST_NS"], OSM, "copy", f"root@{os.environ['LINK']}:{src}", dst, "--json",
           "--identity", key, "--ssh-option", "StrictHostKeyChecking=no", "--ssh-option", "UserKnownHostsFile=/dev/null",
           "--remote-command", OSM, "--state-dir", os.path.join(work, "state"), "--target-key", f"bench-{rep}"]

    def run(extra):
        drop_caches()
        t0 = time.monotonic()
        r = subprocess.run(cmd + extra, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"bench: copy failed: {r.stderr[-2000:]}")
        return time.monotonic() - t0, [json.loads(l) for l in r.stdout.splitlines() if '"event":"result"' in l][-1]

    anchor_path = os.path.join(work, f"nbdcopy-{rep}.img")
    if rep % 2:
        anchor, setup = nbdcopy_full(src, anchor_path, key)
    full, fr = run([])
    if subprocess.run(["cmp", src, dst], capture_output=True).returncode != 0:
        sys.exit("bench: os-migrate copy's full copy differs from the source")
    if not rep % 2:
        anchor, setup = nbdcopy_full(src, anchor_path, key)
    guest_writes(src, BOOT_GIB, 1000 + rep)
    inc, ir = run(["--trust-map"])
    if subprocess.run(["cmp", src, dst], capture_output=True).returncode != 0:
        sys.exit("bench: os-migrate copy's incremental copy differs from the source")
    return full, inc, anchor, setup, fr, ir


def existing():
    c = estate.conn("src")
    vm = next(c.compute.servers(name="^warm-vm$"))
    byname = {v.name: v.id for v in c.block_storage.volumes(details=True)}
    return vm.id, [byname["warm-boot"], byname["warm-data"]]


def main():
    if sys.argv[1:] == ["seed"]:
        seed()
        return
    vm, volumes = existing()
    rows = []
    for rep in range(REPS):
        # Alternating: cold first on even repetitions, warm first on odd ones.
        order = ["cold", "warm"] if rep % 2 == 0 else ["warm", "cold"]
        row = {}
        for what in order:
            if what == "cold":
                row["cold_seconds"], row["cold_downtime"], cold_steps = cold(vm)
            else:
                row["sync1"], row["sync2"], row["cutover"], row["warm_downtime"], r = warm(vm, volumes, rep)
                warm_steps = steps(r)
        if COPY:
            row["copy_full"], row["copy_inc"], row["nbdcopy_full"], row["nbdcopy_setup"], fr, ir = copy_bench(rep)
            row["copy_full_wire"], row["copy_inc_wire"] = fr.get("bytesOnWire"), ir.get("bytesOnWire")
        rows.append(row)
        copied = (f"; copy full {row['copy_full']:.1f} s (nbdcopy {row['nbdcopy_full']:.1f} s), incremental {row['copy_inc']:.1f} s"
                  if COPY else "")
        print(f"  rep {rep + 1}: cold {row['cold_seconds']:.1f} s (downtime {row['cold_downtime']:.1f} s); warm syncs "
              f"{row['sync1']:.1f} s + {row['sync2']:.1f} s, cutover {row['cutover']:.1f} s (downtime {row['warm_downtime']:.1f} s)"
              + copied, flush=True)
        print(f"    cold steps: {cold_steps}\n    cutover steps: {warm_steps}", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if rows[0][k] is not None}
    print(f"VM {BOOT_GIB} GiB boot + {DATA_GIB} GiB data, {CHANGE:g} % changed after the last sync, link {os.environ.get('RATE')}, "
          f"medians of {REPS}:")
    print(f"  downtime: warm {med['warm_downtime']:.1f} s, cold {med['cold_downtime']:.1f} s  →  warm/cold {med['warm_downtime'] / med['cold_downtime']:.2f} (goal ≤ 0.20)")
    if not COPY:
        return
    print(f"  copy: incremental {med['copy_inc']:.1f} s, full {med['copy_full']:.1f} s  →  incremental/full {med['copy_inc'] / med['copy_full']:.2f} (goal ≤ 0.20); "
          f"on the wire {med.get('copy_inc_wire', 0) / MIB:.0f} MiB of {med.get('copy_full_wire', 0) / MIB:.0f} MiB")
    print(f"  full copy: ours {med['copy_full']:.1f} s, nbdcopy over ssh -L {med['nbdcopy_full']:.1f} s  →  "
          f"{med['copy_full'] / med['nbdcopy_full']:.2f}× nbdcopy (goal ≤ 0.50); with its qemu-nbd and tunnel set-up "
          f"({med['nbdcopy_setup']:.2f} s, which ours includes) {med['copy_full'] / (med['nbdcopy_full'] + med['nbdcopy_setup']):.2f}×")


if __name__ == "__main__":
    main()
