#!/usr/bin/python3
"""The demo's estate in the lab, with openstacksdk (one process, one token per cloud).

  demo-estate.py seed PUBKEY   src: a routed network, security groups, a keypair, a
                               boot-from-volume VM with a data volume holding known bytes, an
                               image-booted VM with a floating IP; both VMs stopped (cold)
  demo-estate.py verify        compare the destination with the source: servers ACTIVE, flavor,
                               keypair, security groups, fixed IPs and MACs, volume digests
  demo-estate.py clean src|dst remove everything named demo-* (and the FIPs on its ports)

Environment: OS_CLIENT_CONFIG_FILE (the lab's clouds.yaml), LAB (its name), OSMLAB_STATE.
Volume bytes are read on this host (the lab's Cinder keeps each volume in a file).
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import time

import openstack

LAB = os.environ.get("LAB", "osmlab")
STATE = os.environ.get("OSMLAB_STATE", "/var/lib/osmlab")
PREFIX = "demo-"
VOLPATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab", "volpath")
# The data volume's known bytes: 8 MiB at offset 0 and 1 MiB at 700 MiB, from a fixed seed.
DATA_EXTENTS = [(0, 8), (700, 1)]


def conn(side):
    return openstack.connect(cloud=f"{LAB}-{side}")


def wait(what, get, want, timeout=300):
    end = time.monotonic() + timeout
    while True:
        obj = get()
        st = getattr(obj, "status", None)
        if st == want:
            return obj
        if st and st.lower().startswith("error"):
            sys.exit(f"demo: {what} is {st}")
        if time.monotonic() > end:
            sys.exit(f"demo: {what} is {st} after {timeout}s (wanted {want})")
        time.sleep(1)


def known_bytes(mib, seed):
    out = bytearray()
    block = hashlib.sha256(f"demo-{seed}".encode()).digest()
    while len(out) < mib << 20:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[: mib << 20])


def volume_file(volume_id):
    """The host file holding a volume's data (lab/volpath knows the backends and the overlays)."""
    return subprocess.run([VOLPATH, volume_id], check=True, capture_output=True, text=True).stdout.strip()


def volume_digest(volume_id):
    """SHA-256 of a volume's whole contents (a qcow2 overlay is read through qemu-img)."""
    path = volume_file(volume_id)
    h = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp:
        if path != f"{STATE}/volumes/volume-{volume_id}":
            raw = tmp + "/raw"
            subprocess.run(["qemu-img", "convert", "-O", "raw", path, raw], check=True)
            path = raw
        with open(path, "rb") as f:
            while chunk := f.read(4 << 20):
                h.update(chunk)
    return h.hexdigest()


def seed(pubkey_file):
    c = conn("src")
    net, bs, nova = c.network, c.block_storage, c.compute
    public = net.find_network("public", ignore_missing=False)
    n = net.create_network(name="demo-net", description="demo application network")
    sn = net.create_subnet(name="demo-subnet", network_id=n.id, ip_version=4, cidr="10.99.0.0/24",
                           dns_nameservers=["10.99.0.2"],
                           allocation_pools=[{"start": "10.99.0.10", "end": "10.99.0.200"}])
    r = net.create_router(name="demo-router", external_gateway_info={"network_id": public.id})
    net.add_interface_to_router(r, subnet_id=sn.id)
    web = net.create_security_group(name="demo-web", description="web tier")
    db = net.create_security_group(name="demo-db", description="database tier")
    for port in (80, 443):
        net.create_security_group_rule(security_group_id=web.id, direction="ingress", ethertype="IPv4",
                                       protocol="tcp", port_range_min=port, port_range_max=port,
                                       remote_ip_prefix="0.0.0.0/0")
    net.create_security_group_rule(security_group_id=db.id, direction="ingress", ethertype="IPv4",
                                   protocol="tcp", port_range_min=5432, port_range_max=5432,
                                   remote_group_id=web.id)
    with open(pubkey_file) as f:
        nova.create_keypair(name="demo-key", public_key=f.read().strip())

    image = c.image.find_image(f"{LAB}-image", ignore_missing=False)
    flavor = nova.find_flavor("m1.tiny", ignore_missing=False)
    boot = bs.create_volume(name="demo-db-boot", size=1, image_id=image.id)
    data = bs.create_volume(name="demo-db-data", size=1, description="database files")
    boot = wait("volume demo-db-boot", lambda: bs.get_volume(boot.id), "available")
    data = wait("volume demo-db-data", lambda: bs.get_volume(data.id), "available")
    with open(volume_file(data.id), "r+b") as f:
        for i, (offset, mib) in enumerate(DATA_EXTENTS):
            f.seek(offset << 20)
            f.write(known_bytes(mib, i))

    db_vm = nova.create_server(
        name="demo-db", flavor_id=flavor.id, networks=[{"uuid": n.id, "fixed_ip": "10.99.0.20"}],
        security_groups=[{"name": "demo-db"}], key_name="demo-key", metadata={"tier": "db"},
        block_device_mapping=[
            {"uuid": boot.id, "source_type": "volume", "destination_type": "volume", "boot_index": 0,
             "delete_on_termination": False},
            {"uuid": data.id, "source_type": "volume", "destination_type": "volume", "boot_index": -1,
             "delete_on_termination": False}])
    web_vm = nova.create_server(
        name="demo-web", flavor_id=flavor.id, image_id=image.id, networks=[{"uuid": n.id}],
        security_groups=[{"name": "demo-web"}], key_name="demo-key", metadata={"tier": "web"})
    for vm in (db_vm, web_vm):
        nova.wait_for_server(vm, status="ACTIVE", wait=300)
    port = next(net.ports(device_id=web_vm.id))
    fip = net.create_ip(floating_network_id=public.id, port_id=port.id, description="demo web")
    for vm in (db_vm, web_vm):
        nova.stop_server(vm)
    for vm in (db_vm, web_vm):
        nova.wait_for_server(vm, status="SHUTOFF", wait=300)
    print(f"  src: demo-net 10.99.0.0/24 behind demo-router (gateway on public), groups demo-web/demo-db, "
          f"keypair demo-key")
    print(f"  src: demo-db (boot volume + 1 GiB data volume, {sum(m for _, m in DATA_EXTENTS)} MiB of known "
          f"bytes), demo-web (from {LAB}-image, floating IP {fip.floating_ip_address}); both stopped")


