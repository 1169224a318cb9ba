#!/usr/bin/python3
"""Kill -9 trials: a random instant of an import, then a rerun, then the destination compared.

  trials.py networks N   N kills during `import` of the network kinds and keypairs
  trials.py workloads N  N kills during `import workloads` (both demo VMs at once)

Each trial starts from a destination without what the trial imports, runs the import once
uninterrupted first to learn how long it takes (T), then per trial: start the import, SIGKILL
its whole process group at a uniform random instant in [0, 0.9 T], rerun it as is, and check:
converged (the rerun exits 0 and the destination equals the source: scripts/demo-estate.py
verify for workloads, names and rule counts for networks), duplicates (two of a name), leaks
(temporary snapshots, volumes, images, attachments to the conversion hosts, unbound ports,
unassociated floating IPs), and a second rerun that changes nothing with no write.

Environment: OSM (the os-migrate binary), VARS (its --vars file with both clouds), DATA (the
data dir), SEED (random seed), plus what scripts/demo-estate.py reads.
"""
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("estate", os.path.join(HERE, "..", "..", "scripts", "demo-estate.py"))
estate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(estate)

OSM = os.environ["OSM"]
ARGS = ["--vars", os.environ["VARS"], "--src-cloud", f"{estate.LAB}-src", "--dst-cloud", f"{estate.LAB}-dst"]
DATA = os.environ["DATA"]
NETWORK_KINDS = ["networks", "subnets", "routers", "router-interfaces", "security-groups", "security-group-rules", "keypairs"]


def osm(kinds, kill_after=None):
    """Run `os-migrate import KINDS --json`; SIGKILL its process group after kill_after seconds.
    Returns (exit code, recap or None, seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen([OSM, "import", *kinds, "--json", *ARGS], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
    recap = None
    for line in out.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == "recap":
            recap = e
    return p.returncode, recap, time.monotonic() - t0


def counts(items):
    out = {}
    for name in items:
        out[name] = out.get(name, 0) + 1
    return out


def network_state():
    """What the destination holds of the demo's network kinds: name → count, rules per group."""
    c = estate.conn("dst")
    net = c.network
    names = [f"network {n.name}" for n in net.networks() if n.name.startswith("demo-")]
    names += [f"subnet {s.name}" for s in net.subnets() if s.name.startswith("demo-")]
    names += [f"router {r.name}" for r in net.routers() if r.name.startswith("demo-")]
    for r in net.routers():
        if r.name.startswith("demo-"):
            names += [f"interface {r.name}" for _ in net.ports(device_id=r.id, device_owner="network:router_interface")]
    for g in net.security_groups():
        if g.name.startswith("demo-"):
            names.append(f"group {g.name}")
            names += [f"rule {g.name} {r.direction} {r.protocol} {r.port_range_min}" for r in net.security_group_rules(security_group_id=g.id)]
    names += [f"keypair {k.name}" for k in c.compute.keypairs() if k.name.startswith("demo-")]
    return counts(names)


def workload_leaks():
    """Temporaries and leftovers of a workload migration, in both clouds."""
    s, d = estate.conn("src"), estate.conn("dst")
    leaks = []
    leaks += [f"src snapshot {x.name}" for x in s.block_storage.snapshots(details=True)]
    leaks += [f"src volume {v.name} ({v.status})" for v in s.block_storage.volumes(details=True) if (v.name or "").startswith("os-migrate-")]
    leaks += [f"src image {i.name}" for i in s.image.images() if (i.name or "").startswith("os-migrate-")]
    for side, c in (("src", s), ("dst", d)):
        for srv in c.compute.servers():
            if srv.name.startswith("os_migrate_conv"):
                leaks += [f"{side} attachment {a.volume_id} on {srv.name}" for a in c.compute.volume_attachments(srv)]
    demo_nets = {n.id for n in d.network.networks() if n.name.startswith("demo-")}
    leaks += [f"dst unbound port {p.id}" for p in d.network.ports() if p.network_id in demo_nets and not p.device_id]
    leaks += [f"dst floating IP {ip.floating_ip_address} unassociated" for ip in d.network.ips() if not ip.port_id]
    dst_servers = counts(x.name for x in d.compute.servers() if x.name.startswith("demo-"))
    dst_volumes = counts(v.name for v in d.block_storage.volumes(details=True))
    dups = [f"server {n} x{k}" for n, k in dst_servers.items() if k > 1] + [f"volume {n} x{k}" for n, k in dst_volumes.items() if k > 1]
    extra = [f"dst volume {v.name} ({v.status}) unattached" for v in d.block_storage.volumes(details=True) if not v.attachments]
    return leaks + extra, dups


