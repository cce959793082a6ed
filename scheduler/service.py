"""The service layer: Azure Scheduler's rules over the store, shared by every route family.

Routes translate HTTP to these calls and back; nothing here knows about HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from scheduler.clock import to_ms
from scheduler.errors import JobFinished, ValidationFailed
from scheduler.models import (
    JobCollection,
    JobProperties,
    JobState,
)
from scheduler.planning import first_fire, upcoming
from scheduler.principals import Principal
from scheduler.store import CollectionRecord, JobRecord, JobStore, StoredHistoryEntry

__all__ = ["CollectionRef", "JobRef", "JobService"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _checked(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise ValidationFailed(
            f"{kind} {value!r} is not a valid name: 1-100 letters, digits, '-', '_' or '.',"
            " starting with a letter or digit",
            field=kind,
        )
    return value


@dataclass(frozen=True, slots=True)
class CollectionRef:
    """Where a collection lives: subscription, resource group (or cloud service), name."""

    subscription: str
    resource_group: str
    name: str

    def __post_init__(self) -> None:
        _checked("subscriptionId", self.subscription)
        _checked("resourceGroupName", self.resource_group)
        _checked("jobCollectionName", self.name)

    @property
    def cid(self) -> str:
        return f"{self.subscription}/{self.resource_group}/{self.name}"


@dataclass(frozen=True, slots=True)
class JobRef:
    collection: CollectionRef
    name: str

    def __post_init__(self) -> None:
        _checked("jobName", self.name)

    @property
    def jid(self) -> str:
        return f"{self.collection.cid}/{self.name}"


class JobService:
    """Collections and jobs, with Azure Scheduler's rules applied."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    # -- collections -------------------------------------------------------------------

    def put_collection(
        self, ref: CollectionRef, body: JobCollection
    ) -> tuple[CollectionRecord, bool]:
        created = self.store.put_collection(
            ref.cid, body.model_copy(update={"id": None, "type": None, "name": None})
        )
        return self.store.get_collection(ref.cid), created

    def get_collection(self, ref: CollectionRef) -> CollectionRecord:
        return self.store.get_collection(ref.cid)

    # -- jobs --------------------------------------------------------------------------

    def put_job(
        self, ref: JobRef, properties: JobProperties, principal: Principal, now: datetime
    ) -> tuple[JobRecord, bool]:
        """Create or replace a job; returns the stored job and whether it was created."""
        self.store.get_collection(ref.collection.cid)
        if properties.status is not None:
            raise ValidationFailed("properties.status is read-only", field="properties.status")
        if properties.state is not None and properties.state.is_final:
            raise ValidationFailed(
                "properties.state may only be set to Enabled or Disabled, "
                f"not {properties.state.value}",
                field="properties.state",
            )
        existing = self._existing(ref)
        if existing is not None and existing.state.is_final:
            raise JobFinished(
                f"job {ref.name!r} is {existing.state.value}; "
                "a finished job can be deleted, not updated"
            )
        owner = (
            properties.owner or (existing.properties.owner if existing else None) or principal.name
        )
        state = properties.state or JobState.ENABLED
        fire = first_fire(properties, now) if state is JobState.ENABLED else None
        created = self.store.put_job(
            ref.jid,
            properties.model_copy(update={"state": state}),
            owner=owner,
            next_fire_ms=None if fire is None else to_ms(fire),
        )
        return self.store.get_job(ref.jid), created

    def _existing(self, ref: JobRef) -> JobRecord | None:
        try:
            return self.store.get_job(ref.jid)
        except LookupError:
            return None

    def get_job(self, ref: JobRef) -> JobRecord:
        self.store.get_collection(ref.collection.cid)
        return self.store.get_job(ref.jid)

    def delete_job(self, ref: JobRef) -> None:
        self.store.get_collection(ref.collection.cid)
        self.store.delete_job(ref.jid)

    def history(self, ref: JobRef, *, skip: int, top: int) -> list[StoredHistoryEntry]:
        self.get_job(ref)
        return self.store.history(ref.jid, skip=skip, top=top)

    def occurrences(self, ref: JobRef, count: int, now: datetime) -> list[datetime]:
        """The next ``count`` instants the job fires at (none for a finished job)."""
        record = self.get_job(ref)
        if record.state.is_final:
            return []
        status = record.properties.status
        next_fire = status.next_execution_time if status else None
        return list(islice(upcoming(record.properties, next_fire, now), count))
