"""Console sessions as the store keeps them, and the sign-in form's failure counts.

``{p}:session:{id}`` is a hash (``principal``, ``digest``, ``csrf``) that expires a set time
after sign-in; ``{p}:signin-failures:{address}`` counts one client address's failed
sign-ins and expires with its window. What a session may do, and when an address must
wait, is the console's (:mod:`scheduler.console.sessions`, :mod:`scheduler.console.sign_in`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from scheduler.store.jobs import JobStore, redis_errors

__all__ = ["SessionRecord", "SessionStore", "SignInFailures"]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A stored session: its principal, the digest of the key it signed in with, its CSRF
    token."""

    principal: str
    digest: str
    csrf: str


class SessionStore:
    """Sessions by id, each expiring a set time after it was written."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def put(self, sid: str, session: SessionRecord, ttl: timedelta) -> None:
        key = self.store.keys.session(sid)
        with redis_errors():
            pipe = self.store.redis.pipeline(transaction=True)
            pipe.hset(
                key,
                mapping={
                    "principal": session.principal,
                    "digest": session.digest,
                    "csrf": session.csrf,
                },
            )
            pipe.expire(key, ttl)
            pipe.execute()

    def get(self, sid: str) -> SessionRecord | None:
        """The session, None when there is none (or it expired). A session stored without a
        digest gets ``-``, which matches no key."""
        with redis_errors():
            fields = self.store.redis.hgetall(self.store.keys.session(sid))
        if not fields:
            return None
        return SessionRecord(
            str(fields["principal"]), str(fields.get("digest", "-")), str(fields["csrf"])
        )

    def delete(self, sid: str) -> None:
        with redis_errors():
            self.store.redis.delete(self.store.keys.session(sid))


class SignInFailures:
    """Failed sign-ins per client address, each address's count expiring with its window."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def count(self, address: str) -> tuple[int, int]:
        """The address's failures in its window, and the seconds left of the window (as
        Redis's TTL: negative when there is none)."""
        key = self.store.keys.sign_in_failures(address)
        with redis_errors():
            pipe = self.store.redis.pipeline(transaction=True)
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = pipe.execute()
        return int(count or 0), int(ttl)

    def add(self, address: str, window_s: int) -> None:
        """Count a failure of the address; its window starts at its first failure."""
        key = self.store.keys.sign_in_failures(address)
        with redis_errors():
            pipe = self.store.redis.pipeline(transaction=True)
            pipe.set(key, 0, ex=window_s, nx=True)
            pipe.incr(key)
            pipe.execute()