def reset_workloads():
    """The destination without the migrated VMs (and their ports, volumes, floating IPs); no ledger."""
    c = estate.conn("dst")
    net, bs, nova = c.network, c.block_storage, c.compute
    servers = [x for x in nova.servers() if x.name.startswith("demo-")]
    ports = {p.id for x in servers for p in net.ports(device_id=x.id)}
    for ip in net.ips():
        if ip.port_id in ports or not ip.port_id:
            net.delete_ip(ip)
    for x in servers:
        nova.delete_server(x)
    for x in servers:
        nova.wait_for_delete(x, wait=300)
    demo_nets = {n.id for n in net.networks() if n.name.startswith("demo-")}
    for p in net.ports():
        if p.network_id in demo_nets and not p.device_id:
            net.delete_port(p)
    vols = [v for v in bs.volumes(details=True) if not v.attachments]
    for v in vols:
        if v.status != "available":
            estate.wait(f"volume {v.name}", lambda: bs.get_volume(v.id), "available", 300)
        bs.delete_volume(v)
    for v in vols:
        bs.wait_for_delete(v, wait=300)
    ledger = os.path.join(DATA, "migration-ledger.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(ledger + suffix):
            os.remove(ledger + suffix)


def reset_networks():
    estate.clean("dst")


def trial_loop(what, n, kinds, reset, check):
    rng = random.Random(int(os.environ.get("SEED", "1")))
    reset()
    rc, recap, full = osm(kinds)
    if rc != 0:
        sys.exit(f"kill-trials: the uninterrupted {what} import failed (exit {rc})")
    expected = check(None)
    print(f"{what}: an uninterrupted import takes {full:.1f} s; {n} trials, each killed at a random instant in [0, {0.9 * full:.1f}] s")
    tally = {"trials": 0, "killed": 0, "converged": 0, "duplicates": 0, "leaks": 0, "second_rerun_clean": 0}
    for i in range(1, n + 1):
        reset()
        at = rng.uniform(0, 0.9 * full)
        rc1, _, _ = osm(kinds, kill_after=at)
        rc2, recap2, t2 = osm(kinds)
        problems, dups = check(expected)
        rc3, recap3, _ = osm(kinds)
        clean = rc3 == 0 and recap3 and recap3.get("changed") == 0 and recap3.get("api_writes") == 0
        converged = rc2 == 0 and not problems and not dups
        tally["trials"] += 1
        tally["killed"] += rc1 == -signal.SIGKILL
        tally["converged"] += converged
        tally["duplicates"] += len(dups)
        tally["leaks"] += len(problems)
        tally["second_rerun_clean"] += bool(clean)
        state = "killed" if rc1 == -signal.SIGKILL else f"ended first (exit {rc1})"
        print(f"  trial {i:2d}: at {at:5.1f} s {state}; rerun exit {rc2} in {t2:.1f} s; "
              f"{'converged' if converged else 'NOT converged'}; duplicates {len(dups)}; leaks {len(problems)}; "
              f"second rerun {'changed=0 writes=0' if clean else recap3}")
        for p in problems + dups:
            print(f"      {p}")
    print(f"{what}: " + ", ".join(f"{k} {v}" for k, v in tally.items()))
    return tally


def main():
    what, n = sys.argv[1], int(sys.argv[2])
    if what == "networks":
        def check(expected):
            state = network_state()
            if expected is None:
                return state
            dups = [f"{k} x{v}" for k, v in state.items() if v > expected.get(k, 0)]
            missing = [f"missing {k}" for k, v in expected.items() if state.get(k, 0) < v]
            return missing, dups
        t = trial_loop("networks", n, NETWORK_KINDS, reset_networks, check)
    elif what == "workloads":
        def check(expected):
            if expected is None:
                return {}  # the baseline: demo-estate.py verify knows what to expect
            verified = subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "scripts", "demo-estate.py"), "verify"],
                                      capture_output=True, text=True).returncode == 0
            leaks, dups = workload_leaks()
            return leaks + ([] if verified else ["destination differs from the source (demo-estate.py verify)"]), dups
        t = trial_loop("workloads", n, ["workloads"], reset_workloads, check)
    else:
        sys.exit(__doc__)
    sys.exit(0 if t["converged"] == t["trials"] and t["duplicates"] == 0 and t["leaks"] == 0 else 1)


if __name__ == "__main__":
    main()
