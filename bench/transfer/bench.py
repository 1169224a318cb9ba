#!/usr/bin/env python3
"""Data-plane benchmark: our `os-migrate copy` against nbdcopy / qemu-img convert reading
`qemu-nbd --read-only` through an `ssh -L` tunnel, on the same disks and the same private sshd.

Run through run.sh (which builds the release binary). Environment knobs (all optional):
  BIN=path            os-migrate binary to test (run.sh sets it)
  SCRATCH=/var/tmp/osm-xferbench   work dir (disks are kept there between runs when KEEP_DISKS=1)
  BIG_MIB=4096 DENSE_MIB=2048      disk sizes (sparse5/half50/zero50 use BIG_MIB, dense DENSE_MIB)
  DISKS="sparse5 half50 dense zero50"
  REPS=1              repetitions of every timed row (the median is reported)
  SECTIONS="copy verify incremental"
  DROP_CACHES=1       drop the page cache before each timed run (needs root)
  KEEP_DISKS=0        keep the generated disks for the next run
  EXTRA="--streams 2" extra flags for one more "ours" row (empty: no extra row)
  PRIORITY=1          run the race in its own cgroup (v1 cpu/cpuacct) with high cpu.shares; CPU s =
                      that cgroup's CPU time (0: whole-machine busy time, no priority)
  REPORT=path         where to write the markdown tables (default bench/transfer/last-run.md)
"""
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

MiB = 1 << 20
BIN = os.environ.get("BIN") or sys.exit("BIN is not set (run through run.sh)")
SCRATCH = os.environ.get("SCRATCH", "/var/tmp/osm-xferbench")
BIG = int(os.environ.get("BIG_MIB", "4096"))
DENSE = int(os.environ.get("DENSE_MIB", "2048"))
DISKS = os.environ.get("DISKS", "sparse5 half50 dense zero50").split()
REPS = int(os.environ.get("REPS", "1"))
SECTIONS = os.environ.get("SECTIONS", "copy verify incremental").split()
DROP = os.environ.get("DROP_CACHES", "1") == "1"
KEEP = os.environ.get("KEEP_DISKS", "0") == "1"
EXTRA = os.environ.get("EXTRA", "").split()
HERE = os.path.dirname(os.path.abspath(__file__))

children = []
CGROUPS = []  # (controller dir, our cgroup dir)
PRIORITY = os.environ.get("PRIORITY", "1") == "1"


def enter_cgroup():
    """Moves this process (and so every tool it starts, its sshd included) into its own cgroup v1
    cpu + cpuacct group: high cpu.shares so background load on a shared machine does not distort the
    race, and cpuacct.usage = CPU time of the race only. Nothing else is moved."""
    if not PRIORITY:
        return
    for ctl in ("cpu", "cpuacct"):
        root = f"/sys/fs/cgroup/{ctl}"
        if not os.path.isdir(root):
            continue
        d = f"{root}/osm-xferbench-{os.getpid()}"
        try:
            os.mkdir(d)
            if ctl == "cpu":
                open(f"{d}/cpu.shares", "w").write("262144\n")
            open(f"{d}/cgroup.procs", "w").write(f"{os.getpid()}\n")
            CGROUPS.append((root, d))
        except OSError as e:
            log(f"(no {ctl} cgroup: {e})")


def leave_cgroups():
    for root, d in CGROUPS:
        try:
            open(f"{root}/cgroup.procs", "w").write(f"{os.getpid()}\n")
            os.rmdir(d)
        except OSError:
            pass
    CGROUPS.clear()


def group_cpu():
    """CPU seconds used by the benchmark's cgroup, or None."""
    for root, d in CGROUPS:
        if root.endswith("cpuacct"):
            return int(open(f"{d}/cpuacct.usage").read()) / 1e9
    return None


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cleanup(*_):
    for p in reversed(children):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    children.clear()


