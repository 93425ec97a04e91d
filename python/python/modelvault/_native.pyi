"""Type stubs of the extension module ``modelvault._native`` (re-exported by ``modelvault``)."""

from os import PathLike
from types import TracebackType
from typing import Any, ClassVar, Literal, Mapping, Sequence

_Path = str | PathLike[str]
_Secret = bytes | bytearray | str
_Framework = Literal["numpy", "np", "pt", "torch"]

class VaultError(Exception):
    """Any error of a vault operation (exit code 1 of mvault)."""
    exit_code: ClassVar[int]

class WrongPassphrase(VaultError):
    """No key slot opened with the passphrase (exit code 3)."""

class VaultInUse(VaultError):
    """Another process writes the vault (exit code 4)."""

class NotFound(VaultError):
    """No such vault, model, version, alias, file or tensor (exit code 5)."""

class TamperedData(VaultError):
    """A record, chunk or signature failed its check (exit code 6)."""

class UntrustedSigner(TamperedData):
    """A version is signed by a key other than the one required (exit code 9)."""

class InvalidInput(VaultError):
    """A bad argument, name, file or option value (exit code 7)."""

class UnsafePickle(VaultError):
    """A pickle that can run code was refused (exit code 8)."""

def open(
    path: _Path,
    passphrase_file: _Path | None = None,
    passphrase: _Secret | None = None,
    *,
    slot: str | None = None,
    read_only: bool = False,
    wait: float | None = None,
    identity_file: _Path | None = None,
    accept_rollback: bool = False,
) -> Vault:
    """Opens and unlocks a vault; prompts with getpass when no passphrase is given.

    With identity_file (an age identity or OpenSSH private key), unlocks by a recipient key slot
    instead; no passphrase may be given then. A vault older than the newest state of it this
    user has seen raises TamperedData unless accept_rollback=True."""

def create(
    path: _Path,
    passphrase_file: _Path | None = None,
    passphrase: _Secret | None = None,
    *,
    slot: str = "default",
    argon2_memory_kib: int | None = None,
    argon2_time_cost: int | None = None,
    argon2_lanes: int | None = None,
) -> Vault:
    """Creates a new vault with one key slot and returns it unlocked."""

class Version:
    """What Vault.put stored."""
    name: str
    version: int
    files: int
    bytes: int
    new_chunks: int
    new_bytes: int
    reused_chunks: int

class Vault:
    """An open, unlocked vault (a context manager: leaving it drops the keys)."""
    @property
    def path(self) -> str: ...
    @property
    def read_only(self) -> bool: ...
    def add_recipient_slot(self, name: str, recipients: Sequence[str]) -> None:
        """Adds a key slot opened by the private key of any of the recipients (age1…, ssh-ed25519 …, ssh-rsa …)."""
    def key_slots(self) -> list[dict[str, Any]]:
        """The key slots, as `mvault key list --json` prints them."""
    def log(self) -> list[dict[str, Any]]:
        """The log, oldest entry first, as `mvault log --json` prints it."""
    def log_checkpoint(self) -> str | None:
        """A signed checkpoint of the log (C2SP signed note), None before the log begins."""
    def verify_log(self, since: str | None = None) -> dict[str, Any]:
        """Checks the log, and that it extends the checkpoint `since`; problems in "problems"."""
    def put(
        self,
        path: _Path,
        name: str,
        *,
        aliases: Sequence[str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        description: str = "",
        allow_unsafe_pickle: bool = False,
        allow: Sequence[str] | None = None,
    ) -> Version: ...
    def ls(self, name: str | None = None) -> list[dict[str, Any]]: ...
    def show(self, ref: str) -> dict[str, Any]: ...
    def get(self, ref: str, dest: _Path, *, force: bool = False) -> list[str]: ...
    def download(self, ref: str, filename: str, local_dir: _Path | None = None) -> str: ...
    def query(
        self, sql: str, *, max_seconds: float | None = None, max_memory_mib: int | None = None
    ) -> list[dict[str, Any]]: ...
    def safe_open(self, ref: str, framework: _Framework = "numpy", *, file: str | None = None) -> SafeOpen: ...
    def load_state_dict(
        self, ref: str, framework: _Framework = "numpy", *, file: str | None = None
    ) -> dict[str, Any]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Vault: ...
    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

class SafeOpen:
    """The safetensors files of one version, opened like safetensors.safe_open."""
    def keys(self) -> list[str]: ...
    def metadata(self) -> dict[str, str] | None: ...
    def get_tensor(self, name: str) -> Any: ...
    def get_slice(self, name: str) -> TensorSlice: ...
    def tensor_info(self) -> dict[str, dict[str, Any]]: ...
    def __enter__(self) -> SafeOpen: ...
    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

class TensorSlice:
    """One tensor of a SafeOpen, read when indexed."""
    def get_shape(self) -> list[int]: ...
    def get_dtype(self) -> str: ...
    def _read_rows(self, start: int, stop: int) -> Any: ...
    def _read_all(self) -> Any: ...
    def __getitem__(self, key: Any) -> Any: ...
