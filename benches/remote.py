#!/usr/bin/env python3
"""modelvault remote benchmark: mvault push/clone/pull against restic's s3: backend, on one local moto server.

    python3 benches/remote.py --mvault target/release/mvault --out /tmp/remote.md      # MiniLM + 2 GiB, 3 rounds
    python3 benches/remote.py --quick                                                   # MiniLM only, 2 rounds

Python 3 standard library only (moto runs in its own venv). See benches/README.md, "Remote", for what each
figure means. Reuses benches/run.py's measuring (wait4, fsync of outputs, cold page cache as root) and its
generator of the 2 GiB model.
"""

import argparse
import datetime
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (benches/run.py: Runner, make_bf16_safetensors, machine facts)

REPO = base.REPO
MINILM = base.MINILM
MOTO_VERSION = "5.2.5"
MIB, GIB = base.MIB, base.GIB
READY_WITHIN = 30.0  # seconds for moto to listen
STOP_WITHIN = 10.0  # seconds for moto to exit after SIGTERM, then SIGKILL
log = base.log

# moto's own `moto_server` with one change: requests are served one at a time (the mode tests/common/s3.rs
# uses: moto 5.2.5 checks `If-None-Match: *` and then writes without a lock, so only served one at a time does
# it keep create-only writes exclusive, which `remote add`'s probe and mvault's log need).
MOTO_SERIAL = r"""
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=False, request_handler=MotoRequestHandler)
"""


# ---------------------------------------------------------------------------------------------
# moto: install, start, stop
# ---------------------------------------------------------------------------------------------


def default_moto_venv():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    return os.path.join(target, "test-servers", f"moto-{MOTO_VERSION}")


