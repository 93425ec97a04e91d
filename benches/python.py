#!/usr/bin/env python3
"""modelvault Python package benchmark: every tensor of a model loaded through `Vault.load_state_dict` (and
one tensor through `safe_open(...).get_tensor`) against `safetensors.numpy.load_file` of the plaintext file,
in the same process, rounds alternating which goes first.

    python benches/python.py [--rounds 5] [--model PATH]     # with the package installed (pip install ./python)

Warm page cache (the vault file and the plaintext file are each read once before the timed rounds); wall time
with time.perf_counter. Prints a Markdown table; MB/s = 10^6 bytes of the model file per second.
"""

import argparse
import os
import statistics
import tempfile
import time

import modelvault as mv
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
MINILM = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "corpus", "safetensors",
                                       "all-MiniLM-L6-v2.model.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default=MINILM)
    a = ap.parse_args()
    size = os.path.getsize(a.model)
    with tempfile.TemporaryDirectory() as d:
        pw = os.path.join(d, "pw.txt")
        with open(pw, "w") as f:
            f.write("benchmark passphrase, not a secret\n")
        path = os.path.join(d, "v.mvault")
        with mv.create(path, passphrase_file=pw) as v:
            v.put(a.model, name="bench")
        with mv.open(path, passphrase_file=pw, read_only=True) as v:
            with v.safe_open("bench") as f:
                biggest = max(f.keys(), key=lambda k: f.get_tensor(k).nbytes)
            times = {"safetensors.numpy.load_file (plaintext)": [], "Vault.load_state_dict": [],
                     f"safe_open().get_tensor (one tensor, {biggest})": []}
            load_file(a.model), v.load_state_dict("bench")  # warm the page cache
            for r in range(a.rounds):
                steps = [("safetensors.numpy.load_file (plaintext)", lambda: load_file(a.model)),
                         ("Vault.load_state_dict", lambda: v.load_state_dict("bench"))]
                for name, fn in steps if r % 2 == 0 else steps[::-1]:
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
                with v.safe_open("bench") as f:
                    t = time.perf_counter()
                    one = f.get_tensor(biggest)
                    times[f"safe_open().get_tensor (one tensor, {biggest})"].append(time.perf_counter() - t)
    print(f"model {os.path.basename(a.model)}, {size:,} bytes, {a.rounds} rounds, warm page cache\n")
    print("| read | median s | MB/s |\n|---|---|---|")
    for name, xs in times.items():
        n = one.nbytes if name.startswith("safe_open") else size
        m = statistics.median(xs)
        print(f"| {name} | {m:.3f} | {n / m / 1e6:,.0f} |")
    ratio = [b / c for b, c in zip(times["safetensors.numpy.load_file (plaintext)"], times["Vault.load_state_dict"])]
    print(f"\nVault.load_state_dict ÷ load_file (MB/s, pair by pair): {statistics.median(ratio):.2f}× "
          f"({min(ratio):.2f}×–{max(ratio):.2f}×)")


if __name__ == "__main__":
    main()
