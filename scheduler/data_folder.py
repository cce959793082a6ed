"""The data folder (``TAKT_DATA_DIR``) is its owner's alone, and one ``takt up``'s at a time.

It holds the generated administrator key, the embedded Valkey's password and data, and
Flower's login: folders are 0700, files 0600, and a secret file is never readable by
anyone else, not even for the moment between its creation and a chmod.

A running ``takt up`` holds ``takt.lock`` (an ``flock``, with its pid written in the file),
so a second one on the same folder stops before it starts a second Valkey on the same
AOF files; the kernel drops the lock when the process ends, however it ends. While it
runs, ``store-url`` (0600: it carries the password) tells every other ``takt`` command on
this folder where the embedded store is; a ``store-url`` without a lock holder is stale
and ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from scheduler.errors import ConfigurationError, FolderInUse

__all__ = [
    "FLOWER_CREDENTIALS_FILE",
    "LOCK_FILE",
    "STORE_URL_FILE",
    "FolderLock",
    "make_private",
    "new_password",
    "private_folder",
    "running_store_url",
    "secret_file",
]

FOLDER_MODE = 0o700
FILE_MODE = 0o600
#: Held (flock) by the running ``takt up``; holds its pid.
LOCK_FILE = "takt.lock"
#: The embedded store's URL, password included, while ``takt up`` runs.
STORE_URL_FILE = "store-url"
#: Flower's generated login (``user:password``), made by ``takt up`` and ``takt flower``.
FLOWER_CREDENTIALS_FILE = "flower-credentials"


def private_folder(folder: Path) -> Path:
    """Create ``folder`` (and its parents) if missing, and make it 0700."""
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    folder.chmod(FOLDER_MODE)
    return folder


def make_private(folder: Path) -> Path:
    """:func:`private_folder`, and everything under it: folders 0700, files 0600.

    Tightens what an earlier version left open; sockets and links are left alone.
    """
    private_folder(folder)
    for path in folder.rglob("*"):
        if path.is_symlink() or path.is_socket():
            continue
        path.chmod(FOLDER_MODE if path.is_dir() else FILE_MODE)
    return folder


def new_password() -> str:
    """A random password of 64 hex digits (safe in URLs and config files)."""
    return secrets.token_hex(32)


def secret_file(path: Path, generate: Callable[[], str] = new_password) -> str:
    """The secret kept in ``path``, generated on first use and reused after.

    A new file is written 0600 under a temporary name and linked into place, so a
    concurrent first start reads a whole secret, never a half-written or replaced one.

    Raises:
        ConfigurationError: the file exists but is empty.
    """
    if not path.exists():
        _create(path, generate())
    path.chmod(FILE_MODE)
    secret = path.read_text().strip()
    if not secret:
        # An empty password would mean none at all (Valkey's requirepass "").
        raise ConfigurationError(f"{path} is empty: delete it to generate a new secret")
    return secret


def _create(path: Path, secret: str) -> None:
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        with contextlib.suppress(FileExistsError):  # another start made it first: it wins
            os.link(draft, path)
    finally:
        draft.unlink()


class FolderLock:
    """The data folder's ``takt.lock``, held by one ``takt up`` until :meth:`release` or
    its end.

    The descriptor is not inherited by children (Python opens files close-on-exec), so
    only this process holds the lock.
    """

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self._fd = fd

    @classmethod
    def take(cls, folder: Path) -> FolderLock:
        """Hold ``folder``'s lock and write this pid into it.

        Raises:
            FolderInUse: another process holds it (its pid in the error).
        """
        fd = os.open(private_folder(folder) / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _pid_in(fd)
            os.close(fd)
            shown = f"pid {pid}" if pid else "its pid not yet written"
            raise FolderInUse(f"already running ({shown})", pid=pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(folder, fd)

    def publish_store_url(self, url: str) -> None:
        """Write ``store-url`` (0600, whole or not at all) for the other commands."""
        path = self.folder / STORE_URL_FILE
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # a draft left by a killed start keeps its mode otherwise
        with os.fdopen(fd, "w") as handle:
            handle.write(url + "\n")
        os.replace(draft, path)

    def release(self) -> None:
        """Remove ``store-url`` and let the lock go."""
        (self.folder / STORE_URL_FILE).unlink(missing_ok=True)
        os.close(self._fd)


def _pid_in(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _held(folder: Path) -> bool:
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:  # none, or not ours to read: no `takt up` of ours runs there
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a shared lock taken just now
    return False


def running_store_url(folder: Path) -> str | None:
    """The URL of the embedded store of the ``takt up`` running on ``folder``; None when
    none runs there (a ``store-url`` left by one that was killed is stale)."""
    path = folder / STORE_URL_FILE
    if not path.exists() or not _held(folder):
        return None
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:  # it stopped in between
        return None
