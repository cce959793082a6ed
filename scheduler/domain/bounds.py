"""The ranges values on the wire must lie in, checked when a job is written.

Every check raises :class:`ValueError` with a message that states the rule; the pydantic
validators of :mod:`scheduler.domain.models` call these, so the message reaches the client
prefixed with the field's path (``properties.action.request.uri: ...``).

============================  ======================================================
value                         accepted
============================  ======================================================
a date-time                   an offset, and 1970-01-01T00:00:00Z <= t < 9000-01-01Z
a duration                    PT0S .. P2Y (730 days; a year is 365 days, a month 30)
recurrence.count              1 .. 1,000,000,000
Celery args / kwargs          nesting at most 16 deep, at most 8 KiB as JSON each
an HTTP request's uri         absolute http(s), a valid host and port, no space,
                              no control character
a header                      an RFC 9110 token as name, no control character but
                              tab in the value
a method                      GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS
============================  ======================================================

The latest date-time leaves a thousand years of room: a rule started before it can still
produce occurrences for centuries, and the recurrence engine stops cleanly where Python's
datetime ends (see :data:`scheduler.recurrence._clocks.LAST_INSTANT_S`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "EARLIEST_TIMESTAMP",
    "HTTP_METHODS",
    "LATEST_TIMESTAMP",
    "MAX_ARGUMENT_BYTES",
    "MAX_ARGUMENT_DEPTH",
    "MAX_COUNT",
    "MAX_DURATION",
    "check_argument",
    "check_duration",
    "check_header",
    "check_http_uri",
    "check_method",
    "check_text",
    "check_timestamp",
    "nested_deeper_than",
    "split_authority",
]

#: The earliest date-time accepted (epoch milliseconds stay non-negative).
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
#: The first date-time refused: far from datetime's end, so arithmetic on it cannot fail.
LATEST_TIMESTAMP = datetime(9000, 1, 1, tzinfo=UTC)
#: The longest duration accepted (P2Y; retryInterval is further held to P18M).
MAX_DURATION = timedelta(days=730)
#: The largest count accepted (recurrence.count).
MAX_COUNT = 1_000_000_000
#: How deep a Celery task's args or kwargs may nest.
MAX_ARGUMENT_DEPTH = 16  # under the body's own limit (TAKT_MAX_JSON_DEPTH), to name the field
#: How large a Celery task's args or kwargs may be, as compact JSON.
MAX_ARGUMENT_BYTES = 8 * 1024
#: The methods an Http/Https action may use.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

#: Unicode's control characters (category Cc: C0, DEL and C1), and every space.
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL_BUT_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 5.6.2
_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def check_timestamp(value: datetime) -> datetime:
    """``value`` if it is aware and within the accepted range."""
    if value.utcoffset() is None:
        raise ValueError("a date-time needs a UTC offset (for example 2026-01-01T10:00:00Z)")
    if not EARLIEST_TIMESTAMP <= value < LATEST_TIMESTAMP:
        raise ValueError(
            f"{value.isoformat()} is out of range: from 1970-01-01T00:00:00Z to before "
            "9000-01-01T00:00:00Z"
        )
    return value


def check_duration(value: timedelta) -> timedelta:
    """``value`` if it is within PT0S..P2Y."""
    if not timedelta(0) <= value <= MAX_DURATION:
        raise ValueError("is out of range: from PT0S to P2Y (730 days)")
    return value


def check_argument(value: Any) -> Any:
    """``value`` (Celery args or kwargs) if it nests and weighs little enough."""
    _check_depth(value, MAX_ARGUMENT_DEPTH)
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:  # a Python caller's datetime, NaN, ...
        raise ValueError(f"is not plain JSON ({exc})") from exc
    size = len(text.encode())
    if size > MAX_ARGUMENT_BYTES:
        raise ValueError(f"is {size:,} bytes as JSON; at most {MAX_ARGUMENT_BYTES:,}")
    return value


def _check_depth(value: Any, allowed: int) -> None:
    # Iterative, so that the check itself cannot exhaust the stack.
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > allowed:
                raise ValueError(f"nests more than {allowed} levels deep")
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def check_text(value: Any) -> Any:
    """``value`` (a JSON document) if every string in it is Unicode text.

    JSON can escape half a UTF-16 surrogate pair (``"\\ud800"``), which Python decodes to a
    string no encoder accepts: stored, it would fail every read. The message names where.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise ValueError(f"{_path_to(value, item)}holds half a surrogate pair, not text")
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return value


