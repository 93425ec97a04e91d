"""Wraps decrypted tensor bytes as numpy arrays or torch tensors, without copying them.

The extension decrypts one tensor into one ``bytearray``; :func:`to_array` makes an array over
that buffer (``numpy.frombuffer`` / ``torch.frombuffer``), so a tensor costs its own size in
memory. :func:`getitem` is the indexing of ``TensorSlice``: a leading slice with step 1 reads only
those rows. This module never reads the vault itself.
"""

from __future__ import annotations

from typing import Any, Sequence

from ._native import InvalidInput

# safetensors dtype -> numpy dtype (little-endian, as the safetensors format stores them).
_NUMPY = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}

# safetensors dtype -> torch dtype attribute name.
_TORCH = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "U16": "uint16",
    "U32": "uint32",
    "U64": "uint64",
    "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}


def to_array(buf: bytearray, dtype: str, shape: Sequence[int], framework: str) -> Any:
    """An array of ``framework`` ("numpy"/"np" or "pt"/"torch") over ``buf``."""
    if framework in ("numpy", "np"):
        import numpy as np

        try:
            dt = np.dtype(_NUMPY[dtype])
        except KeyError:
            raise InvalidInput(
                f"dtype {dtype} has no numpy equivalent: open it with framework=\"pt\""
            ) from None
        return np.frombuffer(buf, dtype=dt).reshape(tuple(shape))
    try:
        import torch
    except ImportError:
        raise InvalidInput('framework="pt" needs torch, which is not installed') from None
    try:
        dt = getattr(torch, _TORCH[dtype])
    except (KeyError, AttributeError):
        raise InvalidInput(f"dtype {dtype} has no torch equivalent in this torch version") from None
    if len(buf) == 0:
        return torch.empty(tuple(shape), dtype=dt)
    return torch.frombuffer(buf, dtype=dt).reshape(tuple(shape))


def getitem(tensor_slice: Any, key: Any) -> Any:
    """``tensor_slice[key]``: reads only the rows of a leading ``a:b`` slice, else all of it."""
    parts = key if isinstance(key, tuple) else (key,)
    shape = tensor_slice.get_shape()
    first = parts[0] if parts else slice(None)
    if shape and isinstance(first, slice) and first.step in (None, 1):
        start, stop, _ = first.indices(shape[0])
        rows = tensor_slice._read_rows(start, max(start, stop))
        rest = (slice(None),) + tuple(parts[1:])
        return rows[rest]
    return tensor_slice._read_all()[key]
