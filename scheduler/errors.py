"""Takt's exceptions, one tree rooted in :class:`TaktError`.

Each class is also the built-in exception that fits, so callers can catch
either (``except JobNotFound`` or ``except LookupError``)::

    TaktError
    ├── ValidationFailed (ValueError)        bad input; names the field, becomes a 400
    │   ├── InvalidRecurrence                 a recurrence the engine refuses
    │   ├── LimitExceeded                     a size limit (job 16 KB, URI, headers, body)
    │   └── OutboundRefused                   an address the outbound policy refuses
    ├── NotFound (LookupError)               becomes a 404
    │   ├── CollectionNotFound
    │   └── JobNotFound
    ├── Conflict                             a rule forbids the change now; becomes a 409
    │   ├── JobFinished                       Completed/Faulted jobs cannot be updated
    │   ├── JobDisabled                       disabled jobs never run, not even by hand
    │   ├── QuotaExceeded                     a collection quota would be exceeded
    │   └── UnreadableJob                     a stored job this Takt cannot read or render
    ├── AuthenticationFailed (PermissionError)  no key or a wrong key; a 401
    ├── Forbidden (PermissionError)            the principal may not do this; a 403
    ├── StoreError (ConnectionError)         the Redis store failed (wraps redis errors)
    │   ├── SchemaTooNew                       stored data written by a newer Takt
    │   └── WriteNotReplicated                 no replica acknowledged a write in time
    ├── ConfigurationError (ValueError)      settings that cannot work
    ├── FolderInUse (RuntimeError)           another `takt up` holds the data folder
    ├── CommandFailed                        a management command could not finish (its file)
    └── ClientError                          the Python client could not talk to the API
        └── ApiError                           the API answered with an ARM error body
"""

from __future__ import annotations


class TaktError(Exception):
    """The root of every exception Takt raises on purpose."""


class ValidationFailed(TaktError, ValueError):
    """Input that breaks a rule; the message names the field and the rule."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidRecurrence(ValidationFailed):
    """A recurrence the engine cannot or will not compute."""


class LimitExceeded(ValidationFailed):
    """A size limit of Azure Scheduler (job size, URI, headers, body)."""


class OutboundRefused(ValidationFailed):
    """An address ``TAKT_ACTION_DENY_NETWORKS``/``TAKT_ACTION_ALLOW_NETWORKS`` refuses; the
    message names the setting and the network."""


class NotFound(TaktError, LookupError):
    """A resource that does not exist."""


class CollectionNotFound(NotFound):
    """No job collection of that name."""


class JobNotFound(NotFound):
    """No job of that name in the collection."""


class Conflict(TaktError):
    """The request is valid but a rule forbids it in the current state."""


class JobFinished(Conflict):
    """Completed and Faulted are final: such a job can be deleted, not updated."""


class JobDisabled(Conflict):
    """A disabled job (or a job in a disabled collection) never runs."""


class QuotaExceeded(Conflict):
    """A collection quota would be exceeded; the message names the quota."""


class UnreadableJob(Conflict):
    """A stored job this Takt cannot read or render (an older version or a bug wrote it,
    or it was written behind the API's back). Lists leave it out; it can be deleted."""

    @classmethod
    def of(cls, jid: str, cause: BaseException) -> UnreadableJob:
        """The error for job ``jid``, saying why in one line."""
        why = str(cause).splitlines()[0][:200] if str(cause) else ""
        return cls(
            f"job {jid!r} is stored in a form this Takt cannot read "
            f"({type(cause).__name__}: {why}); delete it and create it again"
        )


class AuthenticationFailed(TaktError, PermissionError):
    """No API key, or one that is not known."""


class Forbidden(TaktError, PermissionError):
    """The principal's role does not allow the operation."""


class StoreError(TaktError, ConnectionError):
    """The Redis store failed; the redis exception is chained."""


class SchemaTooNew(StoreError):
    """A stored record carries a schema version newer than this code knows."""


class WriteNotReplicated(StoreError):
    """A write the primary took but fewer replicas than required acknowledged in time
    (``WAIT``): a failover now would promote a replica without it, so it is not confirmed.
    The write is not undone; repeating it is safe (every job and collection write is a
    create-or-replace, a change of state or a delete)."""

    @classmethod
    def of(cls, acknowledged: int, required: int, timeout_ms: int) -> WriteNotReplicated:
        """The error for a ``WAIT required timeout_ms`` that answered ``acknowledged``."""
        who = "no replica" if acknowledged == 0 else f"only {acknowledged} of {required} replicas"
        return cls(
            f"the write reached the primary, but {who} acknowledged it within {timeout_ms} ms; "
            "a failover could lose it, so it is not confirmed: try again once the replicas "
            "are back"
        )


class ConfigurationError(TaktError, ValueError):
    """Settings that cannot work together."""


class FolderInUse(TaktError, RuntimeError):
    """Another ``takt up`` holds the data folder's lock; ``pid`` is its process (None:
    not yet written)."""

    def __init__(self, message: str, *, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class CommandFailed(TaktError):
    """A management command could not finish: a file it may not write, or cannot read."""


class ClientError(TaktError):
    """The Python client could not complete a call."""


class ApiError(ClientError):
    """The API answered with an error; ``status`` and ``code`` come from it."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
