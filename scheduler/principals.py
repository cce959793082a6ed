"""Principals: named API keys with a role, stored hashed in Redis.

A key is shown once when it is made; Redis keeps only its SHA-256 digest (keys are
random 256-bit tokens, so a fast hash is enough: there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from scheduler.errors import AuthenticationFailed
from scheduler.settings import TaktSettings
from scheduler.store import JobStore

__all__ = [
    "ADMIN_PRINCIPAL",
    "Principal",
    "Role",
    "authenticate",
    "ensure_admin_token",
    "ensure_principal_key",
    "new_key",
]

#: The bootstrap administrator, whose key is ``TAKT_ADMIN_TOKEN`` or the generated file.
ADMIN_PRINCIPAL = "admin"


class Role(StrEnum):
    ADMIN = "admin"
    READER = "reader"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role

    @property
    def can_write(self) -> bool:
        return self.role is Role.ADMIN


def new_key() -> str:
    """A fresh random API key."""
    return "takt_" + secrets.token_urlsafe(32)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_principal_key(store: JobStore, name: str, role: Role, key: str) -> None:
    """Make ``key`` a valid key of principal ``name`` (idempotent)."""
    keys = store.keys
    pipe = store.redis.pipeline(transaction=True)
    pipe.hset(keys.principal(name), mapping={"role": role.value, "digest": _digest(key)})
    pipe.zadd(keys.principals, {name: 0})
    pipe.set(keys.api_key(_digest(key)), name)
    pipe.execute()


def authenticate(store: JobStore, key: str | None) -> Principal:
    """The principal whose key this is.

    Raises:
        AuthenticationFailed: no key, an unknown key, or a revoked principal.
    """
    if not key:
        raise AuthenticationFailed("an API key is required: Authorization: Bearer <key>")
    found = store.redis.get(store.keys.api_key(_digest(key)))
    name = str(found) if found else ""
    fields = store.redis.hgetall(store.keys.principal(name)) if name else {}
    if not name or fields.get("digest") != _digest(key):
        raise AuthenticationFailed("the API key is not valid")
    return Principal(name=name, role=Role(str(fields["role"])))


def ensure_admin_token(settings: TaktSettings) -> tuple[str, Path | None]:
    """The bootstrap admin key: ``TAKT_ADMIN_TOKEN``, else the data dir's file (made 0600).

    Returns the key and the file it lives in (None when it came from the environment).
    """
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value(), None
    path = settings.admin_token_path
    if path.exists():
        return path.read_text().strip(), path
    path.parent.mkdir(parents=True, exist_ok=True)
    token = new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token, path
