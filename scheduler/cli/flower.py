"""Flower's login: Takt never runs Flower without one.

Flower can send any task to the broker and revoke any task, so its pages and its HTTP API
need basic auth: ``FLOWER_BASIC_AUTH=user:password`` when the operator sets it, otherwise
credentials generated into ``data_dir/flower-credentials`` (0600) on the first start and
reused after. Flower's open API (``FLOWER_UNAUTHENTICATED_API``) is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scheduler.data_folder import (
    FLOWER_CREDENTIALS_FILE,
    new_password,
    private_folder,
    secret_file,
)
from scheduler.errors import ConfigurationError
from scheduler.settings import TaktSettings

__all__ = ["FlowerLogin", "flower_login"]

#: Flower's generated login (``user:password``), in the data directory.
_USER = "takt"


@dataclass(frozen=True, slots=True)
class FlowerLogin:
    """``user:password`` for FLOWER_BASIC_AUTH, and the file it is kept in (None: the
    operator's FLOWER_BASIC_AUTH)."""

    credentials: str
    path: Path | None

    def __repr__(self) -> str:
        return f"FlowerLogin(path={self.path!r})"

    @property
    def where(self) -> str:
        """Where the login is, for people: never the password itself."""
        return str(self.path.resolve()) if self.path else "FLOWER_BASIC_AUTH"


def flower_login(settings: TaktSettings, variables: Mapping[str, str]) -> FlowerLogin:
    """The login Flower must require, given Flower's ``variables``
    (:func:`scheduler.settings.flower_variables`).

    Raises:
        ConfigurationError: ``FLOWER_UNAUTHENTICATED_API`` is set, or
            ``FLOWER_BASIC_AUTH`` is not ``user:password``.
    """
    if "FLOWER_UNAUTHENTICATED_API" in variables:
        raise ConfigurationError(
            "FLOWER_UNAUTHENTICATED_API is refused: Flower's API can run and revoke any "
            "task, so Takt always runs it with a login (unset it; the login is "
            f"FLOWER_BASIC_AUTH or {settings.data_dir / FLOWER_CREDENTIALS_FILE})"
        )
    given = variables.get("FLOWER_BASIC_AUTH")
    if given is not None:
        user, _, password = given.partition(":")
        if not user or not password:
            raise ConfigurationError("FLOWER_BASIC_AUTH must be user:password")
        return FlowerLogin(given, None)
    path = private_folder(settings.data_dir) / FLOWER_CREDENTIALS_FILE
    return FlowerLogin(secret_file(path, lambda: f"{_USER}:{new_password()}"), path)
