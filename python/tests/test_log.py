"""The signed log from Python: every change is an entry (the same as `mvault log --json`), a
checkpoint is a signed note that verify_log checks the vault against, and open() refuses a copy of
the vault older than the newest one this user has seen (TamperedData) unless accept_rollback=True,
which warns."""

from __future__ import annotations

import shutil

import pytest

import modelvault as mv
from conftest import SILERO


def test_the_log_lists_changes_and_checkpoints_verify(vault_path, pwfile):
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        v.put(SILERO, name="silero", tags={"env": "dev"})
        cp = v.log_checkpoint()
        ops = [(e["op"], e["model"], e["versions"]) for e in v.log()]
        assert ops == [("create", None, []), ("put", "silero", [1])]
        assert cp.startswith("modelvault/") and "\n2\n" in cp
        r = v.verify_log(since=cp)
        assert r["problems"] == [] and r["size"] == 2 and r["since"][0] == 2
        with pytest.raises(mv.InvalidInput, match="checkpoint is malformed"):
            v.verify_log(since="not a checkpoint\n")
        with pytest.raises(mv.TamperedData, match="signature does not verify"):
            v.verify_log(since=cp.replace("\n2\n", "\n1\n", 1))


def test_an_older_copy_is_refused_unless_accepted(vault_path, pwfile, tmp_path):
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        v.put(SILERO, name="silero")
    old = tmp_path / "old.mvault"
    shutil.copy(vault_path, old)
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        v.put(SILERO, name="silero-2")
        cp = v.log_checkpoint()
    shutil.copy(old, vault_path)
    with pytest.raises(mv.TamperedData, match="fewer than the 3 this user last saw"):
        mv.open(vault_path, passphrase_file=pwfile)
    with pytest.warns(UserWarning, match="accepting a rollback as told"):
        v = mv.open(vault_path, passphrase_file=pwfile, accept_rollback=True)
    with v:
        assert "fewer than the 3 of the checkpoint" in v.verify_log(since=cp)["problems"][0]
    # Accepted once, the older head is the one remembered.
    mv.open(vault_path, passphrase_file=pwfile).close()