def ensure_moto(venv, no_install):
    """The venv the tests install (tests/common/s3.rs: `python3 -m venv` + `pip install moto[server]==5.2.5`,
    then an `.installed` marker); installed the same way when missing."""
    py = os.path.join(venv, "bin", "python")
    if os.path.exists(os.path.join(venv, ".installed")) and os.path.exists(py):
        return py
    if no_install:
        sys.exit(f"moto is not installed in {venv}; run `cargo test --release --test remote` once (it installs it), "
                 f"or rerun without --no-install")
    spec = f"moto[server]=={MOTO_VERSION}"
    log(f"installing {spec} into {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run(["python3", "-m", "venv", venv], check=True)
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", spec], check=True)
    with open(os.path.join(venv, ".installed"), "w") as f:
        f.write(spec)
    return py


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    """user+sys CPU seconds a process has used so far (from /proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def proc_hwm_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Moto:
    """A fresh moto server on 127.0.0.1 (one request at a time unless `threaded`); its objects spill to files
    under `dir` (moto keeps objects over 8 MiB in temporary files). Stopped by `stop()`, bounded in time."""

    def __init__(self, python, dir, threaded):
        self.port = free_port()
        self.dir = dir
        self.log_path = os.path.join(dir, "moto.log")
        tmp = os.path.join(dir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        if threaded:
            argv = [os.path.join(os.path.dirname(python), "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        else:
            argv = [python, "-c", MOTO_SERIAL, str(self.port)]
        env = {**os.environ, "TMPDIR": tmp, "MOTO_PORT": str(self.port)}
        self.logf = open(self.log_path, "ab")
        self.p = subprocess.Popen(argv, env=env, stdout=self.logf, stderr=self.logf, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        t0 = time.monotonic()
        while True:
            if self.p.poll() is not None:
                raise RuntimeError(f"moto exited with {self.p.returncode} before listening; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() - t0 > READY_WITHIN:
                    self.stop()
                    raise RuntimeError(f"moto did not listen on 127.0.0.1:{self.port} within {READY_WITHIN:.0f} s")
                time.sleep(0.1)

    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def create_bucket(self, name):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("PUT", f"/{name}", headers={"Content-Length": "0"})
        r = c.getresponse()
        r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError(f"creating bucket {name} on moto: HTTP {r.status}")

    def cpu(self):
        return proc_cpu(self.p.pid)

    def peak_rss_mib(self):
        return proc_hwm_mib(self.p.pid)

    def logged_requests(self):
        """Requests in moto's own log (werkzeug writes one line per request)."""
        self.logf.flush()
        with open(self.log_path, "rb") as f:
            return sum(1 for line in f if b'] "' in line and b" HTTP/1." in line)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(STOP_WITHIN)
        self.logf.close()


# ---------------------------------------------------------------------------------------------
# A counting HTTP proxy in front of moto (used only for the counting phase, never in timed runs)
# ---------------------------------------------------------------------------------------------


def _read_head(f):
    lines = []
    while True:
        line = f.readline(65537)
        if not line:
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _headers(head):
    out = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            out[k.strip().lower()] = v.strip()
    return out


def _copy_exact(src, dst, n):
    while n:
        b = src.read(min(n, MIB))
        if not b:
            raise ConnectionError("peer closed mid-body")
        dst.write(b)
        n -= len(b)


def _copy_body(src, dst, hdrs, until_eof):
    """Relay one message body (chunked, Content-Length, or until EOF); return its payload bytes."""
    if b"chunked" in hdrs.get(b"transfer-encoding", b"").lower():
        n = 0
        while True:
            line = src.readline(65537)
            dst.write(line)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:
                    t = src.readline(65537)
                    dst.write(t)
                    if t in (b"\r\n", b"\n", b""):
                        return n
            _copy_exact(src, dst, size + 2)
            n += size
    if b"content-length" in hdrs:
        n = int(hdrs[b"content-length"])
        _copy_exact(src, dst, n)
        return n
    if until_eof:
        n = 0
        while True:
            b = src.read1(MIB) if hasattr(src, "read1") else src.read(MIB)
            if not b:
                return n
            dst.write(b)
            n += len(b)
    return 0


def request_kind(method, target, hdrs):
    """LIST / GET / GET (ranged) / HEAD / PUT / PUT (create-only) / DELETE / POST ... for one S3 request."""
    u = urllib.parse.urlsplit(target)
    q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
    parts = [p for p in u.path.split("/") if p]
    bucket_level = len(parts) <= 1
    if method == "GET":
        if bucket_level or "list-type" in q:
            return "LIST"
        return "GET (ranged)" if b"range" in hdrs else "GET"
    if method == "PUT":
        if bucket_level:
            return "PUT (bucket)"
        if "partNumber" in q:
            return "PUT (multipart part)"
        if b"if-none-match" in hdrs:
            return "PUT (create-only)"
        return "PUT"
    if method == "POST":
        if "uploads" in q:
            return "POST (multipart start)"
        if "uploadId" in q:
            return "POST (multipart complete)"
        if "delete" in q:
            return "POST (delete objects)"
        return "POST"
    return method


class CountingProxy:
    """Relays HTTP/1.x between clients and moto byte for byte, counting each request by kind with its request
    and response body bytes. One upstream connection per request (the serial moto answers HTTP/1.0 and closes
    after each response); the client connection is closed when the upstream response says so."""

    def __init__(self, upstream_port):
        self.up = upstream_port
        self.lock = threading.Lock()
        self.counts = {}
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def take(self):
        """The counts since the last take(): {kind: [requests, bytes up, bytes down, non-2xx, seconds]}, where
        seconds is the sum over the kind's requests of the time from connecting upstream to the response's end
        (with a server serving one request at a time: the time it spent on them, including the transfer)."""
        with self.lock:
            c, self.counts = self.counts, {}
        return c

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, client):
        cin, cout = client.makefile("rb"), client.makefile("wb")
        try:
            while self._one(cin, cout, client):
                pass
        except (OSError, ValueError, ConnectionError):
            pass
        finally:
            for f in (cin, cout):
                try:
                    f.close()
                except OSError:
                    pass
            client.close()

    def _one(self, cin, cout, client):
        head = _read_head(cin)
        if not head:
            return False
        hdrs = _headers(head)
        method, target = head.split(b" ", 2)[:2]
        method, target = method.decode(), target.decode("latin-1")
        if hdrs.get(b"expect", b"").lower() == b"100-continue":
            cout.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cout.flush()
            head = b"\r\n".join(l for l in head.split(b"\r\n") if not l.lower().startswith(b"expect:"))
        t0 = time.perf_counter()
        up = socket.create_connection(("127.0.0.1", self.up), timeout=300)
        uin, uout = up.makefile("rb"), up.makefile("wb")
        try:
            uout.write(head)
            sent = _copy_body(cin, uout, hdrs, until_eof=False)
            uout.flush()
            rhead = _read_head(uin)
            if not rhead:
                raise ConnectionError("upstream closed without a response")
            rh = _headers(rhead)
            status_line = rhead.split(b"\r\n", 1)[0]
            status = int(status_line.split()[1])
            cout.write(rhead)
            no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
            framed = b"content-length" in rh or b"chunked" in rh.get(b"transfer-encoding", b"").lower()
            got = 0 if no_body else _copy_body(uin, cout, rh, until_eof=True)
            cout.flush()
        finally:
            for f in (uin, uout):
                try:
                    f.close()
                except OSError:
                    pass
            up.close()
        kind = request_kind(method, target, hdrs)
        with self.lock:
            row = self.counts.setdefault(kind, [0, 0, 0, 0, 0.0])
            row[0] += 1
            row[1] += sent
            row[2] += got
            row[3] += 0 if 200 <= status < 300 else 1
            row[4] += time.perf_counter() - t0
        keep = (status_line.startswith(b"HTTP/1.1") and rh.get(b"connection", b"").lower() != b"close"
                and (framed or no_body))
        return keep

    def stop(self):
        self.stopping = True
        self.sock.close()


