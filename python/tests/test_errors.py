"""Every error class, raised by real bad input: a wrong passphrase, missing things, a damaged vault
file, malicious pickles and malformed files from the corpus, bad arguments. And the passphrase,
known to the test, appears in no message, repr or traceback, locals included."""

from __future__ import annotations

import shutil
import traceback

import pytest
from safetensors.numpy import load_file

import modelvault as mv
from conftest import CORPUS, FAST, PASSPHRASE, SILERO


def test_exit_codes_mirror_the_command_line():
    codes = {c.__name__: c.exit_code for c in (mv.VaultError, mv.WrongPassphrase, mv.VaultInUse, mv.NotFound,
                                                mv.TamperedData, mv.InvalidInput, mv.UnsafePickle,
                                                mv.UntrustedSigner)}
    assert codes == {"VaultError": 1, "WrongPassphrase": 3, "VaultInUse": 4, "NotFound": 5, "TamperedData": 6,
                     "InvalidInput": 7, "UnsafePickle": 8, "UntrustedSigner": 9}
    for c in (mv.WrongPassphrase, mv.VaultInUse, mv.NotFound, mv.TamperedData, mv.InvalidInput, mv.UnsafePickle):
        assert issubclass(c, mv.VaultError)
    assert issubclass(mv.UntrustedSigner, mv.TamperedData)


def test_wrong_passphrase(vault_path):
    with pytest.raises(mv.WrongPassphrase, match="wrong passphrase: no key slot of this vault opens with it"):
        mv.open(vault_path, passphrase=b"not the passphrase")


def test_not_found(vault_path, pwfile, tmp_path):
    with pytest.raises(mv.NotFound, match="vault not found at"):
        mv.open(tmp_path / "nope.mvault", passphrase_file=pwfile)
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        v.put(SILERO, name="silero")
        with pytest.raises(mv.NotFound, match="model 'nope' not found"):
            v.show("nope")
        with pytest.raises(mv.NotFound, match="model 'silero' has no version or alias '7'"):
            v.safe_open("silero@7")
        with pytest.raises(mv.NotFound, match="alias"):
            v.load_state_dict("silero@prod")


@pytest.mark.parametrize("member", ["malicious/modelscan_unsafe_zip_pytorch.pt",
                                    "malicious/B10_picklescan_malicious23.pkl",
                                    "malicious/B12a_gzip_wrapped_malicious.pkl.gz"])
def test_unsafe_pickle_is_refused_and_nothing_is_stored(vault_path, pwfile, member):
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        with pytest.raises(mv.UnsafePickle, match="pickle scan verdict dangerous: .*system") as e:
            v.put(CORPUS / member, name="evil")
        assert "nothing was stored" in str(e.value) and e.value.exit_code == 8
        assert v.ls() == []


@pytest.mark.parametrize("member,message", [
    ("malformed/B04c_safetensors_header_is_json_array.safetensors", "header must be a JSON object"),
    ("malformed/B02a_safetensors_hdrlen_u64max.safetensors", "header length 18446744073709551615 exceeds"),
])
def test_malformed_files_are_invalid_input(vault_path, pwfile, member, message):
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        with pytest.raises(mv.InvalidInput, match=message):
            v.put(CORPUS / member, name="bad")
        assert v.ls() == []


