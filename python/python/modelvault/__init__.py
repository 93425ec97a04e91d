"""modelvault: load models from an encrypted, signed vault with the tools ML code already uses.

The vault file is the one ``mvault`` (the command line) reads and writes. Tensors are decrypted
on load, without a plaintext file on disk::

    import modelvault as mv
    v = mv.open("models.mvault", passphrase_file="pw.txt")
    with v.safe_open("minilm@prod", framework="numpy") as f:
        w = f.get_tensor("embeddings.word_embeddings.weight")

Every exception is a :class:`VaultError`; its subclasses mirror the exit codes of ``mvault``
(``exit_code`` on each class).
"""

from ._native import (
    InvalidInput,
    NotFound,
    SafeOpen,
    TamperedData,
    TensorSlice,
    UnsafePickle,
    UntrustedSigner,
    Vault,
    VaultError,
    VaultInUse,
    Version,
    WrongPassphrase,
    create,
    open,
)

__all__ = [
    "InvalidInput",
    "NotFound",
    "SafeOpen",
    "TamperedData",
    "TensorSlice",
    "UnsafePickle",
    "UntrustedSigner",
    "Vault",
    "VaultError",
    "VaultInUse",
    "Version",
    "WrongPassphrase",
    "create",
    "open",
]