signal.signal(signal.SIGTERM, lambda *a: (cleanup(), sys.exit(1)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


PROGRAMS = []


def programs():
    """Executables and shared libraries of every tool in the race (re-read after dropping caches,
    so the disks are cold but the programs are warm, as on a conversion host that has been working)."""
    if PROGRAMS:
        return PROGRAMS
    exes = [BIN, "/usr/bin/ssh", "/usr/sbin/sshd", shutil.which("nbdcopy"), shutil.which("qemu-nbd"),
            shutil.which("qemu-img")]
    files = set()
    for e in filter(None, exes):
        files.add(os.path.realpath(e))
        out = subprocess.run(["ldd", e], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split("=>")
            path = (parts[1] if len(parts) > 1 else parts[0]).split("(")[0].strip()
            if path.startswith("/"):
                files.add(os.path.realpath(path))
    PROGRAMS.extend(sorted(files))
    return PROGRAMS


def drop_caches():
    subprocess.run(["sync"])
    if DROP:
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        except OSError:
            return
        for p in programs():
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass


def cpu_busy():
    g = group_cpu()
    if g is not None:
        return g
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = v[3] + v[4]
    return (sum(v) - idle) / hz


def timed(cmd, **kw):
    """Runs cmd then sync; returns (seconds, cpu seconds of the machine, CompletedProcess)."""
    drop_caches()
    c0, t0 = cpu_busy(), time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    subprocess.run(["sync"])
    t1, c1 = time.monotonic(), cpu_busy()
    return t1 - t0, c1 - c0, r


# ---------------------------------------------------------------- disks

def make_disks():
    os.makedirs(SCRATCH, exist_ok=True)
    specs = {
        "sparse5": (BIG, int(BIG * 0.05), 0, 1),
        "half50": (BIG, BIG // 2, 0, 2),
        "dense": (DENSE, DENSE, 0, 3),
        "zero50": (BIG, int(BIG * 0.10), BIG // 2, 4),
    }
    out = {}
    for name in DISKS:
        size, data, zeros, seed = specs[name]
        path = f"{SCRATCH}/{name}.img"
        stamp = f"{path}.spec"
        want = f"{size} {data} {zeros} {seed}"
        if os.path.exists(path) and os.path.exists(stamp) and open(stamp).read() == want:
            out[name] = (path, size * MiB, data * MiB)
            continue
        log(f"making {name}: {size} MiB, {data} MiB random, {zeros} MiB explicit zeros")
        rng = random.Random(seed)
        chunks = list(range(size))
        rng.shuffle(chunks)
        with open(path, "wb") as f:
            f.truncate(size * MiB)
            for c in sorted(chunks[:data]):
                f.seek(c * MiB)
                f.write(os.urandom(MiB))
            zero = bytes(MiB)
            for c in sorted(chunks[data:data + zeros]):
                f.seek(c * MiB)
                f.write(zero)
        open(stamp, "w").write(want)
        out[name] = (path, size * MiB, data * MiB)
    return out


# ---------------------------------------------------------------- sshd

class SSHD:
    def __init__(self):
        self.dir = f"{SCRATCH}/sshd"
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        for k in ("host", "id"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{self.dir}/{k}_ed25519"], check=True)
        shutil.copy(f"{self.dir}/id_ed25519.pub", f"{self.dir}/authorized_keys")
        os.makedirs("/run/sshd", exist_ok=True)
        self.port = free_port()
        with open(f"{self.dir}/sshd_config", "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.dir}/host_ed25519
PidFile {self.dir}/sshd.pid
AuthorizedKeysFile {self.dir}/authorized_keys
UsePAM no
StrictModes no
PasswordAuthentication no
PermitRootLogin prohibit-password
MaxStartups 100:30:200
LogLevel ERROR
""")
        hostkey = " ".join(open(f"{self.dir}/host_ed25519.pub").read().split()[:2])
        self.known = f"{self.dir}/known_hosts"
        open(self.known, "w").write(f"[127.0.0.1]:{self.port} {hostkey}\n")
        p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{self.dir}/sshd_config"],
                             stderr=open(f"{self.dir}/sshd.log", "a"))
        children.append(p)
        wait_port(self.port)
        self.user = os.environ.get("USER") or "root"
        self.opts = ["UserKnownHostsFile=" + self.known, "StrictHostKeyChecking=yes", "BatchMode=yes", "IdentitiesOnly=yes"]

    def ssh(self):
        a = ["ssh", "-p", str(self.port), "-i", f"{self.dir}/id_ed25519"]
        for o in self.opts:
            a += ["-o", o]
        return a

    def ours(self, src, dst, *extra):
        a = [BIN, "copy", f"root@127.0.0.1:{src}", dst, "--json", "-q", "--remote-command", BIN,
             "--port", str(self.port), "--identity", f"{self.dir}/id_ed25519"]
        for o in self.opts:
            a += ["--ssh-option", o]
        return a + list(extra)


# ---------------------------------------------------------------- rows

def result_of(proc):
    res = None
    for line in proc.stdout.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == "result":
            res = ev
    return res


def cmp_ok(a, b, size):
    r = subprocess.run(["cmp", "-n", str(size), a, b], capture_output=True)
    return r.returncode == 0


def tunnel(sshd, src):
    """qemu-nbd --read-only on the 'source' and an ssh -L tunnel; returns (port, ssh proc, setup s)."""
    t0 = time.monotonic()
    nport, tport = free_port(), free_port()
    q = subprocess.Popen(["qemu-nbd", "--read-only", "--persistent", "--shared=16", "-f", "raw",
                          "-b", "127.0.0.1", "-p", str(nport), src], stderr=subprocess.DEVNULL)
    children.append(q)
    wait_port(nport)
    t = subprocess.Popen(sshd.ssh() + ["-c", "aes128-gcm@openssh.com", "-N", "-o", "ExitOnForwardFailure=yes",
                                       "-L", f"127.0.0.1:{tport}:127.0.0.1:{nport}", "root@127.0.0.1"])
    children.append(t)
    wait_port(tport)
    return tport, t, q, time.monotonic() - t0


def proc_wchar(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def median_row(runs):
    runs.sort(key=lambda r: r["s"])
    return runs[len(runs) // 2] | {"min": runs[0]["s"], "n": len(runs)}


def row_ours(sshd, name, src, dst, size, label, *extra, state=False, reps=None):
    runs = []
    for _ in range(REPS if reps is None else reps):
        for p in (dst,):
            if os.path.exists(p) and not state:
                os.unlink(p)
        flags = list(extra) + ([] if state else ["--no-state"])
        s, cpu, r = timed(sshd.ours(src, dst, *flags))
        res = result_of(r)
        ok = r.returncode in (0, 4) and res is not None and cmp_ok(src, dst, size)
        if not ok:
            log(f"FAILED {label}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        runs.append({"disk": name, "tool": label, "s": s, "cpu": cpu, "wire": res["bytesOnWire"] if res else None,
                     "ok": ok, "copied": res["bytesCopied"] if res else None, "res": res})
    return median_row(runs)


def row_anchor(sshd, name, src, dst, size, tool):
    runs = []
    for _ in range(REPS):
        if os.path.exists(dst):
            os.unlink(dst)
        tport, t, q, setup = tunnel(sshd, src)
        w0 = proc_wchar(t.pid)
        uri = f"nbd://127.0.0.1:{tport}"
        cmd = ["nbdcopy", uri, dst] if tool == "nbdcopy" else \
              ["qemu-img", "convert", "-f", "raw", "-O", "raw", "-S", "4k", uri, dst]
        s, cpu, r = timed(cmd)
        wire = proc_wchar(t.pid) - w0
        for p in (t, q):
            p.terminate()
            p.wait()
            children.remove(p)
        ok = r.returncode == 0 and cmp_ok(src, dst, size)
        if not ok:
            log(f"FAILED {tool}: {r.stderr[-2000:]}")
        runs.append({"disk": name, "tool": f"{tool} (qemu-nbd -r, ssh -L aes128-gcm)", "s": s, "cpu": cpu,
                     "wire": wire, "ok": ok, "setup": setup})
    return median_row(runs)


def change_chunks(path, size, fraction, seed):
    """Overwrites `fraction` of the 4 MiB chunks with random data; returns their count."""
    chunk = 4 * MiB
    n = (size + chunk - 1) // chunk
    k = max(1, round(n * fraction))
    rng = random.Random(seed)
    with open(path, "r+b") as f:
        for c in rng.sample(range(n), k):
            f.seek(c * chunk)
            f.write(os.urandom(min(chunk, size - c * chunk)))
    return k


# ---------------------------------------------------------------- main

def main():
    enter_cgroup()
    disks = make_disks()
    sshd = SSHD()
    rows, extra_rows = [], []
    dst = f"{SCRATCH}/dst.img"
    for name, (src, size, data) in disks.items():
        log(f"== {name}")
        mb = size / 1e6
        if "copy" in SECTIONS:
            anchor = row_anchor(sshd, name, src, dst, size, "nbdcopy")
            qimg = row_anchor(sshd, name, src, dst, size, "qemu-img convert")
            ours = row_ours(sshd, name, src, dst, size, "os-migrate copy (ours)")
            rows += [ours, anchor, qimg]
            if EXTRA:
                rows.append(row_ours(sshd, name, src, dst, size, "ours " + " ".join(EXTRA), *EXTRA))
            for r in rows[-4:] if EXTRA else rows[-3:]:
                r["mbps"] = mb / r["s"]
                r["ratio"] = r["s"] / anchor["s"]
                r["data"] = data
                log(f"   {r['tool']}: {r['s']:.2f} s, wire {r['wire']}, x{r['ratio']:.2f}")
        if "verify" in SECTIONS:
            v = row_ours(sshd, name, src, dst, size, "ours, verified")
            u = row_ours(sshd, name, src, dst, size, "ours --no-verify", "--no-verify")
            extra_rows.append({"kind": "verify", "disk": name, "verified": v["s"], "unverified": u["s"],
                               "overhead": v["s"] / u["s"] - 1, "cpu_v": v["cpu"], "cpu_u": u["cpu"]})
            log(f"   verification: {v['s']:.2f} vs {u['s']:.2f} s")
        if "incremental" in SECTIONS:
            inc = f"{SCRATCH}/inc-src.img"
            idst = f"{SCRATCH}/inc-dst.img"
            state = f"{SCRATCH}/state"
            shutil.rmtree(state, ignore_errors=True)
            for p in (inc, idst):
                if os.path.exists(p):
                    os.unlink(p)
            fulls, sames, ones = [], [], []
            for rep in range(REPS):
                shutil.rmtree(state, ignore_errors=True)
                for p in (inc, idst):
                    if os.path.exists(p):
                        os.unlink(p)
                subprocess.run(["cp", "--sparse=auto", src, inc], check=True)  # keeps holes as holes, zeros as data
                fulls.append(row_ours(sshd, name, inc, idst, size, "full", "--state-dir", state, state=True, reps=1))
                sames.append(row_ours(sshd, name, inc, idst, size, "unchanged", "--state-dir", state, state=True, reps=1))
                k = change_chunks(inc, size, 0.01, 5 + rep)
                ones.append(row_ours(sshd, name, inc, idst, size, "1% changed", "--state-dir", state, state=True, reps=1))
            full, same, one = median_row(fulls), median_row(sames), median_row(ones)
            extra_rows.append({"kind": "incremental", "disk": name, "full": full["s"], "same": same["s"],
                               "inc": one["s"], "chunks": k, "inc_copied": one["copied"], "inc_wire": one["wire"],
                               "ratio": one["s"] / full["s"], "ok": all(r["ok"] for r in fulls + sames + ones)})
            log(f"   incremental: full {full['s']:.2f} s, unchanged {same['s']:.2f} s, 1% {one['s']:.2f} s")
            for p in (inc, idst):
                os.unlink(p)
    cleanup()
    if os.path.exists(dst):
        os.unlink(dst)
    if not KEEP:
        for name in disks:
            for p in (f"{SCRATCH}/{name}.img", f"{SCRATCH}/{name}.img.spec"):
                if os.path.exists(p):
                    os.unlink(p)
    report(disks, rows, extra_rows)


def report(disks, rows, extra):
    L = []
    try:
        load = open("/proc/loadavg").read().split()[0]
    except OSError:
        load = "?"
    prio = ("the benchmark's processes (its sshd, servers, tunnels and tools) ran in their own cgroup with "
            "cpu.shares=262144 against background load; CPU s = that cgroup's CPU time"
            if CGROUPS else "CPU s = whole machine busy time")
    L.append(f"_{time.strftime('%Y-%m-%d %H:%M')}; {os.cpu_count()} CPUs; load average at the end {load}; {prio}; REPS={REPS} (median wall time); "
             f"page cache dropped before each run: {DROP} (then the programs, not the disks, re-read); timed region = command + sync; "
             f"MB/s = logical size / wall, MB = 10^6 B; all copies verified with cmp._\n")
    if rows:
        L.append("### Copy through ssh (one VM plays both hosts; loopback)\n")
        L.append("| disk | tool | wall s (median / min) | MB/s | bytes on the wire | wire / non-zero data | CPU s | vs nbdcopy | ok |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for r in rows:
            wire = f"{r['wire']:,}" if r.get("wire") is not None else "n/a"
            wr = f"{r['wire'] / r['data']:.3f}" if r.get("wire") else "n/a"
            setup = f" (+{r['setup']:.2f} s setup)" if "setup" in r else ""
            L.append(f"| {r['disk']} | {r['tool']} | {r['s']:.2f} / {r['min']:.2f}{setup} | {r['mbps']:,.0f} | {wire} | {wr} | "
                     f"{r['cpu']:.1f} | {r['ratio']:.2f}x | {'yes' if r['ok'] else 'NO'} |")
        L.append("")
    ver = [e for e in extra if e["kind"] == "verify"]
    if ver:
        L.append("### Verification cost (ours with vs without hashing)\n")
        L.append("| disk | verified s | --no-verify s | overhead | CPU s verified / unverified |")
        L.append("|---|---:|---:|---:|---:|")
        for e in ver:
            L.append(f"| {e['disk']} | {e['verified']:.2f} | {e['unverified']:.2f} | {e['overhead'] * 100:+.0f} % | {e['cpu_v']:.1f} / {e['cpu_u']:.1f} |")
        L.append("")
    inc = [e for e in extra if e["kind"] == "incremental"]
    if inc:
        L.append("### Incremental (chunk map): 1 % of the 4 MiB chunks rewritten on the source\n")
        L.append("| disk | full s | rerun, unchanged s | 1 % changed s | chunks changed | bytes copied | wire | 1 % / full | ok |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for e in inc:
            L.append(f"| {e['disk']} | {e['full']:.2f} | {e['same']:.2f} | {e['inc']:.2f} | {e['chunks']} | {e['inc_copied']:,} | "
                     f"{e['inc_wire']:,} | {e['ratio'] * 100:.1f} % | {'yes' if e['ok'] else 'NO'} |")
        L.append("")
    text = "\n".join(L)
    print(text)
    with open(os.environ.get("REPORT", f"{HERE}/last-run.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
        leave_cgroups()
