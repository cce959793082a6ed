"""Principals: named API keys with a role, stored hashed in Redis.

A key is shown once when it is made; Redis keeps only its SHA-256 digest (keys are
random 256-bit tokens, so a fast hash is enough: there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from scheduler.domain.refs import checked_name
from scheduler.errors import AuthenticationFailed, Conflict, NotFound, ValidationFailed
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore, redis_errors

__all__ = [
    "ADMIN_PRINCIPAL",
    "KeyCache",
    "Principal",
    "PrincipalBook",
    "Role",
    "authenticate",
    "ensure_admin_token",
    "ensure_principal_key",
    "key_digest",
    "new_key",
    "require_admin_role",
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


def key_digest(key: str) -> str:
    """What Redis keeps of a key (its SHA-256, hex): the key cannot be read back from it."""
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_principal_key(store: JobStore, name: str, role: Role, key: str) -> None:
    """Make ``key`` a valid key of principal ``name`` (idempotent)."""
    keys = store.keys
    with redis_errors():
        pipe = store.redis.pipeline(transaction=True)
        pipe.hset(keys.principal(name), mapping={"role": role.value, "digest": key_digest(key)})
        pipe.zadd(keys.principals, {name: 0})
        pipe.set(keys.api_key(key_digest(key)), name)
        pipe.execute()


def authenticate(store: JobStore, key: str | None) -> Principal:
    """The principal whose key this is.

    Raises:
        AuthenticationFailed: no key, an unknown key, or a revoked principal.
    """
    if not key:
        raise AuthenticationFailed("an API key is required: Authorization: Bearer <key>")
    with redis_errors():
        found = store.redis.get(store.keys.api_key(key_digest(key)))
        name = str(found) if found else ""
        fields = store.redis.hgetall(store.keys.principal(name)) if name else {}
    if not name or fields.get("digest") != key_digest(key):
        raise AuthenticationFailed("the API key is not valid")
    return Principal(name=name, role=Role(str(fields["role"])))


def require_admin_role(name: str, role: str | None, field: str) -> str:
    """``name`` if ``role``, its principal's (None: no such principal), is administrator;
    a 400 naming ``field`` otherwise."""
    if role != Role.ADMIN:
        raise ValidationFailed(
            f"{field}: {name!r} is not an administrator principal (owners must be)",
            field=field,
        )
    return name


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


class KeyCache:
    """Which principal a key belongs to, remembered for ``ttl_s`` in one API process.

    A revoke in this process forgets at once; other API processes stop accepting a
    revoked key within ``ttl_s``.
    """

    def __init__(self, ttl_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._known: dict[str, tuple[float, Principal]] = {}

    def principal(self, key: str | None, look_up: Callable[[], Principal]) -> Principal:
        if key:
            hit = self._known.get(key)
            if hit is not None and hit[0] > self.clock():
                return hit[1]
        principal = look_up()  # raises AuthenticationFailed for a bad key
        if key:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[key] = (self.clock() + self.ttl_s, principal)
        return principal

    def forget(self, name: str) -> None:
        self._known = {k: v for k, v in self._known.items() if v[1].name != name}


class PrincipalBook:
    """Principals and their keys: add (the key is shown once), list, revoke, look up."""

    def __init__(self, store: JobStore, keys: KeyCache | None = None) -> None:
        self.store = store
        self.keys = keys or KeyCache()

    def get(self, name: str, *, digest: str | None = None) -> Principal | None:
        """Principal ``name``; None if there is none, or (``digest`` given) if its key is not
        the one of that :func:`key_digest` any more (revoked and made again, a new key)."""
        with redis_errors():
            fields = self.store.redis.hgetall(self.store.keys.principal(name))
        if not fields:
            return None
        if digest is not None and not hmac.compare_digest(str(fields.get("digest", "")), digest):
            return None
        return Principal(name, Role(str(fields["role"])))

    def list(self) -> list[Principal]:
        with redis_errors():
            names = [str(n) for n in self.store.redis.zrange(self.store.keys.principals, 0, -1)]
        return [p for p in (self.get(name) for name in names) if p is not None]

    def add(self, name: str, role: Role) -> str:
        """Create a principal; returns its key, which is not stored and never shown again."""
        checked_name("name", name)
        if self.get(name) is not None:
            raise Conflict(f"principal {name!r} exists; revoke it first to issue a new key")
        key = new_key()
        ensure_principal_key(self.store, name, role, key)
        return key

    def revoke(self, name: str) -> None:
        """Delete a principal and its key; the last administrator cannot be revoked."""
        principal = self.get(name)
        if principal is None:
            raise NotFound(f"principal {name!r} not found")
        admins = [p for p in self.list() if p.role is Role.ADMIN]
        if principal.role is Role.ADMIN and len(admins) == 1:
            raise Conflict(f"{name!r} is the last administrator and cannot be revoked")
        keys = self.store.keys
        with redis_errors():
            digest = self.store.redis.hget(keys.principal(name), "digest")
            pipe = self.store.redis.pipeline(transaction=True)
            pipe.delete(keys.principal(name))
            pipe.zrem(keys.principals, name)
            if digest:
                pipe.delete(keys.api_key(str(digest)))
            pipe.execute()
        self.keys.forget(name)

    def require_admin(self, name: str, field: str) -> str:
        """``name`` if it is an administrator principal; a 400 naming ``field`` otherwise."""
        principal = self.get(name)
        return require_admin_role(name, principal.role if principal else None, field)