def _path_to(document: Any, wanted: str) -> str:
    """Where ``wanted`` is in ``document`` (``a.b[2]: ``), for the message: the slow walk,
    taken only once something was refused."""
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:
        path, item = pending.pop()
        if item is wanted:
            return f"{path}: " if path else ""
        if isinstance(item, dict):
            for key, child in item.items():
                pending.extend([(path, key), (f"{path}.{key}" if path else str(key), child)])
        elif isinstance(item, list):
            pending.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return ""


def check_method(value: str) -> str:
    """The method in upper case, if it is one an action may use."""
    method = value.strip().upper()
    if method not in HTTP_METHODS:
        raise ValueError(f"{value!r} is not one of {', '.join(HTTP_METHODS)}")
    return method


def check_header(name: str, value: str) -> None:
    """Refuse a header that could not be sent as it is, or would split the request."""
    if not _TOKEN.match(name):
        raise ValueError(f"{name!r} is not a valid header name (an RFC 9110 token)")
    if _CONTROL_BUT_TAB.search(value):
        raise ValueError(f"the value of {name!r} holds a control character (CR, LF, NUL, ...)")
    if not value.isascii():
        raise ValueError(
            f"the value of {name!r} holds a character outside ASCII, which HTTP cannot send "
            "as it is (percent-encode it)"
        )


def check_http_uri(uri: str) -> str:
    """``uri`` if it is an absolute http(s) URI that can be sent as it is.

    What is checked of the authority (scheme, host, port) is cached by the authority:
    jobs differ in their paths far more than in their hosts.
    """
    unsendable = _SPACE_OR_CONTROL.search(uri)
    if unsendable is not None:
        raise ValueError(
            f"holds a space or control character ({unsendable.group()!r}) at position "
            f"{unsendable.start()}; percent-encode it"
        )
    scheme, authority = split_authority(uri)
    if authority is not None and _authority_is_sendable(scheme.lower(), authority):
        return uri
    return _check_whole_uri(uri)  # refused (or unusual): the whole check names why


def split_authority(uri: str) -> tuple[str, str | None]:
    """``scheme://authority/...`` as (scheme, authority), the authority cut where
    :func:`urllib.parse.urlsplit` cuts it; (text, None) without ``://``."""
    scheme, separator, rest = uri.partition("://")
    if not separator:
        return uri, None
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop, 0, end)
        if found >= 0:
            end = found
    return scheme, rest[:end]


@lru_cache(maxsize=4096)
def _authority_is_sendable(scheme: str, authority: str) -> bool:
    try:
        _check_whole_uri(f"{scheme}://{authority}/")
    except ValueError:
        return False
    return True


def _check_whole_uri(uri: str) -> str:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:  # an unclosed [IPv6 literal, a port out of range
        raise ValueError(f"{uri!r} is not a valid URI ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{uri!r} must be an absolute http:// or https:// URI")
    _check_host(uri, parts.hostname or "", parts.netloc)
    if port == 0:
        raise ValueError(f"{uri!r} has port 0")
    return uri


def _check_host(uri: str, host: str, netloc: str) -> None:
    if not host:
        raise ValueError(f"{uri!r} has no host")
    if netloc.rpartition("@")[2].startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ValueError(f"{uri!r}: {host!r} is not an IPv6 address") from exc
        return
    try:
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{uri!r}: {host!r} is not a valid host name") from exc
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{uri!r}: {host!r} is not a valid host name")


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_A_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")


def nested_deeper_than(text: bytes, limit: int) -> bool:
    """Whether the JSON ``text`` nests arrays and objects more than ``limit`` deep.

    Without parsing: strings are cut out, every other character but brackets dropped, and
    innermost ``[]`` pairs removed once per level, at C speed. A text with no more than
    ``limit`` opening brackets cannot be too deep, which is every ordinary body.
    """
    if text.count(b"[") + text.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", text).translate(_SQUARE, _NOT_A_BRACKET)
    levels = 0
    while brackets and levels < limit:
        inner_removed = brackets.replace(b"[]", b"")
        if len(inner_removed) == len(brackets):
            break  # unbalanced: what is left opens deeper still, or the parser refuses it
        brackets, levels = inner_removed, levels + 1
    return levels + brackets.count(b"[") > limit if b"[" in brackets else False
