#!/usr/bin/python3
"""Idempotent bootstrap of the lab cloud (called by lab/up).

  bootstrap.py identity   service project/users/roles, catalog, src/dst tenants
  bootstrap.py resources  external network 'public', flavors, quotas of src/dst

Reads passwords from the LAB_*_PASS environment variables (secrets.env in the state dir).
"""
import os
import sys

import openstack

KS = "http://127.0.0.1:5000/v3"
REGION = "RegionOne"
ENV = os.environ

SERVICES = [
    # user, service name, type, description, endpoint url
    ("glance", "glance", "image", "OpenStack Image", "http://127.0.0.1:9292"),
    ("placement", "placement", "placement", "Placement API", "http://127.0.0.1:8778"),
    ("nova", "nova", "compute", "OpenStack Compute", "http://127.0.0.1:8774/v2.1"),
    ("neutron", "neutron", "network", "OpenStack Networking", "http://127.0.0.1:9696"),
    ("cinder", "cinderv3", "volumev3", "OpenStack Block Storage",
     "http://127.0.0.1:8776/v3/%(project_id)s"),
]
TENANTS = [("src", "src-user", "LAB_SRC_PASS"), ("dst", "dst-user", "LAB_DST_PASS")]


def connect(user="admin", password=None, project="admin"):
    return openstack.connect(
        load_yaml_config=False, load_envvars=False,
        auth_type="password",
        auth=dict(auth_url=KS, username=user, password=password or ENV["LAB_ADMIN_PASS"],
                  project_name=project, user_domain_name="Default",
                  project_domain_name="Default"),
        region_name=REGION, interface="public", identity_api_version="3")


def say(msg):
    print(f"  bootstrap: {msg}", flush=True)


def identity():
    c = connect()
    ks = c.identity

    # list-by-name instead of find_*(): find_* first GETs /<name> as an ID,
    # which keystone answers with a 404 that it logs as an ERROR traceback.
    def first(it):
        return next(iter(it), None)

    def project(name, desc):
        p = first(ks.projects(name=name, domain_id="default"))
        if not p:
            say(f"create project {name}")
            p = ks.create_project(name=name, domain_id="default", description=desc)
        return p

    def role(name):
        r = first(ks.roles(name=name))
        if not r:
            say(f"create role {name}")
            r = ks.create_role(name=name)
        return r

    def user(name, pw, proj):
        u = first(ks.users(name=name, domain_id="default"))
        if not u:
            say(f"create user {name}")
            u = ks.create_user(name=name, password=pw, domain_id="default",
                               default_project_id=proj.id, is_enabled=True)
        else:
            try:  # keep secrets.env authoritative without needless password resets
                connect(name, pw, proj.name).authorize()
            except Exception:  # noqa
                say(f"reset password of {name}")
                ks.update_user(u, password=pw)
        return u

    def grant(proj, usr, rl):
        if not ks.validate_user_has_project_role(proj, usr, rl):
            say(f"grant {rl.name} on {proj.name} to {usr.name}")
            ks.assign_project_role_to_user(proj, usr, rl)

    roles = {n: role(n) for n in ("admin", "member", "reader", "service")}
    service_project = project("service", "Service users")

    for uname, sname, stype, desc, url in SERVICES:
        u = user(uname, ENV["LAB_SERVICE_PASS"], service_project)
        grant(service_project, u, roles["admin"])
        grant(service_project, u, roles["service"])
        svc = next((s for s in ks.services() if s.type == stype), None)
        if not svc:
            say(f"create service {sname} ({stype})")
            svc = ks.create_service(name=sname, type=stype, description=desc,
                                    is_enabled=True)
        eps = [e for e in ks.endpoints() if e.service_id == svc.id]
        for iface in ("public", "internal"):
            mine = [e for e in eps if e.interface == iface]
            if not mine:
                say(f"create endpoint {stype}/{iface} {url}")
                ks.create_endpoint(service_id=svc.id, interface=iface, url=url,
                                   region_id=REGION, is_enabled=True)
            elif mine[0].url != url:
                ks.update_endpoint(mine[0], url=url)

    for pname, uname, pwvar in TENANTS:
        p = project(pname, f"lab migration test project {pname}")
        u = user(uname, ENV[pwvar], p)
        grant(p, u, roles["member"])


def resources():
    c = connect()
    net = c.network.find_network("public")
    if not net:
        say("create external network public")
        net = c.network.create_network(
            name="public", is_router_external=True, provider_network_type="flat",
            provider_physical_network="public")
    if not c.network.find_subnet("public-subnet"):
        say("create subnet public-subnet 203.0.113.0/24")
        c.network.create_subnet(
            network_id=net.id, name="public-subnet", ip_version=4,
            cidr="203.0.113.0/24", gateway_ip="203.0.113.1", is_dhcp_enabled=False,
            allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.250"}])
    # roomier quotas for the migration test projects
    for pname in ("src", "dst"):
        pid = next(iter(c.identity.projects(name=pname, domain_id="default"))).id
        c.set_compute_quotas(pid, instances=50, cores=200, ram=512000, key_pairs=200)
        c.set_volume_quotas(pid, volumes=100, snapshots=100, gigabytes=2000)
        c.set_network_quotas(pid, network=500, subnet=1000, port=2000, router=50,
                             floatingip=100, security_group=500, security_group_rule=5000)
    for fid, name, vcpus, ram, disk in (("1", "m1.tiny", 1, 512, 1),
                                        ("2", "m1.small", 1, 2048, 20)):
        if not c.compute.find_flavor(name):
            say(f"create flavor {name}")
            c.compute.create_flavor(id=fid, name=name, vcpus=vcpus, ram=ram, disk=disk,
                                    is_public=True)


if __name__ == "__main__":
    {"identity": identity, "resources": resources}[sys.argv[1]]()
