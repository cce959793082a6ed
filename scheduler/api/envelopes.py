"""ARM envelopes (``id``, ``type``, ``name``, ``properties``) around Takt's records."""

from __future__ import annotations

from typing import Any

from scheduler.domain.models import without_secrets
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.store.jobs import CollectionRecord, JobRecord, StoredHistoryEntry

__all__ = ["collection_envelope", "collection_id", "history_envelope", "job_envelope", "job_id"]


def collection_id(ref: CollectionRef) -> str:
    return (
        f"/subscriptions/{ref.subscription}/resourceGroups/{ref.resource_group}"
        f"/providers/Microsoft.Scheduler/jobCollections/{ref.name}"
    )


def job_id(ref: JobRef) -> str:
    return f"{collection_id(ref.collection)}/jobs/{ref.name}"


def collection_envelope(ref: CollectionRef, record: CollectionRecord) -> dict[str, Any]:
    body = record.collection.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {
        "id": collection_id(ref),
        "type": "Microsoft.Scheduler/jobCollections",
        "name": ref.name,
        **{key: body[key] for key in ("location", "tags") if key in body},
        "properties": body.get("properties", {}),
    }


def job_envelope(ref: JobRef, record: JobRecord) -> dict[str, Any]:
    return {
        "id": job_id(ref),
        "type": "Microsoft.Scheduler/jobCollections/jobs",
        "name": f"{ref.collection.name}/{ref.name}",
        "properties": without_secrets(record.properties.to_wire()),
    }


def history_envelope(ref: JobRef, stored: StoredHistoryEntry) -> dict[str, Any]:
    return {
        "id": f"{job_id(ref)}/history/{stored.entry_id}",
        "type": "Microsoft.Scheduler/jobCollections/jobs/history",
        "name": f"{ref.collection.name}/{ref.name}/{stored.entry_id}",
        "properties": stored.entry.to_wire(),
    }
