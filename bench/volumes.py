#!/usr/bin/env python3
"""Volume benchmarks of kiln, each beside its baseline in the same run.

- clone of a 10 GiB ext4-file volume holding 300 MiB: kiln against
  `cp --sparse=always` and against a full copy (`cp --sparse=never`),
  wall time and allocated size;
- 100 creates of 1 GiB volumes, one at a time and 8 at a time: p50 and
  p99 latency;
- `GET /v1/volumes` with 10,000 volumes in the catalog: latency;
- idle resident memory of kilnd.

Runs a real kilnd (target/release) on a scratch data directory on the
host filesystem (no reflink, so the clone is kiln's hole-preserving copy,
the fair comparison with cp). Needs root (loop mounts). Usage:

    cargo build --release && sudo bench/volumes.py [--volumes 10000]

KILN_BIN_DIR names another folder holding kilnd.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("KILN_BIN_DIR", os.path.join(ROOT, "target", "release"))
MIB = 1 << 20


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=600)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(sock, method, path, body=None):
    conn = UnixHTTPConnection(sock)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"} if data else {}
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {raw.decode(errors='replace')}")
    return json.loads(raw) if raw else None


def allocated(path):
    return os.stat(path).st_blocks * 512


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def pct(values, p):
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def start_daemon(data_dir):
    cfg = os.path.join(data_dir, "config.yaml")
    with open(cfg, "w") as f:
        f.write(
            f"data_dir: {data_dir}\n"
            f"pools:\n  default:\n    driver: ext4-file\n    path: {data_dir}/volumes\n"
            "quotas:\n  default_mib: 1000000000\n"
        )
    proc = subprocess.Popen(
        [os.path.join(BIN, "kilnd"), "--config", cfg],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(data_dir, "kilnd.log"), "w"),
    )
    sock = os.path.join(data_dir, "kiln.sock")
    for _ in range(200):
        try:
            call(sock, "GET", "/healthz")
            return proc, sock
        except (OSError, RuntimeError):
            time.sleep(0.05)
    proc.kill()
    sys.exit("kilnd did not come up; see kilnd.log in the scratch dir")


def fill(device, mib, mnt):
    subprocess.run(["mount", "-o", "loop", device, mnt], check=True)
    try:
        left, i = mib, 0
        while left > 0:
            n = min(left, 10)
            with open(os.path.join(mnt, f"f{i:04}"), "wb") as f:
                f.write(os.urandom(n * MIB))
            left -= n
            i += 1
    finally:
        subprocess.run(["umount", mnt], check=True)


def bench_clone(sock, work):
    call(sock, "POST", "/v1/volumes", {"name": "src", "size_mib": 10240})
    sb = call(sock, "POST", "/v1/sandboxes",
              {"name": "filler", "volumes": [{"volume": "src", "mount": "/data"}]})
    dev = sb["volumes"][0]["device"]
    mnt = tempfile.mkdtemp(dir=work)
    fill(dev, 300, mnt)
    call(sock, "DELETE", "/v1/sandboxes/filler")
    subprocess.run(["sync"], check=True)

    rows = []
    t = timed(lambda: call(sock, "POST", "/v1/volumes/src/clone", {"name": "copy"}))
    sb = call(sock, "POST", "/v1/sandboxes",
              {"name": "probe", "volumes": [{"volume": "copy", "mount": "/data"}]})
    rows.append(("kiln clone", t, allocated(sb["volumes"][0]["device"])))
    call(sock, "DELETE", "/v1/sandboxes/probe")
    # kiln answers only once the copy is on stable storage (it fsyncs the
    # image before renaming it into place); cp does not, so the durable
    # baseline is cp followed by an fsync of the copy (`sync FILE`).
    baselines = (
        ("cp --sparse=always", ["--sparse=always"], False),
        ("cp --sparse=always+fsync", ["--sparse=always"], True),
        ("full copy+fsync", ["--sparse=never"], True),
    )
    for label, flags, durable in baselines:
        dst = os.path.join(work, "cp-baseline.img")

        def copy():
            subprocess.run(["cp", *flags, dev, dst], check=True)
            if durable:
                subprocess.run(["sync", dst], check=True)
        rows.append((label, timed(copy), allocated(dst)))
        os.unlink(dst)

    print("\n## clone of a 10 GiB volume holding 300 MiB")
    print(f"{'method':<26}{'wall s':>8}{'allocated MiB':>15}{'vs cp':>8}{'vs cp+fsync':>13}")
    plain, durable = rows[1][1], rows[2][1]
    for label, t, a in rows:
        print(f"{label:<26}{t:>8.2f}{a / MIB:>15.0f}{t / plain:>7.2f}x{t / durable:>12.2f}x")
    call(sock, "DELETE", "/v1/volumes/copy")
    call(sock, "DELETE", "/v1/volumes/src")


def bench_creates(sock, n=100):
    print("\n## creates of 1 GiB volumes")
    print(f"{'parallel':<10}{'p50 ms':>10}{'p99 ms':>10}{'total s':>10}")
    for par in (1, 8):
        names = [f"c{par}-{i}" for i in range(n)]

        def one(name):
            return timed(lambda: call(sock, "POST", "/v1/volumes",
                                      {"name": name, "size_mib": 1024}))
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(par) as ex:
            lat = list(ex.map(one, names))
        total = time.perf_counter() - t0
        print(f"{par:<10}{pct(lat, 50) * 1000:>10.1f}{pct(lat, 99) * 1000:>10.1f}{total:>10.1f}")
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda nm: call(sock, "DELETE", f"/v1/volumes/{nm}"), names))


def bench_list(sock, count):
    have = len(call(sock, "GET", "/v1/volumes")["volumes"])
    names = [f"l{i:05}" for i in range(have, count)]
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda nm: call(sock, "POST", "/v1/volumes",
                                    {"name": nm, "size_mib": 1}), names))
    fill_s = time.perf_counter() - t0
    lat = [timed(lambda: call(sock, "GET", "/v1/volumes")) for _ in range(20)]
    got = len(call(sock, "GET", "/v1/volumes")["volumes"])
    print(f"\n## volume list with {got} volumes (filled in {fill_s:.0f} s)")
    print(f"p50 {pct(lat, 50) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms "
          f"(target under 100 ms: {'met' if pct(lat, 50) < 0.1 else 'NOT met'})")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--volumes", type=int, default=10000)
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/volumes.py needs root (loop mounts)")
    for b in ("kilnd",):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            sys.exit(f"{b} not built: run cargo build --release first")
    work = tempfile.mkdtemp(prefix="kiln-bench-", dir=args.work)
    proc, sock = start_daemon(work)
    try:
        time.sleep(1)
        print(f"kilnd idle RSS after start: {rss_kib(proc.pid) / 1024:.1f} MiB")
        bench_clone(sock, work)
        bench_creates(sock)
        bench_list(sock, args.volumes)
        time.sleep(1)
        print(f"\nkilnd RSS with {args.volumes} volumes, idle: {rss_kib(proc.pid) / 1024:.1f} MiB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
