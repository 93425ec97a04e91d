"""Recipient key slots from Python: a slot added for an age key (from the real age-keygen) and an SSH
key (from ssh-keygen) opens the vault through open(identity_file=...), with no passphrase; the slots
are listed as the CLI lists them; a wrong key, a bad identity file, a passphrase given with an
identity and a bad recipient are clear errors; and the private key shows in no message, repr or
traceback."""

from __future__ import annotations

import pathlib
import subprocess
import traceback

import pytest

import modelvault as mv
from conftest import SILERO


def age_key(d: pathlib.Path, name: str) -> tuple[pathlib.Path, str, str]:
    """(identity file, recipient, secret line) from age-keygen."""
    f = d / name
    subprocess.run(["age-keygen", "-o", str(f)], check=True, capture_output=True)
    text = f.read_text()
    recipient = next(l.split(": ", 1)[1] for l in text.splitlines() if l.startswith("# public key: "))
    secret = next(l for l in text.splitlines() if l.startswith("AGE-SECRET-KEY-"))
    return f, recipient, secret


def ssh_key(d: pathlib.Path, name: str) -> tuple[pathlib.Path, str]:
    f = d / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "py@test", "-f", str(f)], check=True)
    return f, f.with_suffix(".pub").read_text().strip()


def test_a_recipient_slot_opens_the_vault_without_a_passphrase(vault_path, pwfile, tmp_path):
    age_id, age_r, _ = age_key(tmp_path, "ci.key")
    ssh_id, ssh_pub = ssh_key(tmp_path, "id_ed25519")
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        v.put(SILERO, name="silero")
        v.add_recipient_slot("ci", [age_r, ssh_pub])
        slots = {s["name"]: s for s in v.key_slots()}
    assert set(slots) == {"ci", "default"}
    assert slots["ci"]["kind"] == "recipient" and slots["ci"]["epoch"] == 1
    # The SSH key's comment is not kept; the key itself is.
    assert slots["ci"]["recipients"] == [age_r, " ".join(ssh_pub.split()[:2])]
    assert slots["default"]["kind"] == "passphrase" and slots["default"]["in_use"]
    for key in (age_id, ssh_id):
        with mv.open(vault_path, identity_file=key) as v:
            assert [m["name"] for m in v.ls()] == ["silero"]
            assert [s["name"] for s in v.key_slots() if s["in_use"]] == ["ci"]
            out = v.get("silero", tmp_path / f"out-{key.name}")
            assert out[0].read_bytes() == SILERO.read_bytes()
    with mv.open(vault_path, identity_file=age_id, slot="ci", read_only=True) as v:
        assert v.read_only


def test_recipient_errors_are_clear_and_keep_the_key_out_of_sight(vault_path, pwfile, tmp_path):
    age_id, age_r, secret = age_key(tmp_path, "ci.key")
    stranger, _, _ = age_key(tmp_path, "stranger.key")
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        v.add_recipient_slot("ci", [age_r])
        with pytest.raises(mv.InvalidInput, match="recipient 'age1nope' is not a valid age X25519 recipient"):
            v.add_recipient_slot("bad", ["age1nope"])
        with pytest.raises(mv.InvalidInput, match="key slot 'ci' already exists"):
            v.add_recipient_slot("ci", [age_r])
        with pytest.raises(mv.InvalidInput, match="needs 1 to 64 recipients"):
            v.add_recipient_slot("none", [])
    with pytest.raises(mv.WrongPassphrase, match="stranger.key") as e:
        mv.open(vault_path, identity_file=stranger)
    assert e.value.exit_code == 3
    with pytest.raises(mv.InvalidInput, match="give it without passphrase_file or passphrase"):
        mv.open(vault_path, passphrase_file=pwfile, identity_file=age_id)
    with pytest.raises(mv.InvalidInput, match="is opened by a private key, not by a passphrase"):
        mv.open(vault_path, passphrase_file=pwfile, slot="ci")
    # A file that is no key: the error names the line, never its content (here the secret itself,
    # mangled so it does not parse).
    bad = tmp_path / "bad.key"
    bad.write_text(f"# a comment\n{secret}!\n")
    with pytest.raises(mv.InvalidInput, match="line 2") as e:
        mv.open(vault_path, identity_file=bad)
    with pytest.raises(mv.VaultError, match="opening identity file .*missing.key"):
        mv.open(vault_path, identity_file=tmp_path / "missing.key")
    text = "".join(traceback.format_exception(e.value)) + str(e.value)
    assert secret[15:] not in text
    with mv.open(vault_path, identity_file=age_id) as v:
        assert secret[15:] not in repr(v)