def clean(side):
    c = conn(side)
    net, bs, nova = c.network, c.block_storage, c.compute
    servers = [s for s in nova.servers() if s.name.startswith(PREFIX)]
    ports = {p.id for s in servers for p in net.ports(device_id=s.id)}
    for ip in net.ips():
        if ip.port_id in ports or (ip.description or "").startswith("demo"):
            net.delete_ip(ip)
    for s in servers:
        nova.delete_server(s)
    for s in servers:
        nova.wait_for_delete(s, wait=300)
    for r in net.routers():
        if r.name.startswith(PREFIX):
            for p in net.ports(device_id=r.id, device_owner="network:router_interface"):
                for ip in p.fixed_ips:
                    net.remove_interface_from_router(r, subnet_id=ip["subnet_id"])
            net.delete_router(r)
    for p in net.ports():
        if (p.name or "").startswith(PREFIX) or (p.network_id and p.device_owner == ""
                                                 and any(n.id == p.network_id for n in net.networks(name="demo-net"))):
            net.delete_port(p)
    for n in net.networks():
        if n.name.startswith(PREFIX):
            net.delete_network(n)
    for g in net.security_groups():
        if g.name.startswith(PREFIX):
            net.delete_security_group(g)
    for k in nova.keypairs():
        if k.name.startswith(PREFIX):
            nova.delete_keypair(k)
    for snap in bs.snapshots(details=True):
        if (snap.name or "").startswith(PREFIX):
            bs.delete_snapshot(snap)
            bs.wait_for_delete(snap, wait=300)
    vols = [v for v in bs.volumes(details=True) if (v.name or "").startswith(PREFIX)]
    for v in vols:
        if v.status not in ("available", "error"):
            wait(f"volume {v.name}", lambda: bs.get_volume(v.id), "available", 120)
        bs.delete_volume(v)
    for v in vols:
        bs.wait_for_delete(v, wait=300)


def verify():
    s, d = conn("src"), conn("dst")
    ok = True

    def check(cond, what):
        nonlocal ok
        print(f"  {'ok  ' if cond else 'FAIL'} {what}")
        ok = ok and cond

    for name in ("demo-db", "demo-web"):
        src = next(s.compute.servers(name=f"^{name}$"))
        dst = next(d.compute.servers(name=f"^{name}$"), None)
        check(dst is not None and dst.status == "ACTIVE", f"{name}: destination server ACTIVE")
        if dst is None:
            continue
        check(dst.flavor.original_name == src.flavor.original_name and dst.key_name == src.key_name
              and dst.metadata == src.metadata,
              f"{name}: flavor {dst.flavor.original_name}, keypair {dst.key_name}, metadata {dst.metadata}")
        sp = sorted(s.network.ports(device_id=src.id), key=lambda p: p.mac_address)
        dp = sorted(d.network.ports(device_id=dst.id), key=lambda p: p.mac_address)
        sips = [ip["ip_address"] for p in sp for ip in p.fixed_ips]
        dips = [ip["ip_address"] for p in dp for ip in p.fixed_ips]
        check(sips == dips, f"{name}: fixed IPs {' '.join(dips)} (source {' '.join(sips)})")
        check([p.mac_address for p in sp] == [p.mac_address for p in dp],
              f"{name}: MACs {' '.join(p.mac_address for p in dp)}")
        groups = sorted({g for p in dp for g in p.security_group_ids})
        names = sorted(d.network.get_security_group(g).name for g in groups)
        check(names == [f"demo-{name.split('-')[1]}"], f"{name}: security groups {', '.join(names)}")
        if name == "demo-web":
            fips = list(d.network.ips(port_id=dp[0].id)) if dp else []
            check(len(fips) == 1, f"{name}: floating IP {fips[0].floating_ip_address if fips else 'none'}")
        sa = sorted(s.compute.volume_attachments(src), key=lambda a: a.device)
        da = sorted(d.compute.volume_attachments(dst), key=lambda a: a.device)
        check(len(sa) == len(da), f"{name}: {len(da)} volume(s) attached")
        for a, b in zip(sa, da):
            sd, dd = volume_digest(a.volume_id), volume_digest(b.volume_id)
            check(sd == dd, f"{name} {b.device}: sha256 {dd[:16]}… equals the source's")
        if name == "demo-db" and len(da) > 1:
            with open(volume_file(da[1].volume_id), "rb") as f:
                good = True
                for i, (offset, mib) in enumerate(DATA_EXTENTS):
                    f.seek(offset << 20)
                    good = good and f.read(mib << 20) == known_bytes(mib, i)
            check(good, f"{name}: the data volume holds the known bytes at their offsets")
    if not ok:
        sys.exit("demo: the destination differs from the source")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    {"seed": lambda: seed(sys.argv[2]), "verify": verify, "clean": lambda: clean(sys.argv[2])}[sys.argv[1]]()
