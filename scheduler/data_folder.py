"""The data folder (``TAKT_DATA_DIR``) is its owner's alone.

It holds the generated administrator key, the embedded Valkey's password and data, and
Flower's login: folders are 0700, files 0600, and a secret file is never readable by
anyone else, not even for the moment between its creation and a chmod.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from scheduler.errors import ConfigurationError

__all__ = ["make_private", "new_password", "private_folder", "secret_file"]

FOLDER_MODE = 0o700
FILE_MODE = 0o600


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
