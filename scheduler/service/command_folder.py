"""The command folder: the one place ExportJobs writes and ImportJobs reads.

It is ``TAKT_DATA_DIR/exchange``, made mode 0700 (and brought back to 0700 if found
looser). Names are relative (checked when a command line is parsed, see
:mod:`scheduler.service.command_line`); here, at run time, every name is resolved and must stay
inside the folder, so a symbolic link that points outside is refused, for reading and
for writing. A file is written once: to a new temporary file (``O_EXCL``, mode 0600) in
the same folder, flushed to disk, then hard-linked to its name, which fails if anything
already has that name; an existing file is never overwritten, whatever its owner.

Messages name the file as the command named it, never the folder's absolute path: they
end up in job history.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from scheduler.errors import CommandFailed
from scheduler.settings import TaktSettings

__all__ = ["FOLDER_NAME", "CommandFolder"]

#: The command folder's name inside ``TAKT_DATA_DIR``.
FOLDER_NAME = "exchange"
_FOLDER_MODE = 0o700
_FILE_MODE = 0o600
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


class CommandFolder:
    """Reads and writes of file names relative to one private folder."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()

    @classmethod
    def of(cls, settings: TaktSettings) -> CommandFolder:
        return cls(settings.data_dir / FOLDER_NAME)

    def read(self, name: str, *, max_bytes: int) -> bytes:
        """The content of file ``name``, at most ``max_bytes`` long."""
        path = self._inside(name, self._resolve(name, self.path / name))
        try:
            # O_NONBLOCK: a FIFO put in the folder must not hang the worker.
            fd = os.open(path, os.O_RDONLY | _NO_FOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise self._failed(name, exc) from exc
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CommandFailed(f"{name}: not a regular file in the command folder")
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise CommandFailed(f"{name}: larger than {max_bytes:,} bytes")
        return data

    def write_new(self, name: str, data: bytes) -> None:
        """Write ``data`` to a new file ``name`` (mode 0600); an existing name is refused."""
        self.ensure()
        wanted = self.path / name
        if not wanted.parent.is_dir():
            raise CommandFailed(f"{name}: no such folder in the command folder")
        parent = self._inside(name, self._resolve(name, wanted.parent))
        target = parent / wanted.name
        if os.path.lexists(target):
            raise CommandFailed(f"{name} exists in the command folder; exports never overwrite")
        temporary = parent / f".{wanted.name}.{secrets.token_hex(6)}.tmp"
        try:
            self._write_temporary(temporary, data)
            os.link(temporary, target, follow_symlinks=False)
        except FileExistsError as exc:
            raise CommandFailed(
                f"{name} exists in the command folder; exports never overwrite"
            ) from exc
        except OSError as exc:
            raise self._failed(name, exc) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        self._sync(parent)

    def ensure(self) -> Path:
        """The folder, made (with ``TAKT_DATA_DIR``) mode 0700 if it is missing."""
        try:
            self.path.parent.mkdir(mode=_FOLDER_MODE, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                self.path.mkdir(mode=_FOLDER_MODE)
            info = self.path.lstat()
            if not stat.S_ISDIR(info.st_mode):
                raise CommandFailed("the command folder is not a folder (a link or a file?)")
            if stat.S_IMODE(info.st_mode) != _FOLDER_MODE:
                self.path.chmod(_FOLDER_MODE)
        except OSError as exc:
            raise CommandFailed(f"the command folder cannot be made: {exc.strerror}") from exc
        return self.path

    def _resolve(self, name: str, path: Path) -> Path:
        try:
            return path.resolve(strict=True)
        except FileNotFoundError as exc:
            raise CommandFailed(f"{name}: no such file in the command folder") from exc
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise CommandFailed(f"{name}: cannot be found in the command folder") from exc

    def _inside(self, name: str, resolved: Path) -> Path:
        root = self.ensure().resolve()
        if resolved != root and not resolved.is_relative_to(root):
            raise CommandFailed(f"{name}: leads out of the command folder (a symbolic link?)")
        return resolved

    @staticmethod
    def _write_temporary(path: Path, data: bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW
        fd = os.open(path, flags, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)  # whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    @staticmethod
    def _sync(folder: Path) -> None:
        """Make the new name durable (a rename or link lives in the folder's metadata)."""
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _failed(name: str, exc: OSError) -> CommandFailed:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "error")
        return CommandFailed(f"{name}: {reason.lower()} in the command folder")
