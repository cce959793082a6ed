"""Job collection quotas: Azure's defaults per SKU, overridden by an explicit ``quota``.

=============  ===========  =====================  =========================================
SKU            maxJobCount  maxRecurrence          notes
=============  ===========  =====================  =========================================
Free           5            every hour             as Azure
Standard       50           every minute           as Azure
P10Premium     50           every minute           as Azure
P20Premium     1,000        every minute           as Azure
(none)         unlimited    every second           Takt's self-hosted default
=============  ===========  =====================  =========================================

``maxJobOccurrence``, when a quota sets it, bounds a job's ``recurrence.count``: a
recurring job in such a collection must say how many times it runs, at most that many.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from scheduler.domain.models import (
    JobCollection,
    JobMaxRecurrence,
    JobProperties,
    RecurrenceFrequency,
    SkuName,
)
from scheduler.errors import QuotaExceeded
from scheduler.recurrence import min_spacing

__all__ = ["EffectiveQuota", "check_job_quota", "effective_quota"]

_UNIT = {
    RecurrenceFrequency.SECOND: timedelta(seconds=1),
    RecurrenceFrequency.MINUTE: timedelta(minutes=1),
    RecurrenceFrequency.HOUR: timedelta(hours=1),
    RecurrenceFrequency.DAY: timedelta(days=1),
    RecurrenceFrequency.WEEK: timedelta(weeks=1),
    # The shortest month and year, so a monthly job always meets a monthly quota.
    RecurrenceFrequency.MONTH: timedelta(days=28),
    RecurrenceFrequency.YEAR: timedelta(days=365),
}

_SKU_DEFAULTS: dict[SkuName | None, tuple[int | None, JobMaxRecurrence]] = {
    SkuName.FREE: (5, JobMaxRecurrence(frequency=RecurrenceFrequency.HOUR, interval=1)),
    SkuName.STANDARD: (50, JobMaxRecurrence(frequency=RecurrenceFrequency.MINUTE, interval=1)),
    SkuName.P10_PREMIUM: (50, JobMaxRecurrence(frequency=RecurrenceFrequency.MINUTE, interval=1)),
    SkuName.P20_PREMIUM: (
        1000,
        JobMaxRecurrence(frequency=RecurrenceFrequency.MINUTE, interval=1),
    ),
    None: (None, JobMaxRecurrence(frequency=RecurrenceFrequency.SECOND, interval=1)),
}


@dataclass(frozen=True, slots=True)
class EffectiveQuota:
    max_job_count: int | None
    max_recurrence: JobMaxRecurrence
    max_job_occurrence: int | None

    @property
    def shortest_spacing(self) -> timedelta:
        frequency = self.max_recurrence.frequency or RecurrenceFrequency.SECOND
        return _UNIT[frequency] * (self.max_recurrence.interval or 1)

    @property
    def allows_short_retries(self) -> bool:
        """Azure SKUs retry no sooner than every minute; the self-hosted default may."""
        return self.shortest_spacing < timedelta(minutes=1)


def effective_quota(collection: JobCollection) -> EffectiveQuota:
    """The quota in force: the SKU's defaults, overridden member by member by ``quota``."""
    properties = collection.properties
    sku = properties.sku.name if properties and properties.sku else None
    count, recurrence = _SKU_DEFAULTS[sku]
    quota = properties.quota if properties else None
    if quota is None:
        return EffectiveQuota(count, recurrence, None)
    if quota.max_recurrence is not None and quota.max_recurrence.frequency is not None:
        recurrence = quota.max_recurrence
    return EffectiveQuota(
        quota.max_job_count if quota.max_job_count is not None else count,
        recurrence,
        quota.max_job_occurrence,
    )


def check_job_quota(quota: EffectiveQuota, properties: JobProperties, other_jobs: int) -> None:
    """Raise :class:`QuotaExceeded` naming the quota a new or changed job would exceed.

    ``other_jobs`` counts the collection's jobs other than this one.
    """
    if quota.max_job_count is not None and other_jobs + 1 > quota.max_job_count:
        raise QuotaExceeded(
            f"the collection's maxJobCount quota ({quota.max_job_count}) is reached"
        )
    recurrence = properties.recurrence
    if recurrence is None:
        return
    spacing = min_spacing(recurrence, properties.start_time)
    if spacing is not None and spacing < quota.shortest_spacing:
        allowed = quota.max_recurrence
        raise QuotaExceeded(
            f"the job recurs every {spacing}, more often than the collection's maxRecurrence "
            f"quota allows (every {allowed.interval or 1} "
            f"{(allowed.frequency or RecurrenceFrequency.SECOND).value})"
        )
    if quota.max_job_occurrence is not None and (
        recurrence.count is None or recurrence.count > quota.max_job_occurrence
    ):
        raise QuotaExceeded(
            f"the collection's maxJobOccurrence quota ({quota.max_job_occurrence}) needs "
            f"recurrence.count of at most {quota.max_job_occurrence}"
        )
