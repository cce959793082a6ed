"""When a job fires next: pure functions over a job's definition, with ``now`` a parameter.

The recurrence engine answers "which instants does this rule produce"; this module adds
the policy of a running scheduler on top. A new, replaced or re-enabled job fires first at
the occurrence due when it is saved, if there is one (:func:`first_fire`): a job saved
without ``startTime`` starts then and so fires at once, an hourly one included; older
occurrences, from before it was saved, are skipped. An occurrence dispatched late (all
beats were down) follows the job's ``missedRunPolicy``:

==========  ==========================================================================
RunOnce     the default: run the late occurrence once, then resume the schedule from now
Skip        do not run occurrences more than ``startingDeadline`` late (10 s if unset)
RunAll      run every missed occurrence, oldest first, back to back
==========  ==========================================================================

Whatever the policy, an occurrence more than ``startingDeadline`` late never runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from scheduler.clock import END_OF_TIME
from scheduler.domain.cadence import Cadence
from scheduler.domain.models import ActionType, JobProperties, JobRecurrence, MissedRunPolicy
from scheduler.recurrence import Rule, compile_recurrence, next_occurrence, rule_shape

__all__ = [
    "SKIP_TOLERANCE",
    "Dispatch",
    "DispatchPolicy",
    "NextAfter",
    "cadence",
    "first_fire",
    "is_last_occurrence",
    "job_cadence",
    "plan_dispatch",
    "upcoming",
]

#: How late an occurrence may be before ``Skip`` treats it as missed (without a deadline).
SKIP_TOLERANCE = timedelta(seconds=10)

#: The rule's first occurrence strictly after an instant (a compiled Rule's next_after).
NextAfter = Callable[[datetime], datetime | None]


class DispatchPolicy(Protocol):
    """What :func:`plan_dispatch` reads of a job: :class:`JobProperties` has both, and so
    does the beat's lighter view of a stored definition."""

    @property
    def starting_deadline(self) -> timedelta | None: ...

    @property
    def missed_run_policy(self) -> MissedRunPolicy | None: ...


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A beat's decision for one due occurrence: run it or not, and when the job fires next."""

    run: bool
    next_fire: datetime | None


def plan_dispatch(
    properties: DispatchPolicy, occurrence: datetime, now: datetime, next_after: NextAfter | None
) -> Dispatch:
    """Apply the missed-run policy to an occurrence dispatched at ``now``.

    ``next_after`` is None for a one-shot job.
    """
    late = now - occurrence
    deadline = properties.starting_deadline
    policy = properties.missed_run_policy or MissedRunPolicy.RUN_ONCE
    if next_after is None:
        return Dispatch(run=deadline is None or late <= deadline, next_fire=None)
    if deadline is not None and late > deadline:
        # Too old to run: the oldest occurrence still within the deadline comes next.
        oldest_allowed = now - deadline - _EPSILON
        return Dispatch(run=False, next_fire=next_after(max(occurrence, oldest_allowed)))
    if policy is MissedRunPolicy.SKIP and late > (deadline or SKIP_TOLERANCE):
        return Dispatch(run=False, next_fire=next_after(now))
    if policy is MissedRunPolicy.RUN_ALL:
        return Dispatch(run=True, next_fire=next_after(occurrence))
    return Dispatch(run=True, next_fire=next_after(max(occurrence, now)))


_EPSILON = timedelta(microseconds=1)