def totals(counts):
    return [sum(v[i] for v in counts.values()) for i in range(5)]


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def safetensors_tensors(path):
    """[(name, absolute offset, length)] of a safetensors file, in file order."""
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
    out = []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out.append((name, 8 + hlen + a, b - a))
    return sorted(out, key=lambda x: x[1])


def fine_tune(src, dst, k):
    """Copy `src` to `dst` with k of its n tensors (evenly spread over the file) overwritten by random bytes of
    the same length: a fine-tune that changed k tensors. Returns (names, bytes of those k tensors, n)."""
    ts = safetensors_tensors(src)
    n = len(ts)
    k = min(k, n)
    picks = sorted({(2 * i + 1) * n // (2 * k) for i in range(k)})
    shutil.copyfile(src, dst)
    changed = 0
    with open(dst, "r+b") as f:
        for i in picks:
            _, off, length = ts[i]
            f.seek(off)
            left = length
            while left:
                piece = min(left, 8 * MIB)
                f.write(os.urandom(piece))
                left -= piece
            changed += length
        f.flush()
        os.fsync(f.fileno())
    return [ts[i][0] for i in picks], changed, n


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(8 * MIB)
            if not b:
                return h.hexdigest()
            h.update(b)


def find_file(root, basename):
    for r, _, files in os.walk(root):
        if basename in files:
            return os.path.join(r, basename)
    raise RuntimeError(f"{basename} not found under {root}")


# ---------------------------------------------------------------------------------------------
# Running one command (as benches/run.py's Runner, plus a time bound and the server's CPU time)
# ---------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, work, env, server, timeout):
        self.work, self.env, self.server, self.timeout = work, env, server, timeout
        self.logfile = os.path.join(work, "commands.log")

    def run(self, argv, durable=(), cold=True, env=None, capture=False):
        """Run argv, reap it with wait4 (peak RSS, CPU), fsync its outputs; wall time covers process start to
        the end of the fsync. The server's CPU time over the same span goes in `srv_cpu`. A command still
        running after `timeout` seconds is killed and the run fails."""
        if cold:
            base.make_cold()
        e = dict(self.env)
        e.update(env or {})
        out_path = os.path.join(self.work, "stdout.tmp")
        with open(out_path, "wb") as out, open(self.logfile, "ab") as err:
            err.write(("\n$ " + " ".join(argv) + "\n").encode())
            err.flush()
            c0 = self.server.cpu()
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, env=e, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            timer = threading.Timer(self.timeout, p.kill)
            timer.start()
            _, status, ru = os.wait4(p.pid, 0)
            timer.cancel()
            p.returncode = os.waitstatus_to_exitcode(status)
            base.make_durable(durable)
            wall = time.perf_counter() - t0
            c1 = self.server.cpu()
        with open(out_path, "rb") as f:
            stdout = f.read().decode(errors="replace")
        if p.returncode != 0:
            with open(self.logfile, "rb") as f:
                tail = f.read()[-3000:].decode(errors="replace")
            raise RuntimeError(f"command failed (exit {p.returncode}): {' '.join(argv)}\n{tail}")
        s = {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_kib": ru.ru_maxrss,
             "srv_cpu": (c1 - c0) if c0 is not None and c1 is not None else 0.0}
        if capture:
            s["stdout"] = stdout
        return s


def aws_env(endpoint):
    """Dummy credentials (moto accepts any) and the endpoint, for mvault and restic alike."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench-access-key", "AWS_SECRET_ACCESS_KEY": "bench-secret-key"}


def base_env(rd, endpoint, restic_bucket):
    e = {k: v for k, v in os.environ.items()
         if k not in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "MVAULT_VAULT", "MVAULT_PASSPHRASE", "RESTIC_REPOSITORY")}
    pw = os.path.join(rd, "passphrase")
    with open(pw, "wb") as f:
        f.write(base.PASSPHRASE)
    e.update(aws_env(endpoint))
    e.update({"MVAULT_PASSPHRASE_FILE": pw, "RESTIC_PASSWORD": base.PASSPHRASE.decode().strip(),
              "RESTIC_REPOSITORY": f"s3:{endpoint}/{restic_bucket}"})
    return e


MV_BUCKET, RESTIC_BUCKET = "mvault-bench", "restic-bench"
MV_URL = f"s3://{MV_BUCKET}/models"


# ---------------------------------------------------------------------------------------------
# Timed rounds: push vs backup, clone + get vs restore
# ---------------------------------------------------------------------------------------------


def merge(a, b):
    return {"wall": a["wall"] + b["wall"], "cpu": a["cpu"] + b["cpu"], "rss_kib": max(a["rss_kib"], b["rss_kib"]),
            "srv_cpu": a["srv_cpu"] + b["srv_cpu"]}


def bench_input(label, path, rounds, work, mv, cfg):
    size = os.path.getsize(path)
    want = sha256_file(path)
    samples, extra = {}, {"load": [], "probe": [], "moto_rss": [], "order": []}

    def add(name, s):
        s["mbps"] = size / s["wall"] / 1e6
        samples.setdefault(name, []).append(s)
        log(f"  {name:28s} {s['wall']:8.3f} s  {s['mbps']:8.1f} MB/s  RSS {s['rss_kib'] / 1024:7.1f} MiB"
            f"  CPU {s['cpu'] / s['wall']:.2f}  moto CPU {s['srv_cpu'] / s['wall']:.2f}")
        return s

    for r in range(rounds):
        extra["load"].append(base.loadavg().split()[0])
        log(f"[{label}] round {r + 1}/{rounds}  (load average {base.loadavg()})")
        rd = tempfile.mkdtemp(prefix=f"round{r}-", dir=work)
        srv = None
        try:
            # A fresh server per round: moto holds every object it was given until it stops.
            srv = Moto(cfg["python"], rd, cfg["threaded"])
            srv.create_bucket(MV_BUCKET)
            srv.create_bucket(RESTIC_BUCKET)
            env = base_env(rd, srv.endpoint(), RESTIC_BUCKET)
            run = Runner(rd, env, srv, cfg["timeout"]).run
            va, vb = os.path.join(rd, "a.mvault"), os.path.join(rd, "b.mvault")
            cache_a, cache_b = ({"RESTIC_CACHE_DIR": os.path.join(rd, c)} for c in ("restic-cache-a", "restic-cache-b"))
            # Untimed set-up: a vault holding the model, its remote (the probe is timed apart), a restic repository.
            run([mv, "--quiet", "--vault", va, "init"], cold=False)
            run([mv, "--quiet", "--vault", va, "put", path, "--name", "bench"], cold=False)
            extra["probe"].append(run([mv, "--quiet", "--vault", va, "remote", "add", "origin", MV_URL],
                                      cold=False)["wall"])
            run(["restic", "--quiet", "init"], cold=False, env=cache_a)
            mv_first = r % 2 == 0
            extra["order"].append("mvault first" if mv_first else "restic first")

            def push():
                add("mvault push", run([mv, "--quiet", "--vault", va, "push"], durable=[va]))

            def backup():
                add("restic backup", run(["restic", "--quiet", "backup", path], env=cache_a))

            out, rest = os.path.join(rd, "get"), os.path.join(rd, "restore")

            def clone_get():
                s1 = add("mvault clone", run([mv, "--quiet", "clone", MV_URL, vb], durable=[vb]))
                s2 = add("mvault get (from the clone)",
                         run([mv, "--quiet", "--vault", vb, "get", "bench", "-o", out], durable=[out]))
                add("mvault clone + get", merge(s1, s2))

            def on_demand():
                # A metadata-only clone, then a get that reads the chunks from the remote without keeping
                # them: the output file is the only thing written with model bytes, as for restic restore.
                vc, out2 = os.path.join(rd, "c.mvault"), os.path.join(rd, "get-on-demand")
                s1 = add("mvault clone --metadata-only",
                         run([mv, "--quiet", "clone", "--metadata-only", MV_URL, vc], durable=[vc]))
                s2 = add("mvault get --no-cache (on demand)",
                         run([mv, "--quiet", "--vault", vc, "get", "bench", "--no-cache", "--remote", "origin",
                              "-o", out2], durable=[out2]))
                add("mvault metadata-only clone + on-demand get", merge(s1, s2))
                got_extra.append(os.path.join(out2, os.path.basename(path)))

            def restore():
                # A second machine: restic with an empty cache, as the clone starts from nothing.
                add("restic restore", run(["restic", "--quiet", "restore", "latest", "--target", rest],
                                          durable=[rest], env=cache_b))

            got_extra = []
            mine = [push, clone_get] + ([on_demand] if cfg["on_demand"] else [])
            peers = [backup, restore]
            order = [mine[0], peers[0], *mine[1:], peers[1]] if mv_first else [peers[0], mine[0], peers[1], *mine[1:]]
            for f in order:
                f()
            got = [os.path.join(out, os.path.basename(path)), find_file(rest, os.path.basename(path)), *got_extra]
            for g in got:
                if os.path.getsize(g) != size or (r == 0 and sha256_file(g) != want):
                    raise RuntimeError(f"restored file differs from the input: {g}")
            extra["moto_rss"].append(srv.peak_rss_mib() or 0.0)
        finally:
            if srv:
                srv.stop()
            shutil.rmtree(rd, ignore_errors=True)
    return {"label": label, "size": size, "samples": samples, "extra": extra, "rounds": rounds}


# ---------------------------------------------------------------------------------------------
# Counting phase (untimed, through the counting proxy): requests of a push; a fine-tune's pull
# ---------------------------------------------------------------------------------------------


def count_input(label, path, work, mv, cfg, k):
    rd = tempfile.mkdtemp(prefix="count-", dir=work)
    srv = proxy = None
    counts, notes = {}, {}
    try:
        srv = Moto(cfg["python"], rd, cfg["threaded"])
        srv.create_bucket(MV_BUCKET)
        srv.create_bucket(RESTIC_BUCKET)
        proxy = CountingProxy(srv.port)
        env = base_env(rd, proxy.endpoint(), RESTIC_BUCKET)
        run = Runner(rd, env, srv, cfg["timeout"]).run
        va, vb = os.path.join(rd, "a.mvault"), os.path.join(rd, "b.mvault")
        cache_a = {"RESTIC_CACHE_DIR": os.path.join(rd, "restic-cache-a")}

        def counted(name, argv, **kw):
            proxy.take()
            before = srv.logged_requests()
            s = run(argv, cold=False, capture=True, **kw)
            time.sleep(0.2)  # let moto's log line of the last request reach the file
            counts[name] = {"kinds": proxy.take(), "moto_log": srv.logged_requests() - before,
                            "wall": s["wall"], "srv_cpu": s["srv_cpu"], "cpu": s["cpu"], "stdout": s["stdout"].strip()}
            log(f"  {name:40s} {totals(counts[name]['kinds'])[0]:6d} requests (moto's log: {counts[name]['moto_log']})")
            return counts[name]

        log(f"[{label}] counting requests through the proxy")
        run([mv, "--quiet", "--vault", va, "init"], cold=False)
        run([mv, "--quiet", "--vault", va, "put", path, "--name", "bench"], cold=False)
        counted("mvault remote add (probe)", [mv, "--quiet", "--vault", va, "remote", "add", "origin", MV_URL])
        counted("mvault push", [mv, "--quiet", "--json", "--vault", va, "push"])
        counted("restic init", ["restic", "--quiet", "init"], env=cache_a)
        counted("restic backup", ["restic", "--quiet", "backup", path], env=cache_a)
        counted("mvault clone (probe + pull)", [mv, "--quiet", "--json", "clone", MV_URL, vb])

        ftdir = os.path.join(rd, "fine-tuned")
        os.makedirs(ftdir)
        ft = os.path.join(ftdir, os.path.basename(path))
        names, changed, n = fine_tune(path, ft, k)
        notes.update({"k": len(names), "n": n, "names": names, "changed_bytes": changed})
        run([mv, "--quiet", "--vault", va, "put", ft, "--name", "bench"], cold=False)
        counted("mvault push (fine-tune)", [mv, "--quiet", "--json", "--vault", va, "push"])
        counted("mvault pull (fine-tune)", [mv, "--quiet", "--json", "--vault", vb, "pull"])
        counted("restic backup (fine-tune)", ["restic", "--quiet", "backup", ft], env=cache_a)
        out = os.path.join(rd, "get2")
        run([mv, "--quiet", "--vault", vb, "get", "bench@2", "-o", out], cold=False)
        if sha256_file(os.path.join(out, os.path.basename(path))) != sha256_file(ft):
            raise RuntimeError("the pulled fine-tune differs from what was put")
        notes["moto_rss"] = srv.peak_rss_mib()
    finally:
        if proxy:
            proxy.stop()
        if srv:
            srv.stop()
        shutil.rmtree(rd, ignore_errors=True)
    return {"label": label, "size": os.path.getsize(path), "counts": counts, "notes": notes}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

med_range, f_mbps, f_s, f_ratio = base.med_range, base.f_mbps, base.f_s, base.f_ratio
KIND_ORDER = ["LIST", "HEAD", "GET", "GET (ranged)", "PUT", "PUT (create-only)", "PUT (multipart part)",
              "POST (multipart start)", "POST (multipart complete)", "DELETE", "POST (delete objects)",
              "PUT (bucket)", "POST"]


def f_bytes(n):
    if n >= 10 * MIB:
        return f"{n / MIB:,.1f} MiB"
    if n >= 10 * 1024:
        return f"{n / 1024:,.1f} KiB"
    return f"{n:,} B"


def ratios(res, a, b):
    return [x["mbps"] / y["mbps"] for x, y in zip(res["samples"][a], res["samples"][b])]


def timed_section(res):
    s, size, ex = res["samples"], res["size"], res["extra"]
    L = [f"## {res['label']} ({size:,} bytes, {res['rounds']} rounds)\n",
         "| command | wall s | MB/s | peak RSS MiB (max) | CPU (user+sys)/wall | CPU s | moto CPU/wall | moto CPU s |",
         "|---|---|---|---|---|---|---|---|"]
    for name, v in s.items():
        wall = med_range([x["wall"] for x in v], f_s)
        mbps = med_range([x["mbps"] for x in v], f_mbps)
        rss = max(x["rss_kib"] for x in v) / 1024
        cpu = med_range([x["cpu"] / x["wall"] for x in v], lambda c: f"{c:.2f}")
        srv = med_range([x["srv_cpu"] / x["wall"] for x in v], lambda c: f"{c:.2f}")
        cpu_s = med_range([x["cpu"] for x in v], lambda c: f"{c:.2f}")
        srv_s = med_range([x["srv_cpu"] for x in v], lambda c: f"{c:.2f}")
        L.append(f"| {name} | {wall} | {mbps} | {rss:,.1f} | {cpu} | {cpu_s} | {srv} | {srv_s} |")
    L += ["", "| ratio (mvault ÷ restic, MB/s, pair by pair) | median (min–max) |", "|---|---|",
          f"| push ÷ restic backup | {med_range(ratios(res, 'mvault push', 'restic backup'), f_ratio)} |",
          f"| clone + get ÷ restic restore | "
          f"{med_range(ratios(res, 'mvault clone + get', 'restic restore'), f_ratio)} |",
          f"| clone alone ÷ restic restore | {med_range(ratios(res, 'mvault clone', 'restic restore'), f_ratio)} |",
          *([f"| metadata-only clone + on-demand get ÷ restic restore | "
             f"{med_range(ratios(res, 'mvault metadata-only clone + on-demand get', 'restic restore'), f_ratio)} |"]
            if 'mvault metadata-only clone + on-demand get' in res["samples"] else []),
          "", "| other figure | median (min–max) |", "|---|---|",
          f"| `remote add` (the probe: 2 create-only writes, 5 rounds of 8 racing writers, deletes), s | "
          f"{med_range(ex['probe'], f_s)} |",
          f"| moto peak RSS over the round, MiB | {med_range(ex['moto_rss'], lambda x: f'{x:,.0f}')} |", ""]
    return L


def count_section(c):
    counts, notes, size = c["counts"], c["notes"], c["size"]
    L = [f"### Requests and bytes at the proxy: {c['label']}\n",
         "| command | requests | by kind (count, seconds in those requests) | bytes up (request bodies) | "
         "bytes down (response bodies) | non-2xx | moto's log | wall s | CPU s | moto CPU s |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for name, v in counts.items():
        kinds = v["kinds"]
        order = [k for k in KIND_ORDER if k in kinds] + sorted(k for k in kinds if k not in KIND_ORDER)
        by = ", ".join(f"{k} {kinds[k][0]} ({kinds[k][4]:.1f} s)" for k in order) or "–"
        n, up, down, bad, _ = totals(kinds)
        L.append(f"| {name} | {n:,} | {by} | {f_bytes(up)} | {f_bytes(down)} | {bad} | {v['moto_log']:,} | "
                 f"{v['wall']:.2f} | {v['cpu']:.2f} | {v['srv_cpu']:.2f} |")
    L.append("")
    if notes.get("k"):
        ch = notes["changed_bytes"]
        pull = totals(counts["mvault pull (fine-tune)"]["kinds"])
        push = totals(counts["mvault push (fine-tune)"]["kinds"])
        rb = totals(counts["restic backup (fine-tune)"]["kinds"])
        names = ", ".join(f"`{x}`" for x in notes["names"][:6]) + (" …" if len(notes["names"]) > 6 else "")
        L += [f"Fine-tune: {notes['k']} of {notes['n']} tensors rewritten with new bytes ({names}): "
              f"{ch:,} bytes = {ch / size * 100:.1f} % of the file.\n",
              "| after the fine-tune | requests | bytes moved | ÷ the changed tensors' bytes |", "|---|---|---|---|",
              f"| mvault push (up) | {push[0]:,} | {push[1]:,} | {push[1] / ch:.3f} |",
              f"| mvault pull (down) | {pull[0]:,} | {pull[2]:,} | {pull[2] / ch:.3f} |",
              f"| restic backup (up, for comparison) | {rb[0]:,} | {rb[1]:,} | {rb[1] / ch:.3f} |", ""]
    for name in ("mvault push", "mvault clone (probe + pull)", "mvault pull (fine-tune)"):
        if name in counts and counts[name]["stdout"]:
            L.append(f"<details><summary>{name}: mvault's own report (--json)</summary>\n\n```json\n"
                     f"{counts[name]['stdout'][:3000]}\n```\n</details>\n")
    return L


def report(results, counted, env_rows, cmdline):
    L = ["# modelvault remote benchmark results\n",
         f"Produced by `{cmdline}`; see benches/README.md (\"Remote\") for what each figure means.\n",
         "| | |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in env_rows]
    L += ["", "MB/s = 10^6 bytes of model per second of wall time (process start to the end of the fsync of "
          "everything the command wrote locally). Median (min–max) over the rounds; ratios pair by pair within a "
          "round, above 1× mvault is faster. moto CPU/wall: the server's CPU time over the command's wall time "
          "(1.00 = moto kept one core busy the whole time: moto, which serves one request at a time, was the "
          "limit).\n"]
    for res in results:
        L += timed_section(res)
    for c in counted:
        L += count_section(c)
    L.append("<details><summary>Raw samples (wall seconds per round)</summary>\n")
    for res in results:
        L += [f"{res['label']}:\n", "| command | " + " | ".join(f"r{i + 1}" for i in range(res["rounds"])) + " |",
              "|---|" + "---|" * res["rounds"],
              "| load average (1 min) at round start | " + " | ".join(res["extra"]["load"]) + " |",
              "| order | " + " | ".join(res["extra"]["order"]) + " |"]
        for name, v in res["samples"].items():
            L.append(f"| {name} | " + " | ".join(f"{x['wall']:.3f}" for x in v) + " |")
        L.append("")
    L.append("</details>\n")
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="MiniLM only (smoke test of the harness)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds for MiniLM (default 3)")
    ap.add_argument("--large-rounds", type=int, default=2, help="rounds for the generated model (default 2)")
    ap.add_argument("--size-gib", type=float, default=2.0, help="size of the generated BF16 model (default 2)")
    ap.add_argument("--changed", type=int, default=4, help="tensors the fine-tune rewrites (default 4)")
    ap.add_argument("--workdir", help="parent of the temporary directory (default: the system temp dir, "
                    "unless it is tmpfs, then /var/tmp)")
    ap.add_argument("--out", help="also write the Markdown report to this file (it is always printed)")
    ap.add_argument("--json-out", help="also write every measurement (raw samples, counts) as JSON to this file")
    ap.add_argument("--mvault", help="use this mvault binary instead of running cargo build --release")
    ap.add_argument("--moto-venv", default=default_moto_venv(),
                    help=f"venv with moto[server]=={MOTO_VERSION} (default: the one the tests install, %(default)s)")
    ap.add_argument("--moto-threaded", action="store_true",
                    help="run moto_server as it ships (threaded) instead of one request at a time")
    ap.add_argument("--command-timeout", type=float, default=1800, help="kill a command after this many seconds")
    ap.add_argument("--no-install", action="store_true", help="never install moto or restic")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    if a.rounds < 1 or a.large_rounds < 1:
        sys.exit("--rounds and --large-rounds must be at least 1")
    if shutil.which("restic") is None:
        sys.exit("restic is missing: install it first (`sudo apt-get install -y restic` on Debian/Ubuntu)")
    if not os.path.isfile(MINILM):
        sys.exit(f"input not found: {MINILM}")
    python = ensure_moto(a.moto_venv, a.no_install)
    parent = a.workdir or tempfile.gettempdir()
    if a.workdir is None and base.fs_type(parent) == "tmpfs":
        parent = "/var/tmp"
    gen_bytes = int(a.size_gib * GIB)
    need = (os.path.getsize(MINILM) if a.quick else gen_bytes) * 10
    if shutil.disk_usage(parent).free < need:
        sys.exit(f"not enough free space in {parent}: need about {need / GIB:.1f} GiB")
    work = tempfile.mkdtemp(prefix="mvault-remote-bench-", dir=parent)
    load_before = base.loadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    log(f"work directory: {work}; load average {load_before}; "
        + ("page cache dropped before timed commands (root)" if base.IS_ROOT else "not root: page cache kept"))
    cfg = {"python": python, "threaded": a.moto_threaded, "timeout": a.command_timeout}
    try:
        revision = base.git_revision() if a.mvault is None else f"prebuilt binary {a.mvault}"
        mv = base.build_mvault(work, a.mvault)
        help_text = subprocess.run([mv, "clone", "--help"], capture_output=True, text=True).stdout
        cfg["on_demand"] = "--metadata-only" in help_text
        if not cfg["on_demand"]:
            log("this mvault has no `clone --metadata-only`: the on-demand rows are left out")
        inputs = [("all-MiniLM-L6-v2 safetensors", MINILM, a.rounds)]
        if not a.quick:
            gen = os.path.join(work, "random-bf16.safetensors")
            log(f"generating {gen_bytes / GIB:g} GiB of random BF16 tensors: {gen}")
            n = base.make_bf16_safetensors(gen, gen_bytes)
            inputs.append((f"generated {a.size_gib:g} GiB BF16 safetensors ({n} × [4096, 4096])", gen, a.large_rounds))
        results, counted = [], []
        for label, path, rounds in inputs:
            results.append(bench_input(label, path, rounds, work, mv, cfg))
            counted.append(count_input(label, path, work, mv, cfg, a.changed))
        finished = datetime.datetime.now(datetime.timezone.utc)
        loads = [x for r in results for x in r["extra"]["load"]]
        env_rows = [
            ("date (UTC)", f"{started:%Y-%m-%d %H:%M} – {finished:%H:%M}"),
            ("mvault revision", revision),
            ("CPU", f"{base.cpu_model()}, nproc {os.cpu_count()} ({base.cpu_flags()})"),
            ("memory", f"{base.mem_total() / GIB:.1f} GiB"),
            ("work dir filesystem", f"{base.fs_type(work)} ({parent})"),
            ("load average (1/5/15 min) before / after", f"{load_before} / {base.loadavg()}"),
            ("load average (1 min) at each round's start", ", ".join(loads)),
            ("page cache", "dropped before every timed command (run as root)" if base.IS_ROOT
             else "not dropped (not root): reads may come from memory"),
            ("server", f"moto {MOTO_VERSION} on 127.0.0.1, " + ("threaded (as shipped)" if a.moto_threaded else
             "one request at a time (as the tests run it)") + ", a fresh server per round"),
            ("peers", f"restic {base.try_sh(['restic', 'version']).split()[1]} `s3:` backend (repository "
             f"`s3:http://127.0.0.1:PORT/{RESTIC_BUCKET}`, password from RESTIC_PASSWORD); restore with an empty "
             "cache, as a second machine"),
            ("mvault", f"vault A: init + put (untimed), `remote add origin {MV_URL}` (timed apart), then `push`; "
             "vault B: `clone` (runs the same probe, then pulls everything) and `get`; default Argon2id, passphrase "
             "from MVAULT_PASSPHRASE_FILE"),
        ]
        text = report(results, counted, env_rows, " ".join(["python3 benches/remote.py"] + sys.argv[1:]))
        print(text)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text)
            log(f"wrote {a.out}")
        if a.json_out:
            with open(a.json_out, "w") as f:
                json.dump({"env": env_rows, "results": results, "counted": counted}, f, indent=1)
            log(f"wrote {a.json_out}")
    finally:
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
