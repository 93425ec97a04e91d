#!/usr/bin/env python3
"""modelvault benchmark: mvault against named peers, in the same run, on the same file and disk.

    python3 benches/run.py            # full: MiniLM (87 MiB) + a generated 2 GiB BF16 model, 5 rounds
    python3 benches/run.py --quick    # smoke test: MiniLM only, 3 rounds

Python 3 standard library only. See benches/README.md for what each figure means.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINILM = os.path.normpath(
    os.path.join(REPO, "..", "shared", "corpus", "safetensors", "all-MiniLM-L6-v2.model.safetensors")
)
RESULTS = os.path.join(REPO, "benches", "results.md")
PASSPHRASE = b"modelvault benchmark passphrase\n"
PASSPHRASE2 = b"modelvault benchmark passphrase, changed\n"
MIB = 1 << 20
GIB = 1 << 30
IS_ROOT = os.geteuid() == 0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(argv, **kw):
    """Run an untimed helper command; return its stdout (text)."""
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


def try_sh(argv):
    try:
        return sh(argv, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


# ---------------------------------------------------------------------------------------------
# Setup: peers, build, inputs, environment
# ---------------------------------------------------------------------------------------------


def ensure_peers(no_install):
    missing = [t for t in ("restic", "age", "age-keygen", "openssl", "cp") if shutil.which(t) is None]
    if not missing:
        return
    if IS_ROOT and not no_install:
        log(f"installing peers (missing: {', '.join(missing)}): apt-get update && apt-get install -y restic age")
        subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "restic", "age"], check=True, stdout=subprocess.DEVNULL)
        missing = [t for t in missing if shutil.which(t) is None]
        if not missing:
            return
    sys.exit(
        f"missing peer tools: {', '.join(missing)}. Install them first, e.g. "
        "`sudo apt-get install -y restic age openssl` (Debian/Ubuntu), then rerun."
    )


def build_mvault(work, mvault_bin):
    if mvault_bin is None:
        log("building: cargo build --release")
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
        mvault_bin = os.path.join(REPO, "target", "release", "mvault")
    # Copy the binary so a rebuild in the repository during the run cannot change it between rounds.
    dst = os.path.join(work, "mvault")
    shutil.copy2(mvault_bin, dst)
    return dst


def git_revision():
    rev = try_sh(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"])
    paths = ["--", "src", "Cargo.toml", "Cargo.lock"]
    dirty = try_sh(["git", "-C", REPO, "status", "--porcelain"] + paths)
    if dirty in ("", "?"):
        return rev
    diff = subprocess.run(["git", "-C", REPO, "diff", "HEAD"] + paths, stdout=subprocess.PIPE).stdout
    files = len(dirty.splitlines())
    return f"{rev} + uncommitted changes in {files} file(s) under src/ or Cargo.* (diff sha256 " \
           f"{hashlib.sha256(diff).hexdigest()[:12]})"


def make_bf16_safetensors(path, total_bytes, rows=4096, cols=4096):
    """A safetensors file of random BF16 tensors [rows, cols], written piece by piece (never all in memory)."""
    tensor_bytes = rows * cols * 2
    n = max(1, total_bytes // tensor_bytes)
    header = {"__metadata__": {"format": "pt", "source": "modelvault benches/run.py, random bytes"}}
    off = 0
    for i in range(n):
        header[f"model.layers.{i:03d}.weight"] = {
            "dtype": "BF16",
            "shape": [rows, cols],
            "data_offsets": [off, off + tensor_bytes],
        }
        off += tensor_bytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    piece = 8 * MIB
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        left = off
        while left:
            k = min(piece, left)
            f.write(os.urandom(k))
            left -= k
        f.flush()
        os.fsync(f.fileno())
    return n


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = set(line.split(":", 1)[1].split())
                    return ", ".join(x for x in ("aes", "vaes", "pclmulqdq", "sha_ni", "avx2", "avx512f") if x in fl)
    except OSError:
        pass
    return "?"


def mem_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def fs_type(path):
    t = try_sh(["df", "--output=fstype", path]).splitlines()
    return t[-1].strip() if t else "?"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------------------------------------
# Measuring one command
# ---------------------------------------------------------------------------------------------


def make_durable(paths):
    """fsync every file and directory under `paths` (what `sync` does for them, without flushing the
    rest of the machine's dirty pages, which other processes on a shared machine would add)."""
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                for name in files:
                    fsync_path(os.path.join(root, name))
                fsync_path(root)
        elif os.path.exists(p):
            fsync_path(p)
            fsync_path(os.path.dirname(p) or ".")


def fsync_path(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_cold():
    """Flush dirty pages; as root also drop the page cache so the next command reads from the disk."""
    os.sync()
    if IS_ROOT:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


class Runner:
    def __init__(self, work, env):
        self.work = work
        self.env = env
        self.logfile = os.path.join(work, "commands.log")

    def run(self, argv, durable=(), cold=True, env=None, capture=False):
        """Run argv, wait for it with wait4 (peak RSS and CPU time of the child), then fsync its outputs.
        Wall time covers process start to the end of the fsync."""
        if cold:
            make_cold()
        e = dict(self.env)
        if env:
            e.update(env)
        out_path = os.path.join(self.work, "stdout.tmp")
        with open(out_path, "wb") as out, open(self.logfile, "ab") as err:
            err.write(("\n$ " + " ".join(argv) + "\n").encode())
            err.flush()
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, env=e, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            make_durable(durable)
            wall = time.perf_counter() - t0
        with open(out_path, "rb") as f:
            stdout = f.read()
        if p.returncode != 0:
            with open(self.logfile, "rb") as f:
                tail = f.read()[-3000:].decode(errors="replace")
            raise RuntimeError(f"command failed (exit {p.returncode}): {' '.join(argv)}\n{tail}")
        s = {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_kib": ru.ru_maxrss}
        if capture:
            s["stdout"] = stdout.decode(errors="replace")
        return s


def openssl_speed(decrypt, seconds):
    argv = ["openssl", "speed"] + (["-decrypt"] if decrypt else []) + [
        "-evp", "aes-256-gcm", "-bytes", str(MIB), "-seconds", str(seconds)]
    out = sh(argv, stderr=subprocess.DEVNULL)
    last = [l for l in out.splitlines() if l.strip()][-1].split()
    return float(last[-1].rstrip("k")) * 1000 / 1e6  # 1000s of bytes/s -> MB/s


def dir_size(p):
    if os.path.isfile(p):
        return os.path.getsize(p)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(p) for f in fs)


# ---------------------------------------------------------------------------------------------
# One input, N rounds
# ---------------------------------------------------------------------------------------------

PUT_PEERS = [("restic backup", "restic"), ("age encrypt", "age"), ("cp + fsync", "cp")]
GET_PEERS = [("restic restore", "restic"), ("age decrypt", "age"), ("cp + fsync (cold read)", "cp")]


def bench_input(label, path, rounds, work, tools, openssl_seconds):
    size = os.path.getsize(path)
    samples = {}  # command -> list of sample dicts (one per round)
    extra = {"vault_ratio": [], "vault_alloc_ratio": [], "restic_ratio": [], "age_ratio": [],
             "reput_added": [], "reput_new_bytes": [], "reput_warm_added": [], "load": []}

    def add(name, s):
        s["mbps"] = size / s["wall"] / 1e6
        samples.setdefault(name, []).append(s)
        log(f"  {name:28s} {s['wall']:8.3f} s  {s['mbps']:9.1f} MB/s  RSS {s['rss_kib'] / 1024:7.1f} MiB"
            f"  CPU {s['cpu'] / s['wall']:.2f}")

    mv, key, recipient = tools["mvault"], tools["age_key"], tools["age_recipient"]
    for r in range(rounds):
        extra["load"].append(loadavg().split()[0])
        log(f"[{label}] round {r + 1}/{rounds}  (load average {loadavg()})")
        rd = tempfile.mkdtemp(prefix=f"round{r}-", dir=work)
        try:
            pass1 = os.path.join(rd, "pass1")
            pass2 = os.path.join(rd, "pass2")
            with open(pass1, "wb") as f:
                f.write(PASSPHRASE)
            with open(pass2, "wb") as f:
                f.write(PASSPHRASE2)
            vault = os.path.join(rd, "bench.mvault")
            repo = os.path.join(rd, "restic-repo")
            env = {"MVAULT_VAULT": vault, "MVAULT_PASSPHRASE_FILE": pass1,
                   "RESTIC_REPOSITORY": repo, "RESTIC_PASSWORD": PASSPHRASE.decode().strip(),
                   "RESTIC_CACHE_DIR": os.path.join(rd, "restic-cache")}
            run = Runner(rd, {**os.environ, **env}).run
            # Untimed set-up: a fresh vault (default Argon2id parameters) and a fresh restic repository.
            run([mv, "--quiet", "init"], cold=False)
            run(["restic", "--quiet", "init"], cold=False)
            # Unlock cost on the empty vault: `key usage` (open + unlock) minus `info` (open only), warm.
            add("mvault info, empty vault (open only)", run([mv, "--quiet", "info"], cold=False))
            add("mvault key usage, empty vault (open + unlock)", run([mv, "--quiet", "key", "usage"], cold=False))

            # Put phase, peers alternating.
            add("mvault put", run([mv, "--quiet", "put", path, "--name", "bench"], durable=[vault]))
            vault_after_put = os.path.getsize(vault)
            vault_alloc_after_put = os.stat(vault).st_blocks * 512
            add("restic backup", run(["restic", "--quiet", "backup", path], durable=[repo]))
            enc = os.path.join(rd, "model.age")
            add("age encrypt", run(["age", "-r", recipient, "-o", enc, path], durable=[enc]))
            copy = os.path.join(rd, "copy.safetensors")
            add("cp + fsync", run(["cp", path, copy], durable=[copy]))

            # Get phase, same order; every read is cold (as root).
            out = os.path.join(rd, "get")
            add("mvault get", run([mv, "--quiet", "get", "bench", "-o", out], durable=[out]))
            rest = os.path.join(rd, "restore")
            add("restic restore", run(["restic", "--quiet", "restore", "latest", "--target", rest], durable=[rest]))
            dec = os.path.join(rd, "decrypted.safetensors")
            add("age decrypt", run(["age", "-d", "-i", key, "-o", dec, enc], durable=[dec]))
            copy2 = os.path.join(rd, "copy2.safetensors")
            add("cp + fsync (cold read)", run(["cp", copy, copy2], durable=[copy2]))
            got = os.path.join(out, os.path.basename(path))
            if os.path.getsize(got) != size or os.path.getsize(dec) != size:
                raise RuntimeError("a restored file has the wrong size")

            extra["vault_ratio"].append(vault_after_put / size)
            extra["vault_alloc_ratio"].append(vault_alloc_after_put / size)
            extra["restic_ratio"].append(dir_size(repo) / size)
            extra["age_ratio"].append(os.path.getsize(enc) / size)
            for p in (out, rest, dec, copy2, copy):
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)

            # mvault only: re-put (cold, then warm), key rotate, unlock, passwd.
            before = os.path.getsize(vault)
            s = run([mv, "--quiet", "--json", "put", path, "--name", "bench"], durable=[vault], capture=True)
            extra["reput_added"].append(os.path.getsize(vault) - before)
            extra["reput_new_bytes"].append(json.loads(s.pop("stdout"))["new_bytes"])
            add("mvault re-put (cold)", s)
            before = os.path.getsize(vault)
            add("mvault re-put (warm)", run([mv, "--quiet", "put", path, "--name", "bench"], durable=[vault],
                                            cold=False))
            extra["reput_warm_added"].append(os.path.getsize(vault) - before)
            add("mvault key rotate", run([mv, "--quiet", "key", "rotate"], durable=[vault]))
            add("mvault info, full vault (open only)", run([mv, "--quiet", "info"], cold=False))
            add("mvault key passwd", run([mv, "--quiet", "key", "passwd", "--new-passphrase-file", pass2],
                                         durable=[vault], cold=False))
            # The changed passphrase must unlock (and the old one must not be needed).
            run([mv, "--quiet", "key", "usage"], cold=False, env={"MVAULT_PASSPHRASE_FILE": pass2})

            for name, dec_flag in (("openssl aes-256-gcm encrypt", False), ("openssl aes-256-gcm decrypt", True)):
                mbps = openssl_speed(dec_flag, openssl_seconds)
                samples.setdefault(name, []).append({"mbps": mbps})
                log(f"  {name:28s} {mbps:9.1f} MB/s")
        finally:
            shutil.rmtree(rd, ignore_errors=True)
    return {"label": label, "size": size, "samples": samples, "extra": extra, "rounds": rounds}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def med_range(xs, fmt):
    xs = list(xs)
    if not xs:
        return "–"
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"


def f_mbps(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def f_s(x):
    return f"{x:.3f}" if x < 10 else f"{x:.2f}"


def f_ratio(x):
    return f"{x:.2f}×"


def ratios(res, a, b):
    sa, sb = res["samples"][a], res["samples"][b]
    return [x["mbps"] / y["mbps"] for x, y in zip(sa, sb)]


def report(results, env_info, floors_on):
    L = []
    L.append("# modelvault benchmark results\n")
    L.append("Produced by `python3 benches/run.py" + (" --quick" if env_info["quick"] else "") +
             "`; see benches/README.md for what each figure means.\n")
    L.append("| | |\n|---|---|")
    for k, v in env_info["rows"]:
        L.append(f"| {k} | {v} |")
    L.append("")
    L.append("MB/s = 10^6 bytes of model per second of wall time (process start to the end of the fsync of "
             "everything the command wrote). Figures are median (min–max) over the rounds. Ratios are taken "
             "pair by pair within a round (mvault ÷ peer), then summarised; above 1× means mvault is faster.\n")

    for res in results:
        s, size, ex = res["samples"], res["size"], res["extra"]
        L.append(f"## {res['label']} ({size:,} bytes, {res['rounds']} rounds)\n")
        L.append("| command | wall s | MB/s | peak RSS MiB (max) | CPU (user+sys)/wall |")
        L.append("|---|---|---|---|---|")
        for name, v in s.items():
            if "wall" not in v[0]:
                continue
            wall = med_range([x["wall"] for x in v], f_s)
            mbps = med_range([x["mbps"] for x in v], f_mbps)
            if "info" in name or "key usage" in name or "passwd" in name:
                mbps = "–"
            rss = max(x["rss_kib"] for x in v) / 1024
            cpu = med_range([x["cpu"] / x["wall"] for x in v], lambda c: f"{c:.2f}")
            L.append(f"| {name} | {wall} | {mbps} | {rss:,.1f} | {cpu} |")
        for name, v in s.items():
            if "wall" in v[0]:
                continue
            L.append(f"| {name} (`openssl speed -evp`, 1 MiB blocks, one thread) | – | "
                     f"{med_range([x['mbps'] for x in v], f_mbps)} | – | – |")
        L.append("")
        L.append("| ratio (mvault ÷ peer, MB/s) | median (min–max) |")
        L.append("|---|---|")
        for peer, _ in PUT_PEERS:
            L.append(f"| put ÷ {peer} | {med_range(ratios(res, 'mvault put', peer), f_ratio)} |")
        L.append(f"| put ÷ openssl encrypt | "
                 f"{med_range(ratios(res, 'mvault put', 'openssl aes-256-gcm encrypt'), f_ratio)} |")
        for peer, _ in GET_PEERS:
            L.append(f"| get ÷ {peer} | {med_range(ratios(res, 'mvault get', peer), f_ratio)} |")
        L.append(f"| get ÷ openssl decrypt | "
                 f"{med_range(ratios(res, 'mvault get', 'openssl aes-256-gcm decrypt'), f_ratio)} |")
        L.append(f"| key rotate ÷ put | {med_range(ratios(res, 'mvault key rotate', 'mvault put'), f_ratio)} |")
        L.append(f"| re-put (cold) ÷ cp + fsync (cold read) | "
                 f"{med_range(ratios(res, 'mvault re-put (cold)', 'cp + fsync (cold read)'), f_ratio)} |")
        L.append("")
        unlock = [u["wall"] - i["wall"] for u, i in zip(s["mvault key usage, empty vault (open + unlock)"],
                                                        s["mvault info, empty vault (open only)"])]
        L.append("| other figure | median (min–max) |")
        L.append("|---|---|")
        L.append(f"| vault file ÷ input, after the first put | {med_range(ex['vault_ratio'], lambda x: f'{x:.4f}')} |")
        L.append(f"| vault blocks allocated on disk ÷ input, after the first put | "
                 f"{med_range(ex['vault_alloc_ratio'], lambda x: f'{x:.4f}')} |")
        L.append(f"| restic repository ÷ input | {med_range(ex['restic_ratio'], lambda x: f'{x:.4f}')} |")
        L.append(f"| age file ÷ input | {med_range(ex['age_ratio'], lambda x: f'{x:.4f}')} |")
        L.append(f"| re-put (cold): vault file growth, bytes | {med_range(ex['reput_added'], lambda x: f'{x:,}')} "
                 f"(= {med_range([a / size * 100 for a in ex['reput_added']], lambda x: f'{x:.3f}')} % of input) |")
        L.append(f"| re-put (cold): new chunk bytes reported by put | "
                 f"{med_range(ex['reput_new_bytes'], lambda x: f'{x:,}')} |")
        L.append(f"| re-put (warm): vault file growth, bytes | {med_range(ex['reput_warm_added'], lambda x: f'{x:,}')} |")
        L.append(f"| unlock, default Argon2id (m=64 MiB, t=3, p=4): `key usage` − `info` on the empty vault, s | "
                 f"{med_range(unlock, lambda x: f'{x:.3f}')} |")
        L.append(f"| `key passwd` wall (unlock + new slot, default Argon2id), s | "
                 f"{med_range([x['wall'] for x in s['mvault key passwd']], lambda x: f'{x:.3f}')} |")
        L.append("")

    # Floors
    res = next((r for r in results if r["label"].startswith(floors_on)), results[-1])
    s, size, ex = res["samples"], res["size"], res["extra"]
    L.append(f"## Floors (judged on the median, on the {res['label']})\n")
    if not res["label"].startswith("generated 2 GiB"):
        L.append("_The floors are defined for the generated 2 GiB model, which this run did not measure; the "
                 "verdicts below are for the input named above and only show that the harness works._\n")
    L.append("| floor | measured, median (min–max) | reached |")
    L.append("|---|---|---|")

    def verdict(xs, ok):
        m = statistics.median(xs)
        if ok(m):
            return "**yes**" + ("" if all(ok(x) for x in xs) else " (not in every round)")
        return "**no**" + (" (reached in some rounds)" if any(ok(x) for x in xs) else "")

    r = ratios(res, "mvault put", "restic backup")
    L.append(f"| put ≥ 1.5× restic backup | {med_range(r, f_ratio)} | {verdict(r, lambda x: x >= 1.5)} |")
    r = ratios(res, "mvault put", "age encrypt")
    L.append(f"| put ≥ 1× age encrypt | {med_range(r, f_ratio)} | {verdict(r, lambda x: x >= 1.0)} |")
    r = ratios(res, "mvault get", "restic restore")
    L.append(f"| get ≥ 1× restic restore | {med_range(r, f_ratio)} | {verdict(r, lambda x: x >= 1.0)} |")
    mv_cmds = [k for k in s if k.startswith("mvault") and "wall" in s[k][0]]
    peak = [max(s[k][i]["rss_kib"] for k in mv_cmds) / 1024 for i in range(res["rounds"])]
    worst = max(mv_cmds, key=lambda k: max(x["rss_kib"] for x in s[k]))
    L.append(f"| peak RSS ≤ 256 MiB (every mvault command; highest: {worst}) | "
             f"{med_range(peak, lambda x: f'{x:.1f} MiB')} | {verdict(peak, lambda x: x <= 256)} |")
    added = [a / size * 100 for a in ex["reput_added"]]
    L.append(f"| re-put adds < 1% | {med_range(added, lambda x: f'{x:.3f} %')} | "
             f"{verdict(added, lambda x: x < 1.0)} |")
    for kind in ("cold", "warm"):
        m = [x["mbps"] for x in s[f"mvault re-put ({kind})"]]
        L.append(f"| re-put ≥ 1 GB/s ({kind} page cache) | {med_range(m, lambda x: f'{x:,.0f} MB/s')} | "
                 f"{verdict(m, lambda x: x >= 1000)} |")
    L.append("")
    L.append("<details><summary>Raw samples (wall seconds per round)</summary>\n")
    for res in results:
        L.append(f"{res['label']}:\n")
        L.append("| command | " + " | ".join(f"r{i + 1}" for i in range(res["rounds"])) + " |")
        L.append("|---|" + "---|" * res["rounds"])
        L.append("| load average (1 min) at round start | " + " | ".join(res["extra"]["load"]) + " |")
        for name, v in res["samples"].items():
            key = "wall" if "wall" in v[0] else "mbps"
            unit = "" if key == "wall" else " MB/s"
            L.append(f"| {name} | " + " | ".join(f"{x[key]:.3f}{unit}" for x in v) + " |")
        L.append("")
    L.append("</details>\n")
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="MiniLM only, 3 rounds (smoke test)")
    ap.add_argument("--rounds", type=int, help="rounds per input (default 5, or 3 with --quick)")
    ap.add_argument("--size-gib", type=float, default=2.0, help="size of the generated BF16 model (default 2)")
    ap.add_argument("--workdir", help="parent of the temporary directory for inputs and outputs "
                    "(default: the system temp dir, unless it is tmpfs, then /var/tmp)")
    ap.add_argument("--out", help="write the Markdown report here (default: benches/results.md for a full "
                    "run; a --quick run only prints it)")
    ap.add_argument("--mvault", help="use this mvault binary instead of running cargo build --release")
    ap.add_argument("--no-install", action="store_true", help="never apt-get install missing peers")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--openssl-seconds", type=int, default=2)
    a = ap.parse_args()
    rounds = a.rounds or (3 if a.quick else 5)
    if rounds < 1:
        sys.exit("--rounds must be at least 1")

    ensure_peers(a.no_install)
    if not os.path.isfile(MINILM):
        sys.exit(f"input not found: {MINILM}")
    parent = a.workdir or tempfile.gettempdir()
    if a.workdir is None and fs_type(parent) == "tmpfs":
        parent = "/var/tmp"
    os.makedirs(parent, exist_ok=True)
    gen_bytes = int(a.size_gib * GIB)
    need = (os.path.getsize(MINILM) if a.quick else gen_bytes) * 8
    if shutil.disk_usage(parent).free < need:
        sys.exit(f"not enough free space in {parent}: need about {need / GIB:.1f} GiB")
    work = tempfile.mkdtemp(prefix="mvault-bench-", dir=parent)
    load_before = loadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    log(f"work directory: {work} ({fs_type(work)}); load average {load_before}")
    if IS_ROOT:
        log("running as root: the page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches) "
            "before every timed command except warm re-put, info, key usage and key passwd")
    else:
        log("not root: page cache NOT dropped; reads may be served from memory for every peer alike")
    try:
        revision = git_revision() if a.mvault is None else f"prebuilt binary {a.mvault}"
        mvault = build_mvault(work, a.mvault)
        key = os.path.join(work, "age-key.txt")
        sh(["age-keygen", "-o", key], stderr=subprocess.DEVNULL)
        recipient = sh(["age-keygen", "-y", key]).strip()
        tools = {"mvault": mvault, "age_key": key, "age_recipient": recipient}

        inputs = [("all-MiniLM-L6-v2 safetensors", MINILM)]
        if not a.quick:
            gen = os.path.join(work, "random-bf16.safetensors")
            log(f"generating {gen_bytes / GIB:g} GiB of random BF16 tensors: {gen}")
            t = time.perf_counter()
            n = make_bf16_safetensors(gen, gen_bytes)
            log(f"  {n} tensors [4096, 4096] BF16 in {time.perf_counter() - t:.1f} s")
            inputs.append((f"generated {a.size_gib:g} GiB BF16 safetensors ({n} × [4096, 4096])", gen))

        results = [bench_input(label, path, rounds, work, tools, a.openssl_seconds) for label, path in inputs]
        finished = datetime.datetime.now(datetime.timezone.utc)
        env_rows = [
            ("date (UTC)", f"{started:%Y-%m-%d %H:%M} – {finished:%H:%M}"),
            ("mvault revision (at build time)", revision),
            ("CPU", f"{cpu_model()}, nproc {os.cpu_count()} ({cpu_flags()})"),
            ("memory", f"{mem_total() / GIB:.1f} GiB"),
            ("work dir filesystem", f"{fs_type(work)} ({parent})"),
            ("load average (1/5/15 min) before / after", f"{load_before} / {loadavg()}"),
            ("page cache", "dropped before every timed command except warm re-put, info, key usage, key passwd "
             "(run as root)" if IS_ROOT else "not dropped (not root): reads may come from memory"),
            ("mvault Argon2id", "defaults (m=64 MiB, t=3, p=4) in every run: every mvault figure includes an unlock"),
            ("peers", f"restic {try_sh(['restic', 'version']).split()[1]} (fresh local repository per round, "
             f"RESTIC_PASSWORD from the environment), age {try_sh(['age', '--version'])} (X25519 recipient), "
             f"{try_sh(['openssl', 'version']).split(' (')[0]}, coreutils cp"),
        ]
        text = report(results, {"quick": a.quick, "rows": env_rows}, "generated")
        print(text)
        out = a.out or (None if a.quick else RESULTS)
        if out:
            with open(out, "w") as f:
                f.write(text)
            log(f"wrote {out}")
    finally:
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
