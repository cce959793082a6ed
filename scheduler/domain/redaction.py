"""URIs cut down to ``scheme://host/path`` before they reach a log line or a message.

A job's URI may carry credentials (``user:pw@``, ``?sig=``/``?code=``); what Takt logs and
what it writes into a failure message never does. :func:`quiet_http_logging` applies the
same rule to httpx, which logs every request's full URL at INFO, and keeps httpx and
httpcore at WARNING in every Takt process (their DEBUG lines describe connections).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

__all__ = ["quiet_http_logging", "redact_urls"]

_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"<>]*")
_HTTP_LOGGERS = ("httpx", "httpcore")


def redact_urls(text: str) -> str:
    """``text`` with every URL in it cut down to scheme, host, port and path."""
    return _URL.sub(_cut, text)


def _cut(match: re.Match[str]) -> str:
    try:
        parts = urlsplit(match.group(0))
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port out of range, an unclosed [IPv6 literal, several hosts
        return _cut_hosts(match.group(0))
    if ":" in host:
        host = f"[{host}]"
    query = "?…" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"


class _RedactUrls(logging.Filter):
    """Rewrites a record's message with its URLs cut down (for loggers Takt does not own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_urls(record.getMessage())
        record.args = None
        return True


def quiet_http_logging() -> None:
    """httpx and httpcore at WARNING, and httpx's lines without query or user info even
    if someone turns it up again; safe to call more than once."""
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, _RedactUrls) for f in logger.filters):
            logger.addFilter(_RedactUrls())


def _cut_hosts(url: str) -> str:
    """A URL ``urlsplit`` cannot read: a Sentinel URL's ``host:port,host:port`` list keeps
    its hosts and path; anything else is cut to its scheme."""
    scheme, _, rest = url.partition("://")
    rest = rest.split("#", 1)[0]
    rest, question, _ = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    hosts = netloc.rpartition("@")[2]
    if not _HOST_LIST.fullmatch(hosts):
        return f"{scheme}://…"
    return f"{scheme}://{hosts}{slash}{path}{'?…' if question else ''}"


_HOST = r"(?:[\w.\-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
_HOST_LIST = re.compile(rf"{_HOST}(?:,{_HOST})*")
