#!/usr/bin/env python3
"""modelvault mount benchmark: a sequential read through `mvault mount` against `mvault cat`, `mvault get`
and `cat` of the plaintext file, in the same run.

    python3 benches/mount.py --mvault target/release/mvault --out /tmp/mount.md       # MiniLM + 2 GiB, 5 rounds
    python3 benches/mount.py --quick                                                   # MiniLM only, 3 rounds

Needs /dev/fuse and fusermount (fuse3). Python 3 standard library only; reuses benches/run.py's measuring
(wait4, fsync of outputs, the page cache dropped before every timed command when run as root) and its generator
of the 2 GiB BF16 model. Each round mounts afresh (an empty chunk cache) and unmounts at the end.
"""

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402

log = base.log
PASS = "benchmark passphrase, not a secret"


def mounted(at):
    real = os.path.realpath(at)
    with open("/proc/mounts") as f:
        return any(line.split(" ")[1] == real for line in f)


def mount(mv, env, at, cache_mib, logpath):
    p = subprocess.Popen([mv, "mount", at, "--cache-mib", str(cache_mib)], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=open(logpath, "ab"))
    t = time.monotonic()
    while not mounted(at):
        if p.poll() is not None or time.monotonic() - t > 20:
            p.kill()
            raise RuntimeError(f"mvault mount did not mount at {at}; see {logpath}")
        time.sleep(0.02)
    return p


def unmount(mv, env, at, p):
    subprocess.run([mv, "umount", at], env=env, check=False, capture_output=True)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def bench(label, path, rounds, work, mv, cache_mib):
    size = os.path.getsize(path)
    rd = tempfile.mkdtemp(prefix="mount-", dir=work)
    env = dict(os.environ, MVAULT_VAULT=os.path.join(rd, "v.mvault"),
               MVAULT_PASSPHRASE_FILE=os.path.join(rd, "pass"))
    env.pop("MVAULT_PASSPHRASE", None)
    with open(env["MVAULT_PASSPHRASE_FILE"], "w") as f:
        f.write(PASS + "\n")
    r = base.Runner(rd, env)
    r.run([mv, "--quiet", "init"], cold=False)
    r.run([mv, "--quiet", "put", path, "--name", "bench"], cold=False)
    at = os.path.join(rd, "mnt")
    os.mkdir(at)
    mounted_file = os.path.join(at, "bench", "1", os.path.basename(path))
    samples = {}

    def add(name, s):
        s["mbps"] = size / s["wall"] / 1e6
        samples.setdefault(name, []).append(s)
        log(f"  {name:34s} {s['wall']:8.3f} s  {s['mbps']:8.1f} MB/s")

    for i in range(rounds):
        log(f"[{label}] round {i + 1}/{rounds} (load average {base.loadavg()})")
        out = os.path.join(rd, f"get{i}")
        p = mount(mv, env, at, cache_mib, os.path.join(rd, "mount.log"))
        try:
            steps = [
                ("cat (plaintext file)", lambda: r.run(["cat", path])),
                ("cat (through the mount)", lambda: r.run(["cat", mounted_file])),
                ("mvault cat", lambda: r.run([mv, "--quiet", "cat", "bench"])),
                ("mvault get", lambda: r.run([mv, "--quiet", "get", "bench", "-o", out], durable=[out])),
            ]
            for name, f in (steps if i % 2 == 0 else steps[::-1]):
                add(name, f())
            if i == 0 and subprocess.run(["cmp", path, mounted_file]).returncode != 0:
                raise RuntimeError("the file read through the mount differs from the original")
        finally:
            unmount(mv, env, at, p)
            shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(rd, ignore_errors=True)
    return {"label": label, "size": size, "samples": samples, "rounds": rounds}


def section(res):
    s = res["samples"]
    L = [f"## {res['label']} ({res['size']:,} bytes, {res['rounds']} rounds)\n",
         "| command | wall s | MB/s |", "|---|---|---|"]
    for name, v in s.items():
        L.append(f"| {name} | {base.med_range([x['wall'] for x in v], base.f_s)} | "
                 f"{base.med_range([x['mbps'] for x in v], base.f_mbps)} |")

    def ratio(a, b):
        return base.med_range([x["mbps"] / y["mbps"] for x, y in zip(s[a], s[b])], base.f_ratio)

    L += ["", "| ratio (MB/s, pair by pair in a round) | median (min–max) |", "|---|---|",
          f"| through the mount ÷ mvault cat | {ratio('cat (through the mount)', 'mvault cat')} |",
          f"| through the mount ÷ mvault get | {ratio('cat (through the mount)', 'mvault get')} |",
          f"| through the mount ÷ plaintext cat | {ratio('cat (through the mount)', 'cat (plaintext file)')} |", ""]
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="MiniLM only")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size-gib", type=float, default=2.0)
    ap.add_argument("--cache-mib", type=int, default=256, help="the mount's --cache-mib (default 256)")
    ap.add_argument("--mvault", help="a built mvault (default: build this checkout)")
    ap.add_argument("--workdir", help="parent of the temporary directory")
    ap.add_argument("--out", help="also write the Markdown report here")
    a = ap.parse_args()
    if not os.path.exists("/dev/fuse") or not (shutil.which("fusermount3") or shutil.which("fusermount")):
        sys.exit("needs /dev/fuse and fusermount3 or fusermount (Debian/Ubuntu: apt-get install fuse3)")
    parent = a.workdir or tempfile.gettempdir()
    if a.workdir is None and base.fs_type(parent) == "tmpfs":
        parent = "/var/tmp"
    work = tempfile.mkdtemp(prefix="mvault-mount-bench-", dir=parent)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = base.loadavg()
    try:
        mv = base.build_mvault(work, a.mvault)
        results = [bench("all-MiniLM-L6-v2 safetensors", base.MINILM, a.rounds, work, mv, a.cache_mib)]
        if not a.quick:
            gen = os.path.join(work, "model.safetensors")
            base.make_bf16_safetensors(gen, int(a.size_gib * base.GIB))
            results.append(bench(f"generated {a.size_gib:g} GiB BF16 safetensors", gen, a.rounds, work, mv,
                                 a.cache_mib))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ended = datetime.datetime.now(datetime.timezone.utc)
    head = ["# modelvault mount benchmark results\n",
            f"Produced by `python3 benches/mount.py {' '.join(sys.argv[1:])}`.\n",
            "| | |", "|---|---|",
            f"| date (UTC) | {started:%Y-%m-%d %H:%M} – {ended:%H:%M} |",
            f"| mvault | {'prebuilt binary ' + a.mvault if a.mvault else base.git_revision()} |",
            f"| CPU | {base.cpu_model()}, nproc {os.cpu_count()} |",
            f"| load average before / after | {load_before} / {base.loadavg()} |",
            f"| page cache | {'dropped before every timed command (root)' if base.IS_ROOT else 'kept (not root)'} |",
            f"| mount | `mvault mount --cache-mib {a.cache_mib}`, mounted afresh each round |",
            "",
            "Each command reads the whole file once, sequentially: `cat` and `mvault cat` write it to a file in the "
            "work directory (not synced); `mvault get` writes the file and fsyncs it. MB/s = 10^6 bytes of model "
            "per second of wall time; the order of the commands alternates round by round.\n"]
    text = "\n".join(head) + "\n" + "\n".join(section(r) for r in results)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