def test_invalid_arguments(vault_path, pwfile):
    with pytest.raises(mv.InvalidInput, match="give passphrase_file or passphrase, not both"):
        mv.open(vault_path, passphrase_file=pwfile, passphrase=b"x")
    with pytest.raises(mv.InvalidInput, match="wait=-1"):
        mv.open(vault_path, passphrase_file=pwfile, wait=-1)
    with pytest.raises(mv.InvalidInput, match="the passphrase must be bytes or str"):
        mv.open(vault_path, passphrase=12345)
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        with pytest.raises(mv.InvalidInput, match="invalid model name"):
            v.put(SILERO, name="../x")
        with pytest.raises(mv.InvalidInput, match="empty version after '@'"):
            v.show("silero@")
        with pytest.raises(mv.InvalidInput, match="query refused"):
            v.query("DROP TABLE versions")
        v.put(CORPUS / "onnx" / "onnx-backend_test_single_relu.model.onnx", name="relu")
        with pytest.raises(mv.InvalidInput, match="relu@1 has no safetensors file"):
            v.safe_open("relu")


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_a_damaged_vault_raises_tampered_data_and_never_returns_wrong_bytes(vault_path, pwfile, tmp_path):
    with mv.open(vault_path, passphrase_file=pwfile) as v:
        v.put(SILERO, name="silero")
    size = vault_path.stat().st_size
    original = load_file(str(SILERO))
    found = 0
    for frac in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        bad = tmp_path / f"damaged-{frac}.mvault"
        shutil.copy(vault_path, bad)
        _flip(bad, int(size * frac))
        # A writer's open checks every page in use: a flipped byte there is found at once. A byte
        # in a page the file does not use (free space) is found by nothing and harms nothing.
        try:
            mv.open(bad, passphrase_file=pwfile).close()
        except mv.TamperedData as e:
            assert e.exit_code == 6
            assert "is damaged: the storage engine found a corrupt page" in str(e), str(e)
            found += 1
            continue
        # A reader does not check pages at open: a chunk holding the byte fails its tag; otherwise
        # every tensor is still right. Never a wrong byte.
        try:
            with mv.open(bad, passphrase_file=pwfile, read_only=True) as r, r.safe_open("silero") as f:
                for k in f.keys():
                    assert f.get_tensor(k).tobytes() == original[k].tobytes(), k
        except mv.TamperedData as e:
            assert e.exit_code == 6
            found += 1
    assert found >= 1, "eight flipped bytes spread over the file should hit a page in use at least once"
    # The undamaged vault still reads.
    with mv.open(vault_path, passphrase_file=pwfile, read_only=True) as r:
        assert len(r.load_state_dict("silero")) == 15


def _all_text(e: BaseException) -> str:
    tb = traceback.TracebackException.from_exception(e, capture_locals=True)
    return "\n".join([str(e), repr(e), repr(e.args), "".join(traceback.format_exception(e)), "".join(tb.format())])


def test_the_passphrase_appears_in_no_message_repr_or_traceback(vault_path, pwfile, tmp_path):
    # The passphrase is a module global, not a local of this frame, so the tracebacks captured
    # with their locals below show it only if the package leaks it.
    texts = []
    # A wrong one that is the known one with a suffix, and errors raised with the right one.
    for call in [
        lambda: mv.open(vault_path, passphrase=PASSPHRASE + b"-wrong"),
        lambda: mv.open(vault_path, passphrase=PASSPHRASE, wait=-1),
        lambda: mv.open(vault_path, passphrase=PASSPHRASE, passphrase_file=pwfile),
        lambda: mv.open(tmp_path / "missing.mvault", passphrase=PASSPHRASE),
        lambda: mv.create(vault_path, passphrase=PASSPHRASE, **FAST),
    ]:
        with pytest.raises(mv.VaultError) as e:
            call()
        texts.append(_all_text(e.value))
    with mv.open(vault_path, passphrase=PASSPHRASE) as v:
        texts.append(repr(v))
        for call in [lambda: v.put(CORPUS / "malicious/B10_picklescan_malicious23.pkl", name="evil"),
                     lambda: v.show("nope"), lambda: v.query("nonsense")]:
            with pytest.raises(mv.VaultError) as e:
                call()
            texts.append(_all_text(e.value))
        v.put(SILERO, name="silero")
        with v.safe_open("silero") as f:
            texts += [repr(f), repr(f.get_slice(f.keys()[0]))]
    secret = PASSPHRASE.decode()
    for t in texts:
        for form in (secret, repr(PASSPHRASE), PASSPHRASE.hex()):
            assert form not in t, t
    # The check can fail: the test's own locals hold the passphrase and a traceback with locals shows them.
    try:
        leaked = PASSPHRASE  # noqa: F841
        raise mv.VaultError("probe")
    except mv.VaultError as probe:
        assert secret in _all_text(probe)
