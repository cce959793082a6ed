"""Console sessions: kept server-side in the store, named by a random id in an HttpOnly cookie.

A session (:class:`~scheduler.store.sessions.SessionRecord`: principal, digest, CSRF token)
expires :data:`SESSION_TTL` after sign-in. A session belongs to the key it signed in with: it keeps
that key's digest (what the principal's hash keeps too), and every request reads the
principal and compares, in the one read it needs anyway for the role. Revoking a principal,
or giving it another key, ends its console sessions at once, and a principal made again
under the same name gets none of them. Each session has its own CSRF token, which every
form and the preview send back.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from scheduler.store.jobs import JobStore
from scheduler.store.principals import Principal, PrincipalBook, authenticate, key_digest
from scheduler.store.sessions import SessionRecord, SessionStore

__all__ = ["COOKIE", "SESSION_TTL", "ConsoleSession", "SessionBook"]

COOKIE = "takt_session"
SESSION_TTL = timedelta(hours=8)


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    sid: str
    principal: Principal
    csrf: str

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf)


class SessionBook:
    """Sign in with an API key, look a session up by its cookie, sign out."""

    def __init__(self, store: JobStore, principals: PrincipalBook) -> None:
        self.store = store
        self.principals = principals
        self._sessions = SessionStore(store)

    def sign_in(self, api_key: str) -> ConsoleSession:
        """A new session for the key's principal.

        Raises:
            AuthenticationFailed: no key or an unknown key.
        """
        key = api_key.strip()
        principal = authenticate(self.store, key)
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._sessions.put(sid, SessionRecord(principal.name, key_digest(key), csrf), SESSION_TTL)
        return ConsoleSession(sid, principal, csrf)

    def find(self, sid: str | None) -> ConsoleSession | None:
        """The live session of cookie value ``sid`` (None: none, expired, or its key is no
        longer its principal's; such a session is deleted)."""
        if not sid or len(sid) > 100:
            return None
        stored = self._sessions.get(sid)
        if stored is None:
            return None
        principal = self.principals.get(stored.principal, digest=stored.digest)
        if principal is None:
            self.sign_out(sid)
            return None
        return ConsoleSession(sid, principal, stored.csrf)

    def sign_out(self, sid: str) -> None:
        self._sessions.delete(sid)
