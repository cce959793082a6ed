"""One attempt as a task message names it: which job, which occurrence, which attempt of
which action. Ids only: the definition, with its secrets, is loaded from the store."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from scheduler.store.ledger import LedgerEntry

__all__ = ["RunRequest"]


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What a task message says: which job, which occurrence, which attempt of which action."""

    jid: str
    occurrence_ms: int
    attempt: int = 0
    manual: bool = False
    error: bool = False

    @property
    def tag(self) -> str:
        """Names this attempt in lease keys and history ids (``m0``, ``m1``, ``e0`` ...)."""
        return f"{'e' if self.error else 'm'}{self.attempt}"

    @property
    def execution_tag(self) -> str:
        """Stable across retries of one occurrence, so receivers can deduplicate."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"takt:{self.jid}@{self.occurrence_ms}"))

    @property
    def ledger_entry(self) -> LedgerEntry:
        return LedgerEntry(
            self.jid, self.occurrence_ms, self.attempt, error=self.error, manual=self.manual
        )

    def task_kwargs(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "manual": self.manual, "error": self.error}

    def next_attempt(self) -> RunRequest:
        return replace(self, attempt=self.attempt + 1)

    def error_action(self) -> RunRequest:
        return replace(self, attempt=0, error=True)
