"""What guards the sign-in form: where it was posted from, and how often one address failed.

**Origin.** A sign-in posted from another site (login CSRF: the victim's browser signed in
with the attacker's key) is refused. The form's origin is the ``Origin`` header, or the
``Referer``'s when a browser sent no ``Origin``; it must be the console's own origin:
``TAKT_PUBLIC_URL`` when set, else the scheme, host and port the request was addressed to.
A post with neither header is not from a browser (browsers send ``Origin`` on every POST);
it is let through, as ``curl`` is.

**Throttling.** After :data:`SIGN_IN_FAILURES` failed sign-ins from one client address
within :data:`SIGN_IN_WINDOW` of the first, that address's sign-ins are refused unjudged
(429, ``Retry-After``) until the window ends. The count is kept in the store
(:class:`~scheduler.store.sessions.SignInFailures`, expiring with the window), so every
API process sees the same count.

**Size.** The sign-in form is the one form read without a session; it is read only up to
:data:`SIGN_IN_FORM_MAX_BYTES`.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from scheduler.store.jobs import JobStore
from scheduler.store.sessions import SignInFailures

__all__ = [
    "SIGN_IN_FAILURES",
    "SIGN_IN_FORM_MAX_BYTES",
    "SIGN_IN_WINDOW",
    "SignInThrottle",
    "posted_from",
]

SIGN_IN_FAILURES = 10
SIGN_IN_WINDOW = timedelta(minutes=5)
#: The sign-in form holds one key (about 50 characters); a larger body is refused (413)
#: after reading this much, whatever the API's body limit.
SIGN_IN_FORM_MAX_BYTES = 4096

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    """``url``'s (scheme, host, port); None for an opaque origin (``null``) or garbage."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        return None
    if not parts.hostname or not port:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def posted_from(headers: Headers, own_url: str) -> bool:
    """Whether a form with these request headers came from ``own_url``'s origin (or from no
    browser at all: neither ``Origin`` nor ``Referer``)."""
    sent = headers.get("origin")
    if sent is None:
        sent = headers.get("referer")
    if sent is None:
        return True
    found = _origin(sent)
    return found is not None and found == _origin(own_url)


class SignInThrottle:
    """Failed sign-ins per client address, counted in the store for a window."""

    def __init__(
        self,
        store: JobStore,
        failures: int = SIGN_IN_FAILURES,
        window: timedelta = SIGN_IN_WINDOW,
    ) -> None:
        self.store = store
        self.failures = failures
        self.window_s = int(window.total_seconds())
        self._counts = SignInFailures(store)

    def wait_s(self, address: str) -> int:
        """Seconds until ``address`` may try again (0: now)."""
        count, ttl_s = self._counts.count(address)
        if count < self.failures:
            return 0
        return ttl_s if ttl_s > 0 else self.window_s

    def failed(self, address: str) -> None:
        """Count a failed sign-in of ``address``; the window starts at its first failure."""
        self._counts.add(address, self.window_s)
