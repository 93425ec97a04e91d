"""Shared fixtures: the corpus beside the repository, a vault with test-sized Argon2 cost, and the
MiniLM model stored in it once per session."""

from __future__ import annotations

import os
import pathlib

import pytest

import modelvault as mv

REPO = pathlib.Path(__file__).resolve().parents[2]
CORPUS = pathlib.Path(os.environ.get("MVAULT_CORPUS", REPO.parent / "shared" / "corpus"))
MINILM = CORPUS / "safetensors" / "all-MiniLM-L6-v2.model.safetensors"
SILERO = CORPUS / "safetensors" / "silero_vad_16k.safetensors"
# A passphrase the tests look for in every message, repr and traceback.
PASSPHRASE = b"tr0ub4dor-&-3-known-to-the-tests"
# Argon2id cost small enough for tests (the default is 64 MiB, 3 passes, 4 lanes).
FAST = dict(argon2_memory_kib=1024, argon2_time_cost=1, argon2_lanes=1)


def pytest_configure(config: pytest.Config) -> None:
    if not (CORPUS / "MANIFEST.md").exists():
        raise pytest.UsageError(f"the test corpus is expected at {CORPUS}")


@pytest.fixture(autouse=True)
def state_dir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """Each test its own user state directory (the remembered log checkpoints)."""
    d = tmp_path / "state"
    monkeypatch.setenv("MVAULT_STATE_DIR", str(d))
    return d


@pytest.fixture()
def pwfile(tmp_path: pathlib.Path) -> pathlib.Path:
    p = tmp_path / "pw.txt"
    p.write_bytes(PASSPHRASE + b"\n")
    return p


@pytest.fixture()
def vault_path(tmp_path: pathlib.Path, pwfile: pathlib.Path) -> pathlib.Path:
    p = tmp_path / "models.mvault"
    mv.create(p, passphrase_file=pwfile, **FAST).close()
    return p


@pytest.fixture(scope="session")
def minilm_vault(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """A vault holding MiniLM as minilm@1 (alias prod), and its passphrase file."""
    d = tmp_path_factory.mktemp("minilm")
    pw = d / "pw.txt"
    pw.write_bytes(PASSPHRASE)
    path = d / "models.mvault"
    with mv.create(path, passphrase_file=pw, **FAST) as v:
        v.put(MINILM, name="minilm", aliases=["prod"], tags={"task": "emb"}, metrics={"stsb": 0.82},
              description="all-MiniLM-L6-v2")
    return path, pw
