"""A job's cadence: the grid of occurrences the beat's claim script can follow by itself.

Stored in the job's hash as ``cadence`` = ``"{gen}|"`` + :meth:`Cadence.encode`: the Lua
scripts that write it (``put_job.lua``, ``advance.lua``) put the job's gen in front, and
``claim_due.lua`` reads it back (``cadence_next.lua`` finds the next occurrence). It lives
in the domain, beside :func:`scheduler.domain.planning.cadence` which decides it, and
:mod:`scheduler.store.codecs` lists it with the store's other formats.
"""

from __future__ import annotations

from typing import NamedTuple

from scheduler.domain.models import ActionType

__all__ = ["Cadence"]


class Cadence(NamedTuple):
    """``"first µs|step µs|last µs or empty|action type"``: a rule's grid
    (``Rule.grid_us``), or step 0 for a one-shot job, and the action the job runs."""

    first_us: int
    step_us: int
    last_us: int | None
    action_type: ActionType

    @classmethod
    def one_shot(cls, action_type: ActionType) -> Cadence:
        """A one-shot job's: it has no next occurrence."""
        return cls(0, 0, None, action_type)

    def encode(self) -> str:
        last = "" if self.last_us is None else self.last_us
        return f"{self.first_us}|{self.step_us}|{last}|{self.action_type.value}"

    @classmethod
    def parse(cls, text: str) -> Cadence:
        first, step, last, action_type = text.split("|")
        return cls(int(first), int(step), int(last) if last else None, ActionType(action_type))
