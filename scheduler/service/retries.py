"""Azure Scheduler's fixed retry policy as pure rules.

An absent ``retryPolicy`` means no retries: the seed document reads it that way ("if
there is no retry policy it is set to none"). ``retryType: Fixed`` without values retries
5 times, 1 minute apart (Azure's defaults). ``retryInterval`` is at most 18 months; at
least 1 minute on collections with an Azure SKU, shorter on the self-hosted default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from scheduler.domain.models import JobErrorAction, RetryPolicy, RetryType
from scheduler.errors import ValidationFailed

__all__ = [
    "DEFAULT_RETRY_COUNT",
    "DEFAULT_RETRY_INTERVAL",
    "MAX_RETRY_INTERVAL",
    "RetryPlan",
    "check_retry_policy",
    "retry_plan",
]

DEFAULT_RETRY_COUNT = 5
DEFAULT_RETRY_INTERVAL = timedelta(minutes=1)
MAX_RETRY_INTERVAL = timedelta(days=18 * 30)
_AZURE_MIN_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """How many retries follow a failed first attempt, and how far apart."""

    count: int
    interval: timedelta

    def retry_after(self, attempt: int) -> timedelta | None:
        """The wait before the attempt that follows failed ``attempt`` (0 = the first);
        None when ``attempt`` was the last."""
        return self.interval if attempt < self.count else None


NO_RETRIES = RetryPlan(0, timedelta(0))


def retry_plan(policy: RetryPolicy | None) -> RetryPlan:
    """The plan a policy means, Azure's defaults filled in."""
    if policy is None or policy.retry_type is RetryType.NONE:
        return NO_RETRIES
    count = DEFAULT_RETRY_COUNT if policy.retry_count is None else policy.retry_count
    interval = policy.retry_interval or DEFAULT_RETRY_INTERVAL
    return RetryPlan(count, interval)


def _check(policy: RetryPolicy | None, where: str, allow_short: bool) -> None:
    if policy is None or policy.retry_interval is None:
        return
    field = f"{where}.retryPolicy.retryInterval"
    interval = policy.retry_interval
    if interval <= timedelta(0):
        raise ValidationFailed(f"{field}: must be a positive duration", field=field)
    if interval > MAX_RETRY_INTERVAL:
        raise ValidationFailed(f"{field}: at most 18 months (P18M)", field=field)
    if interval < _AZURE_MIN_INTERVAL and not allow_short:
        raise ValidationFailed(
            f"{field}: at least 1 minute (PT1M) in a collection with an Azure SKU", field=field
        )


def check_retry_policy(action: JobErrorAction, *, allow_short: bool) -> None:
    """Raise a 400 naming the field when a retry policy is out of range."""
    _check(action.retry_policy, "properties.action", allow_short)
    error_action = getattr(action, "error_action", None)
    if error_action is not None:
        _check(error_action.retry_policy, "properties.action.errorAction", allow_short)
