"""Structured logs: with ``TAKT_LOG_FORMAT=json`` every process writes one JSON object a line.

Each line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and ``role``
(api, beat, worker); a line written while a worker runs an attempt also has ``job``,
``occurrence``, ``attempt``, ``execution_tag``, ``action_type`` and ``outcome`` (null until
the attempt has one), taken from :func:`about_attempt`'s context, and a line may pass the
same fields through ``extra=``. An exception is one ``exception`` field, not extra lines.

Secrets never reach a line: the message and the exception are cut down as every log of
Takt's is (:func:`scheduler.domain.redaction.redact_urls`: no user info, no query), and,
during an attempt, every credential of the job (its basic-auth password, secret headers,
client certificate password, ...; :func:`scheduler.domain.credentials.secret_values`) is
masked wherever it shows.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Set
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from scheduler.domain.credentials import redact
from scheduler.domain.redaction import redact_urls

__all__ = [
    "ATTEMPT_FIELDS",
    "AttemptFields",
    "JsonFormatter",
    "about_attempt",
    "current_attempt",
    "use_json_logs",
]

#: The fields of a line about an attempt, in the order they are written.
ATTEMPT_FIELDS = ("job", "occurrence", "attempt", "execution_tag", "action_type", "outcome")
#: uvicorn configures these itself when it starts (after the API has set up logging).
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@dataclass(slots=True)
class AttemptFields:
    """What a line written during an attempt says about it. ``execution_tag`` and
    ``secrets`` are computed only if a line is written (most attempts write none)."""

    job: str
    occurrence_ms: int
    attempt: str
    execution_tag: Callable[[], str]
    action_type: str | None = None
    outcome: str | None = None
    secrets: Callable[[], Set[str]] | None = None
    _secrets: Set[str] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "occurrence": datetime.fromtimestamp(self.occurrence_ms / 1000, UTC).isoformat(),
            "attempt": self.attempt,
            "execution_tag": self.execution_tag(),
            "action_type": self.action_type,
            "outcome": self.outcome,
        }

    def secret_values(self) -> Set[str]:
        """The job's credentials, once known (computed on the first line that needs them)."""
        if self.secrets is None:
            return frozenset()
        if self._secrets is None:
            self._secrets = self.secrets()
        return self._secrets


_ATTEMPT: ContextVar[AttemptFields | None] = ContextVar("takt_attempt", default=None)


@contextmanager
def about_attempt(fields: AttemptFields) -> Iterator[AttemptFields]:
    """Lines written inside the block (in this thread) are about this attempt."""
    token = _ATTEMPT.set(fields)
    try:
        yield fields
    finally:
        _ATTEMPT.reset(token)


def current_attempt() -> AttemptFields | None:
    return _ATTEMPT.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record, secrets masked (see the module's docstring)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        about = _ATTEMPT.get()
        secrets = about.secret_values() if about is not None else frozenset()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _clean(record.getMessage(), secrets),
            "role": self.role,
        }
        if about is not None:
            entry.update(about.as_dict())
        for name in ATTEMPT_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["exception"] = _clean(self.formatException(record.exc_info), secrets)
        elif record.stack_info:
            entry["stack"] = _clean(self.formatStack(record.stack_info), secrets)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _clean(text: str, secrets: Set[str]) -> str:
    text = redact_urls(text)
    return redact(text, set(secrets)) if secrets else text


def use_json_logs(role: str, loggers: tuple[logging.Logger, ...] = ()) -> None:
    """Make the root logger's handlers, and those of ``loggers``, write JSON lines.

    The root logger gets a handler on stderr if it has none. uvicorn replaces its loggers'
    handlers when it starts, after the API's app was built; their records are handed to
    the root logger's handlers instead (a filter on each, which survives uvicorn's
    configuration), so its lines are JSON from the first one.
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    logging.captureWarnings(True)  # a warning is a line like any other, not raw stderr
    # An exception nothing caught (a process that dies of it, a thread's) is a line too,
    # not Python's traceback on stderr.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    formatter = JsonFormatter(role)
    for logger in (root, *loggers):
        for handler in logger.handlers:
            handler.setFormatter(formatter)
    for name in _SERVER_LOGGERS:
        server = logging.getLogger(name)
        if not any(isinstance(f, _ToRoot) for f in server.filters):
            server.addFilter(_ToRoot())


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("takt").critical("uncaught exception; exiting", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("takt").critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


class _ToRoot(logging.Filter):
    """Hands a record to the root logger's handlers and stops it going further."""

    def filter(self, record: logging.LogRecord) -> bool:
        for handler in logging.getLogger().handlers:
            if record.levelno >= handler.level:
                handler.handle(record)
        return False
