"""safe_open, get_tensor, get_slice and load_state_dict against safetensors itself: every tensor of
the real MiniLM model comes back byte-identical to safetensors.numpy.load_file of the original
file, with the same keys and metadata, over the buffer it was decrypted into."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors
from safetensors.numpy import load_file

import modelvault as mv
from conftest import MINILM

BIG = "embeddings.word_embeddings.weight"


@pytest.fixture(scope="module")
def original() -> dict[str, np.ndarray]:
    return load_file(str(MINILM))


def test_every_tensor_is_byte_identical_to_safetensors(minilm_vault, original):
    path, pw = minilm_vault
    with mv.open(path, passphrase_file=pw, read_only=True) as v, v.safe_open("minilm@prod", framework="numpy") as f:
        assert len(f.keys()) == 104
        with safetensors.safe_open(str(MINILM), framework="np") as g:
            assert f.keys() == list(g.keys())
            assert f.metadata() == g.metadata() == {"format": "pt"}
        for name in f.keys():
            a, b = f.get_tensor(name), original[name]
            assert (a.dtype, a.shape) == (b.dtype, b.shape), name
            assert a.tobytes() == b.tobytes(), name
        assert f.get_tensor(BIG).shape == (30522, 384)
        assert f.get_tensor("embeddings.position_ids").dtype == np.int64


def test_the_array_wraps_the_decrypted_buffer_without_a_copy(minilm_vault):
    path, pw = minilm_vault
    with mv.open(path, passphrase_file=pw, read_only=True) as v, v.safe_open("minilm") as f:
        a = f.get_tensor(BIG)
        assert not a.flags.owndata
        base = a
        while isinstance(base, np.ndarray):
            base = base.base
        if isinstance(base, memoryview):
            base = base.obj
        assert isinstance(base, bytearray) and len(base) == a.nbytes == 30522 * 384 * 4


def test_get_slice_reads_rows_and_indexes_like_numpy(minilm_vault, original):
    path, pw = minilm_vault
    want = original[BIG]
    with mv.open(path, passphrase_file=pw, read_only=True) as v, v.safe_open("minilm@1") as f:
        s = f.get_slice(BIG)
        assert s.get_shape() == [30522, 384] and s.get_dtype() == "F32"
        for key in [slice(0, 10), slice(30000, None), (slice(5, 9), slice(2, 4)), (slice(100, 90),), 7, (3, 5),
                    (slice(None, None, 2), 1), Ellipsis, slice(-3, None)]:
            got = s[key]
            assert np.array_equal(got, want[key]), key
            assert np.asarray(got).shape == np.asarray(want[key]).shape, key
        # The ids of the position tensor, a 2-D I64 one.
        p = f.get_slice("embeddings.position_ids")
        assert np.array_equal(p[:, 3:6], original["embeddings.position_ids"][:, 3:6])


def test_load_state_dict_numpy(minilm_vault, original):
    path, pw = minilm_vault
    with mv.open(path, passphrase_file=pw, read_only=True) as v:
        sd = v.load_state_dict("minilm@prod", framework="numpy")
    assert sorted(sd) == sorted(original)
    for k, a in sd.items():
        assert a.tobytes() == original[k].tobytes() and a.shape == original[k].shape, k


def test_load_state_dict_pt_when_torch_is_installed(minilm_vault, original):
    torch = pytest.importorskip("torch", reason="torch is not installed: framework='pt' not tested")
    path, pw = minilm_vault
    with mv.open(path, passphrase_file=pw, read_only=True) as v:
        sd = v.load_state_dict("minilm@prod", framework="pt")
        with v.safe_open("minilm", framework="pt") as f:
            assert torch.equal(f.get_slice(BIG)[2:4], torch.from_numpy(original[BIG][2:4]))
    for k, t in sd.items():
        assert isinstance(t, torch.Tensor)
        assert t.numpy().tobytes() == original[k].tobytes(), k


def test_pt_without_torch_says_so(minilm_vault):
    try:
        import torch  # noqa: F401

        pytest.skip("torch is installed")
    except ImportError:
        pass
    path, pw = minilm_vault
    with mv.open(path, passphrase_file=pw, read_only=True) as v, v.safe_open("minilm", framework="pt") as f:
        with pytest.raises(mv.InvalidInput, match='framework="pt" needs torch'):
            f.get_tensor(BIG)


def test_unknown_tensor_framework_and_file(minilm_vault):
    path, pw = minilm_vault
    with mv.open(path, passphrase_file=pw, read_only=True) as v:
        with v.safe_open("minilm") as f:
            with pytest.raises(mv.NotFound, match="minilm@1 has no tensor 'nope'"):
                f.get_tensor("nope")
            with pytest.raises(mv.NotFound):
                f.get_slice("nope")
        with pytest.raises(mv.InvalidInput, match='framework="jax": use "numpy" or "pt"'):
            v.safe_open("minilm", framework="jax")
        with pytest.raises(mv.NotFound, match="minilm@1 has no file 'x.safetensors'"):
            v.safe_open("minilm", file="x.safetensors")
