"""Decryption runs without the GIL (another Python thread keeps running during a large read), and
memory for one tensor is about that tensor, not the model (peak RSS measured by the kernel)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

import modelvault as mv

BIG = "embeddings.word_embeddings.weight"  # 30522 x 384 F32: 46.9 MB of the model's 90.9 MB


def ticks_during(call) -> int:
    """How often a second thread counted while `call` ran on this one. The switch interval is set
    to 1 s, so while this thread holds the GIL the counter cannot run: it counts only when the
    call releases the GIL (and then keeps the GIL up to 1 s, which delays the call's return)."""
    n = 0
    stop = False
    started = threading.Event()

    def count() -> None:
        nonlocal n
        started.set()
        while not stop:
            n += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    t = threading.Thread(target=count)
    try:
        t.start()
        started.wait()
        before = n
        t0 = time.perf_counter()
        call()
        took = time.perf_counter() - t0
        after = n
    finally:
        stop = True
        sys.setswitchinterval(old)
        t.join()
    return after - before, took


def test_a_second_thread_runs_while_a_large_tensor_is_decrypted(minilm_vault):
    path, pw = minilm_vault
    with mv.open(path, passphrase_file=pw, read_only=True) as v, v.safe_open("minilm") as f:
        f.get_tensor(BIG)  # warm up: imports numpy
        ran, _ = ticks_during(lambda: f.get_tensor(BIG))
        # The same measure of a call that holds the GIL throughout sees the other thread stopped.
        held, took = ticks_during(lambda: sum(range(3_000_000)))
    assert took < 1.0, f"the GIL-holding call took {took:.2f} s, past the switch interval: the test cannot tell"
    assert held == 0, f"the counter ran {held} times while the GIL was held: the measure is broken"
    assert ran > 1000, f"the other thread counted only {ran} times during get_tensor"


def _status(field: str) -> int:
    with open("/proc/self/status") as s:
        for line in s:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as c:
        c.write("5")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc/self/clear_refs")
def test_memory_for_one_tensor_is_about_that_tensor(minilm_vault):
    path, pw = minilm_vault
    with mv.open(path, passphrase_file=pw, read_only=True) as v, v.safe_open("minilm") as f:
        # Warm up: numpy imported, and the vault's page cache (redb, bounded at 64 MiB) filled with
        # the pages this tensor's chunks live in, so the measure sees the tensor's own cost.
        del_me = f.get_tensor(BIG)
        del del_me
        tensor = 30522 * 384 * 4
        _reset_peak()
        base = _status("VmRSS")
        a = f.get_tensor(BIG)
        one = _status("VmHWM") - base
        assert a.nbytes == tensor
        del a
        _reset_peak()
        base = _status("VmRSS")
        sd = v.load_state_dict("minilm")
        whole = _status("VmHWM") - base
        model = sum(t.nbytes for t in sd.values())
        del sd
    # One tensor: its own bytes plus a decrypted chunk (at most 1 MiB) and allocator slack.
    assert tensor * 0.9 < one < tensor + 8 * 2**20, f"peak grew {one} bytes for a {tensor}-byte tensor"
    # The measure sees the whole model when the whole model is loaded.
    assert whole > model * 0.9, f"peak grew {whole} bytes for a {model}-byte state dict"
    print(f"peak RSS growth: get_tensor {one / 2**20:.1f} MiB for a {tensor / 2**20:.1f} MiB tensor; "
          f"load_state_dict {whole / 2**20:.1f} MiB for {model / 2**20:.1f} MiB")
