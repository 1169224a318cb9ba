#!/usr/bin/python3
"""The lab's short self-check (run by lab/up; OSMLAB_SKIP_CHECK=1 skips it).

As the src tenant, proves that each service answers for real: a volume whose data is a file on
this host, a server that reaches ACTIVE, the volume attached to it, a snapshot of the attached
volume, an image uploaded and downloaded intact. Everything it makes is named `selfcheck-*` and
deleted again, also what an earlier interrupted check left.
Environment: OS_CLIENT_CONFIG_FILE (the lab's clouds.yaml), STATE (state dir), LAB (its name).
"""
import hashlib
import os
import subprocess
import sys
import time

import openstack

LAB = os.environ.get("LAB", "osmlab")
STATE = os.environ.get("STATE", "/var/lib/osmlab")
PREFIX = "selfcheck-"
HERE = os.path.dirname(os.path.abspath(__file__))
T0 = time.monotonic()


def say(msg):
    print(f"[lab {time.strftime('%H:%M:%S')}] self-check: {msg} ({time.monotonic() - T0:.0f}s)",
          file=sys.stderr, flush=True)


def wait(what, get, want, timeout=180):
    end = time.monotonic() + timeout
    while True:
        obj = get()
        status = getattr(obj, "status", None) if obj is not None else "gone"
        if status == want:
            return obj
        if status and str(status).lower() in ("error", "error_deleting", "killed"):
            raise SystemExit(f"self-check: {what} is {status} (wanted {want})")
        if time.monotonic() > end:
            raise SystemExit(f"self-check: {what} is {status} after {timeout}s (wanted {want})")
        time.sleep(1)


def volume_path(volume_id):
    """The host file holding a volume's data: lab/volpath knows the backends and the overlays."""
    return subprocess.run([os.path.join(HERE, "volpath"), volume_id], check=True, capture_output=True,
                          text=True).stdout.strip()


def cleanup(c):
    for s in c.compute.servers(name=f"^{PREFIX}"):
        c.compute.delete_server(s)
        c.compute.wait_for_delete(s, wait=180)
    for i in c.image.images():
        if i.name and i.name.startswith(PREFIX):
            c.image.delete_image(i)
    for snap in c.block_storage.snapshots(details=True):
        if snap.name and snap.name.startswith(PREFIX):
            c.block_storage.delete_snapshot(snap)
            c.block_storage.wait_for_delete(snap, wait=180)
    for v in c.block_storage.volumes(details=True):
        if v.name and v.name.startswith(PREFIX):
            c.block_storage.delete_volume(v)
            c.block_storage.wait_for_delete(v, wait=180)


def main():
    c = openstack.connect(cloud=f"{LAB}-src")
    cleanup(c)
    bs, nova = c.block_storage, c.compute

    vol = bs.create_volume(name=PREFIX + "vol", size=1)
    vol = wait("volume", lambda: bs.get_volume(vol.id), "available")
    path = volume_path(vol.id)
    data = os.urandom(1 << 20)
    with open(path, "r+b") as f:
        f.write(data)
    with open(path, "rb") as f:
        if f.read(len(data)) != data:
            raise SystemExit(f"self-check: {path} does not read back what was written")
    say(f"volume {vol.id}: its data is {path}")

    image = next(i for i in c.image.images() if i.name == f"{LAB}-image")
    flavor = nova.find_flavor("m1.tiny", ignore_missing=False)
    server = nova.create_server(name=PREFIX + "server", flavor_id=flavor.id, image_id=image.id,
                                networks="none")
    server = nova.wait_for_server(server, status="ACTIVE", wait=180)
    say(f"server {server.id} ACTIVE")

    nova.create_volume_attachment(server, volume_id=vol.id)
    wait("attached volume", lambda: bs.get_volume(vol.id), "in-use")
    say("volume attached")

    snap = bs.create_snapshot(volume_id=vol.id, name=PREFIX + "snap", force=True)
    wait("snapshot of the attached volume", lambda: bs.get_snapshot(snap.id), "available")
    bs.delete_snapshot(snap)
    bs.wait_for_delete(snap, wait=180)
    say("snapshot of the attached volume made and deleted")

    nova.delete_volume_attachment(vol.id, server)
    wait("detached volume", lambda: bs.get_volume(vol.id), "available")

    blob = os.urandom(1 << 20)
    img = c.image.create_image(name=PREFIX + "image", data=blob, disk_format="raw",
                               container_format="bare", validate_checksum=False)
    img = wait("uploaded image", lambda: c.image.get_image(img.id), "active", 120)
    got = c.image.download_image(img, stream=False)
    got = got if isinstance(got, bytes) else got.content
    if hashlib.sha256(got).digest() != hashlib.sha256(blob).digest():
        raise SystemExit("self-check: the downloaded image differs from the upload")
    say("image uploaded and downloaded intact")

    cleanup(c)
    say("passed")


if __name__ == "__main__":
    main()