def cadence(policy: DispatchPolicy, action_type: ActionType, rule: Rule | None) -> str:
    """What the beat's claim script needs to run a job and put it back at its next
    occurrence by itself, without the beat planning it (see ``CLAIM_DUE``):
    "first µs|step µs|last µs or empty|action type", the rule's grid; step 0 for a
    one-shot job (``rule`` None), which has no next occurrence.

    Only jobs for which :func:`plan_dispatch` always runs the occurrence have one: without
    a ``startingDeadline``, a one-shot job, and a plain interval under the default policy
    (RunOnce), which fires next at the first occurrence after the later of the due time
    and now. Every other job gets '': the beat plans each of its runs. The format is
    :class:`~scheduler.domain.cadence.Cadence`'s.
    """
    if policy.starting_deadline is not None:
        return ""
    if rule is None:
        return Cadence.one_shot(action_type).encode()
    if (policy.missed_run_policy or MissedRunPolicy.RUN_ONCE) is not MissedRunPolicy.RUN_ONCE:
        return ""
    grid = rule.grid_us()
    if grid is None:
        return ""
    first, step, last = grid
    return Cadence(first, step, last, action_type).encode()


def job_cadence(properties: JobProperties) -> str:
    """:func:`cadence` of a job as written ('' for a recurrence without a start time to
    anchor it: the beat anchors it when it first plans it)."""
    if properties.recurrence is None:
        return cadence(properties, properties.action.type, None)
    if properties.start_time is None:
        return ""
    rule = rule_shape(properties.recurrence).at(properties.start_time)
    return cadence(properties, properties.action.type, rule)


def first_fire(properties: JobProperties, now: datetime) -> datetime | None:
    """The first instant a new, replaced or re-enabled job fires (None: it never will).

    The one definition of a job's first occurrence: the API's ``nextExecutionTime``, the
    occurrences it lists, the console's preview and the beat's due time all start here.
    It is the occurrence due at ``now`` — the latest one at or before ``now`` that is at
    most :data:`SKIP_TOLERANCE` old (or ``startingDeadline``, when shorter) — else the
    first after ``now``. So a job saved without ``startTime`` (which starts at ``now``), or
    with a start a client took as "now" a moment before sending it, fires at once, while
    the occurrences of a start time further in the past are skipped: Azure runs such a job
    at "the first future run time", and they were never missed, as the job did not exist.

    Nothing fires after :data:`~scheduler.clock.END_OF_TIME`, not even a one-shot job.
    """
    start = properties.start_time or now
    if properties.recurrence is None:
        fire = max(start, now)
        return fire if fire <= END_OF_TIME else None
    rule = compile_recurrence(properties.recurrence, start)
    return _due_or_next(rule.next_after, now - _start_tolerance(properties), now)


def _start_tolerance(policy: DispatchPolicy) -> timedelta:
    """How old an occurrence may be when its job is saved and still fire at once."""
    deadline = policy.starting_deadline
    return SKIP_TOLERANCE if deadline is None else min(deadline, SKIP_TOLERANCE)


def _due_or_next(next_after: NextAfter, since: datetime, now: datetime) -> datetime | None:
    """The rule's latest occurrence from ``since`` to ``now``, else its first after ``now``
    (the loop is short: a rule fires at most once a second)."""
    due = None
    candidate = next_after(since - _EPSILON)
    while candidate is not None and candidate <= now:
        due, candidate = candidate, next_after(candidate)
    return due if due is not None else candidate


def is_last_occurrence(
    recurrence: JobRecurrence | None, start: datetime, occurrence: datetime
) -> bool:
    """Whether no occurrence of the rule follows ``occurrence`` (count or endTime reached)."""
    if recurrence is None:
        return True
    return next_occurrence(recurrence, start, occurrence) is None


def upcoming(
    properties: JobProperties, next_fire: datetime | None, now: datetime
) -> Iterator[datetime]:
    """The instants the job will fire at, starting with its stored next fire time.

    Each one after the first is the rule's next occurrence after the previous, exactly as
    the beat computes it when it dispatches on time, so the preview and
    ``status.nextExecutionTime`` agree. A job with no stored time (a disabled one)
    previews what it would do if it were enabled now.
    """
    current = next_fire if next_fire is not None else first_fire(properties, now)
    while current is not None:
        yield current
        if properties.recurrence is None:
            return
        start = properties.start_time or current
        current = next_occurrence(properties.recurrence, start, current)
