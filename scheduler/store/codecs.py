"""The strings with parts that Takt stores: one codec each, and nothing else splits them.

==============  ===============================================  ============================
codec           format                                           stored in
==============  ===============================================  ============================
RetryMember     ``jid|m|occ ms|attempt`` (``e``: error action)   the due set: a long retry
LedgerEntry     a RetryMember's + ``|s`` (scheduled) or ``|r``   the execution ledger
                (a manual run); ``.member`` and ``.parse``
ClaimValue      ``due ms|gen``, plus ``|action type`` when the   the claims stream's values
                claim script advanced the job                    (fields: due-set members)
Cadence         ``first µs|step µs|last µs or empty|action``     a job hash's ``cadence``,
                (:mod:`scheduler.domain.cadence`)                behind ``gen|``
HistoryId       ``occ ms-tag``, plus ``-manual`` or              a history entry's ``id``
                ``-postponed``
==============  ===============================================  ============================

A job id never holds ``|`` (names are checked on the way in), so the first part of any
member is its job. The Lua scripts (``lua/*.lua``) write and read the same formats and
name them in their headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from scheduler.domain.cadence import Cadence

__all__ = [
    "Cadence",
    "ClaimValue",
    "HistoryId",
    "LedgerEntry",
    "RetryMember",
    "job_of",
    "retry_of",
]

_SEP = "|"


def job_of(member: str) -> str:
    """The job of a due-set member (a job id or a :class:`RetryMember`), a claims-stream
    field (the same) or a ledger member."""
    return member.split(_SEP, 1)[0]


class RetryMember(NamedTuple):
    """A due-set member for a one-shot retry of an occurrence's main or error action."""

    jid: str
    occurrence_ms: int
    attempt: int
    error: bool = False

    def encode(self) -> str:
        kind = "e" if self.error else "m"
        return f"{self.jid}{_SEP}{kind}{_SEP}{self.occurrence_ms}{_SEP}{self.attempt}"

    @classmethod
    def parse(cls, member: str) -> RetryMember:
        jid, kind, occurrence, attempt = member.split(_SEP)
        return cls(jid, int(occurrence), int(attempt), error=kind == "e")


def retry_of(member: str) -> RetryMember | None:
    """The retry a due-set member names; None when the member is a job id (a schedule's
    occurrence)."""
    return RetryMember.parse(member) if _SEP in member else None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One attempt of one action of one occurrence, as the execution ledger holds it
    (:mod:`scheduler.store.ledger`): its :attr:`member` is a :class:`RetryMember`'s plus
    ``|s`` (the schedule's) or ``|r`` (a manual run's)."""

    jid: str
    occurrence_ms: int
    attempt: int = 0
    error: bool = False
    manual: bool = False

    @property
    def member(self) -> str:
        retry = RetryMember(self.jid, self.occurrence_ms, self.attempt, self.error).encode()
        return f"{retry}{_SEP}{'r' if self.manual else 's'}"

    @classmethod
    def parse(cls, member: str) -> LedgerEntry:
        retry, origin = member.rsplit(_SEP, 1)
        jid, occurrence_ms, attempt, error = RetryMember.parse(retry)
        return cls(jid, occurrence_ms, attempt, error=error, manual=origin == "r")


class ClaimValue(NamedTuple):
    """A claims-stream value: the claimed occurrence's due time and its job's gen when it
    was claimed, and the job's action type when the claim script advanced the job itself
    ('' when the beat plans it)."""

    due_ms: int
    gen: str
    action_type: str = ""

    def encode(self) -> str:
        value = f"{self.due_ms}{_SEP}{self.gen}"
        return f"{value}{_SEP}{self.action_type}" if self.action_type else value

    @classmethod
    def parse(cls, value: str) -> ClaimValue:
        due_ms, gen, *action_type = value.split(_SEP)
        return cls(int(float(due_ms)), gen, action_type[0] if action_type else "")


class HistoryId(NamedTuple):
    """A history entry's id: the occurrence and the attempt's tag (``m0``, ``m1``...,
    ``e0``... for the error action, as in its lease key), and whether a manual run made it
    or concurrencyPolicy Forbid postponed the occurrence."""

    occurrence_ms: int
    tag: str
    manual: bool = False
    postponed: bool = False

    @property
    def error(self) -> bool:
        return self.tag.startswith("e")

    def encode(self) -> str:
        suffix = "-postponed" if self.postponed else "-manual" if self.manual else ""
        return f"{self.occurrence_ms}-{self.tag}{suffix}"

    @classmethod
    def parse(cls, entry_id: str) -> HistoryId | None:
        """None for an id of another form (an older Takt's, or one written by hand)."""
        parts = entry_id.split("-")
        if len(parts) < 2 or not parts[0].isdigit() or parts[1][:1] not in ("m", "e"):
            return None
        last = parts[-1]
        return cls(int(parts[0]), parts[1], manual=last == "manual", postponed=last == "postponed")
