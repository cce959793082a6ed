"""The jobs Takt creates for itself: the 60-day retention, as ordinary Command jobs.

They live in the collection ``takt/system/maintenance`` so operators see them in the API,
the CLI and the console, and may change their schedule or disable them; they are created
only when missing, so such changes survive restarts.
"""

from __future__ import annotations

from datetime import datetime

from scheduler.clock import to_ms
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.domain.planning import first_fire
from scheduler.domain.refs import CollectionRef
from scheduler.store.jobs import JobStore
from scheduler.store.principals import ADMIN_PRINCIPAL

__all__ = ["BUILTIN_JOBS", "SYSTEM_COLLECTION", "ensure_builtin_jobs"]

SYSTEM_COLLECTION = CollectionRef("takt", "system", "maintenance")

#: name -> (display name, command line, hour, minute) of a daily job, UTC.
BUILTIN_JOBS = {
    "purge-history": (
        "Retention: history older than 60 days",
        "PurgeHistory --older-than P60D",
        3,
        0,
    ),
    "delete-finished-jobs": (
        "Retention: jobs finished over 60 days ago",
        "DeleteFinishedJobs --older-than P60D",
        3,
        30,
    ),
}


def _definition(display: str, line: str, hour: int, minute: int) -> JobProperties:
    return JobProperties.model_validate(
        {
            "startTime": "2026-01-01T00:00:00Z",
            "displayName": display,
            "action": {"type": "Command", "command": line},
            "recurrence": {
                "frequency": "Day",
                "schedule": {"hours": [hour], "minutes": [minute]},
            },
        }
    )


def ensure_builtin_jobs(store: JobStore, now: datetime) -> list[str]:
    """Create the built-in jobs that are missing; returns the names created."""
    cid = SYSTEM_COLLECTION.cid
    if store.collection_state(cid) is None:
        store.put_collection(cid, JobCollection(location="takt"))
    existing = set(store.job_names(cid))
    created = []
    for name, spec in BUILTIN_JOBS.items():
        if name in existing:
            continue
        properties = _definition(*spec)
        fire = first_fire(properties, now)
        store.put_job(
            f"{cid}/{name}",
            properties,
            owner=ADMIN_PRINCIPAL,
            next_fire_ms=None if fire is None else to_ms(fire),
        )
        created.append(name)
    return created
