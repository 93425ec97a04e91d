"""The vault operations of the Python API on a real model: put, ls, show, get, download, query,
open and close; a writer in another process makes a writer's open fail with VaultInUse, while a
reader opens beside it."""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

import modelvault as mv
from conftest import FAST, MINILM, PASSPHRASE, SILERO

MINILM_SHA = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def test_put_returns_the_version_and_dedups(vault_path, pwfile):
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        r = v.put(SILERO, name="silero", aliases=["prod"], tags={"task": "vad"}, metrics={"auc": 0.9},
                  description="silero VAD")
        assert (r.name, r.version, r.files, r.bytes) == ("silero", 1, 1, SILERO.stat().st_size)
        assert r.new_chunks > 0 and r.reused_chunks == 0 and r.new_bytes == SILERO.stat().st_size
        again = v.put(SILERO, name="silero")
        assert (again.version, again.new_chunks, again.reused_chunks) == (2, 0, r.new_chunks)
        assert repr(again).startswith('Version(name="silero", version=2, files=1,')


def test_ls_show_and_query_give_the_cli_json_fields(minilm_vault):
    path, pw = minilm_vault
    with mv.open(path, passphrase_file=pw, read_only=True) as v:
        (m,) = v.ls()
        assert m["name"] == "minilm" and m["aliases"] == {"prod": 1}
        (ver,) = m["versions"]
        assert ver["version"] == 1 and ver["size_bytes"] == 90_868_376 and ver["tags"] == {"task": "emb"}
        s = v.show("minilm@prod")
        assert s["metrics"] == {"stsb": 0.82} and s["description"] == "all-MiniLM-L6-v2"
        assert s["files"] == [{"path": MINILM.name, "size": 90_868_376, "sha256": MINILM_SHA, "chunks": 240}]
        assert v.ls("minilm") == [m]
        assert v.query("SELECT name, version FROM versions") == [{"name": "minilm", "version": 1}]
        rows = v.query("SELECT name, size_bytes, 1.5 AS x, NULL AS n, x'00ff' AS b FROM versions")
        assert rows == [{"name": "minilm", "size_bytes": 90_868_376, "x": 1.5, "n": None, "b": b"\x00\xff"}]
        # The same JSON as the command line's --json (key for key), when mvault is built.
        mvault = pathlib.Path(__file__).resolve().parents[2] / "target" / "release" / "mvault"
        if mvault.exists():
            out = subprocess.run([mvault, "--vault", path, "--passphrase-file", pw, "--json", "show", "minilm@prod"],
                                 capture_output=True, check=True).stdout
            assert json.loads(out) == s


def test_get_and_download_write_verified_files(minilm_vault, tmp_path):
    path, pw = minilm_vault
    with mv.open(path, passphrase_file=pw, read_only=True) as v:
        (f,) = v.get("minilm@prod", tmp_path / "out")
        assert hashlib.sha256(pathlib.Path(f).read_bytes()).hexdigest() == MINILM_SHA
        with pytest.raises(mv.InvalidInput, match="already exists"):
            v.get("minilm@prod", tmp_path / "out")
        assert v.get("minilm", tmp_path / "out", force=True) == [f]
        p = v.download("minilm@prod", filename=MINILM.name, local_dir=tmp_path / "dl")
        assert str(p) == str(tmp_path / "dl" / MINILM.name)
        assert hashlib.sha256(pathlib.Path(p).read_bytes()).hexdigest() == MINILM_SHA
        assert sorted(x.name for x in (tmp_path / "dl").iterdir()) == [MINILM.name], "no temporary file left"
        with pytest.raises(mv.NotFound, match="minilm@1 has no file 'config.json'"):
            v.download("minilm@prod", filename="config.json", local_dir=tmp_path / "dl")
        with pytest.raises(mv.InvalidInput, match="invalid file path"):
            v.download("minilm@prod", filename="../escape.json", local_dir=tmp_path / "dl")
        assert sorted(x.name for x in (tmp_path / "dl").iterdir()) == [MINILM.name]


def test_close_and_context_manager(vault_path, pwfile):
    v = mv.open(vault_path, passphrase_file=pwfile)
    assert repr(v) == f"<modelvault.Vault path={str(vault_path.resolve())!r} read_only=False open>".replace("'", '"')
    v.close()
    assert repr(v).endswith("closed>")
    with pytest.raises(mv.VaultError, match="the vault is closed"):
        v.ls()
    # Closed, the writer's lock is released: the vault opens again.
    with mv.open(vault_path, passphrase_file=pwfile) as again:
        assert again.ls() == []


def test_a_read_only_vault_refuses_writes(vault_path, pwfile):
    with mv.open(vault_path, passphrase_file=pwfile, read_only=True) as v:
        assert v.read_only
        with pytest.raises(mv.VaultError, match="read-only"):
            v.put(SILERO, name="silero")


def test_vault_in_use_while_another_process_holds_the_writer(vault_path, pwfile):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, modelvault as mv
            v = mv.open({str(vault_path)!r}, passphrase_file={str(pwfile)!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(mv.VaultInUse, match="is in use by another process") as e:
            mv.open(vault_path, passphrase_file=pwfile, wait=0.3)
        assert e.value.exit_code == 4
        with mv.open(vault_path, passphrase_file=pwfile, read_only=True) as r:
            assert r.ls() == []
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        assert v.ls() == []


def test_passphrase_as_bytes_str_or_prompt(vault_path, monkeypatch):
    with mv.open(vault_path, passphrase=PASSPHRASE) as v:
        assert v.ls() == []
    with mv.open(vault_path, passphrase=PASSPHRASE.decode()) as v:
        assert v.ls() == []
    asked = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or PASSPHRASE.decode())
    with mv.open(vault_path) as v:
        assert v.ls() == []
    assert asked == [f"Passphrase for {vault_path.resolve()}: "]


def test_create_refuses_an_existing_file(vault_path):
    with pytest.raises(mv.InvalidInput, match="a file already exists"):
        mv.create(vault_path, passphrase=PASSPHRASE, **FAST)
