"""Job collections: create, change, list, enable/disable every job, delete with their jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from scheduler.domain.merge_patch import merge_patch
from scheduler.domain.models import (
    CollectionState,
    JobCollection,
    JobState,
    describe_validation_error,
)
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.errors import ValidationFailed
from scheduler.service.jobs import JobService
from scheduler.store.jobs import CollectionRecord, JobStore

__all__ = ["CollectionService"]


def _refuse_deleted(collection: JobCollection) -> None:
    if collection.properties and collection.properties.state is CollectionState.DELETED:
        raise ValidationFailed(
            "properties.state: Deleted is set by the server; delete the collection instead",
            field="properties.state",
        )


class CollectionService:
    """Collections, and the operations that act on every job of one."""

    def __init__(self, store: JobStore, jobs: JobService) -> None:
        self.store = store
        self.jobs = jobs

    @staticmethod
    def checked(body: JobCollection) -> JobCollection:
        """The collection :meth:`put` would store, once its rules have passed."""
        _refuse_deleted(body)
        return body.model_copy(update={"id": None, "type": None, "name": None})

    def put(self, ref: CollectionRef, body: JobCollection) -> tuple[CollectionRecord, bool]:
        clean = self.checked(body)
        created = self.store.put_collection(ref.cid, clean)
        if not created:
            self._apply_queue(ref, clean.properties.queue if clean.properties else None)
        return self.store.get_collection(ref.cid), created

    def _apply_queue(self, ref: CollectionRef, pool: str | None) -> None:
        """The collection's worker pool reaches every job that names none of its own."""
        jobs = self.store.get_jobs([f"{ref.cid}/{name}" for name in self.store.job_names(ref.cid)])
        for job in jobs:
            self.store.set_queue([job.jid], job.properties.queue or pool)

    def patch(self, ref: CollectionRef, patch: dict[str, Any]) -> CollectionRecord:
        """Merge ``patch`` (RFC 7396) into the collection."""
        current = self.store.get_collection(ref.cid).collection.to_wire()
        merged = merge_patch(
            current, {k: v for k, v in patch.items() if k not in ("id", "type", "name")}
        )
        try:
            body = JobCollection.model_validate(merged)
        except ValidationError as exc:
            raise ValidationFailed(describe_validation_error(exc)) from exc
        record, _ = self.put(ref, body)
        return record

    def get(self, ref: CollectionRef) -> CollectionRecord:
        return self.store.get_collection(ref.cid)

    def list_all(
        self, subscription: str | None, resource_group: str | None = None
    ) -> list[CollectionRecord]:
        """The collections of a subscription, or of one of its resource groups; every
        collection when ``subscription`` is None."""
        if subscription is None:
            prefix = ""
        else:
            prefix = f"{subscription}/" + (f"{resource_group}/" if resource_group else "")
        records = []
        for cid in self.store.collection_ids(prefix):
            try:
                records.append(self.store.get_collection(cid))
            except LookupError:
                continue  # deleted meanwhile
        return records

    def delete(self, ref: CollectionRef) -> None:
        self.store.get_collection(ref.cid)
        self.store.delete_collection(ref.cid)

    def set_state(self, ref: CollectionRef, state: CollectionState, now: datetime) -> None:
        """Enable or disable the collection and every job in it that is not finished."""
        self.store.get_collection(ref.cid)
        job_state = JobState.ENABLED if state is CollectionState.ENABLED else JobState.DISABLED
        self.store.set_collection_state(ref.cid, state.value)
        for name in self.store.job_names(ref.cid):
            try:
                self.jobs.set_state(JobRef(ref, name), job_state, now)
            except LookupError:
                continue  # deleted meanwhile
