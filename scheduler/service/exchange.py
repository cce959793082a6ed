"""Export documents: what ExportJobs writes and ImportJobs checks, then writes.

An export is ``{"version": 1, "collection": "sub/rg/name", "definition": {...},
"jobs": [{"name": ..., "properties": {...}}, ...]}``. Secrets are left out (the secret
rule's mask) unless the export was asked for them.

An import is checked whole before anything is written, with the rules of the API: the
wire models, names, the collection's rules, and every job through
:meth:`JobService.checked_job` (owner an existing administrator, quotas counted with the
jobs already there and the earlier jobs of the document, limits, URIs, commands). The
first problem refuses the whole document, its message naming the field
(``jobs[3].properties.action.request.uri: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from scheduler.domain.models import (
    JobCollection,
    JobProperties,
    JobState,
    describe_validation_error,
    without_secrets,
)
from scheduler.domain.refs import CollectionRef, JobRef, checked_name
from scheduler.errors import Conflict, ValidationFailed
from scheduler.service.job_collections import CollectionService
from scheduler.service.jobs import JobService
from scheduler.store.jobs import CollectionRecord, JobRecord, JobStore, NewJob, SaveContext
from scheduler.store.principals import ADMIN_PRINCIPAL, Principal, PrincipalBook, Role

__all__ = ["FORMAT_VERSION", "ImportPlan", "export_document", "find_collection", "plan_import"]

FORMAT_VERSION = 1
_TOP_FIELDS = {"version", "collection", "definition", "jobs"}
_JOB_FIELDS = {"name", "properties"}
#: Imports act as the bootstrap administrator; a job naming no owner is owned by it.
_IMPORTER = Principal(ADMIN_PRINCIPAL, Role.ADMIN)


def find_collection(store: JobStore, name: str) -> str:
    """The id of the collection ``name`` (``sub/rg/name``, or a name found once)."""
    if name.count("/") == 2:
        return CollectionRef.from_cid(name).cid
    matches = [cid for cid in store.collection_ids("") if cid.rsplit("/", 1)[1] == name]
    if len(matches) != 1:
        found = "no" if not matches else f"{len(matches)}"
        raise ValidationFailed(
            f"--collection: {found} collection(s) named {name!r}; give subscription/group/name",
            field="--collection",
        )
    return matches[0]


def export_document(store: JobStore, cid: str, *, include_secrets: bool) -> dict[str, Any]:
    """The export of collection ``cid``; its secrets only if ``include_secrets``."""
    definition = store.get_collection(cid).collection.to_wire()
    records = store.get_jobs([f"{cid}/{name}" for name in store.job_names(cid)])
    jobs = [
        {"name": record.jid.rsplit("/", 1)[1], "properties": _exportable(record)}
        for record in records
    ]
    document = {"version": FORMAT_VERSION, "collection": cid, "definition": definition}
    document["jobs"] = jobs if include_secrets else without_secrets(jobs)
    return document


def _exportable(record: JobRecord) -> dict[str, Any]:
    wire = record.properties.to_wire()
    wire.pop("status", None)
    if record.state.is_final:
        # Finished jobs come back disabled, to be looked at and re-enabled.
        wire["state"] = JobState.DISABLED.value
    return wire


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """A checked document: what to write."""

    ref: CollectionRef
    collection: JobCollection
    jobs: list[NewJob]

    def apply(self, collections: CollectionService) -> None:
        collections.put(self.ref, self.collection)
        collections.store.put_jobs(self.jobs)


def _refused(field: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {reason}", field=field)


def _under(where: str, exc: Exception) -> ValidationFailed:
    """``exc``, a service's refusal of one part, as a refusal naming the document's field."""
    message = str(exc)
    if message.startswith("properties"):  # "properties.x: ..." names its own field
        field = getattr(exc, "field", None) or message.split(":", 1)[0].split(" ", 1)[0]
        return ValidationFailed(f"{where}.{message}", field=f"{where}.{field}")
    return _refused(where, message)


def plan_import(document: Any, jobs: JobService, now: datetime) -> ImportPlan:
    """Check ``document`` whole; the first problem raises, naming its field."""
    if not isinstance(document, dict):
        raise _refused("body", "an export is a JSON object")
    for key in document.keys() - _TOP_FIELDS:
        raise _refused(str(key), "is not a known field")
    if document.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise _refused("version", f"this Takt reads version {FORMAT_VERSION} exports")
    ref = _collection_ref(document.get("collection"))
    collection = _definition(document.get("definition"))
    items = document.get("jobs")
    if not isinstance(items, list):
        raise _refused("jobs", "must be a list of {name, properties}")
    return ImportPlan(ref, collection, _checked_jobs(ref, collection, items, jobs, now))


def _collection_ref(value: Any) -> CollectionRef:
    if not isinstance(value, str) or value.count("/") != 2:
        raise _refused("collection", "must be 'subscription/resourceGroup/name'")
    try:
        return CollectionRef.from_cid(value)
    except ValidationFailed as exc:
        raise _refused("collection", str(exc)) from exc


def _definition(value: Any) -> JobCollection:
    try:
        return CollectionService.checked(JobCollection.model_validate(value or {}))
    except ValidationError as exc:
        raise ValidationFailed(describe_validation_error(exc, ("definition",))) from exc
    except ValidationFailed as exc:
        raise _under("definition", exc) from exc


def _checked_jobs(
    ref: CollectionRef,
    collection: JobCollection,
    items: list[Any],
    jobs: JobService,
    now: datetime,
) -> list[NewJob]:
    store = jobs.store
    present = set(store.job_names(ref.cid))
    record = CollectionRecord(ref.cid, collection)
    checked: list[NewJob] = []
    counted = set(present)
    for index, item in enumerate(items):
        where = f"jobs[{index}]"
        name, properties = _job_item(where, item)
        if any(job.jid == f"{ref.cid}/{name}" for job in checked):
            raise _refused(f"{where}.name", f"{name!r} appears twice in the document")
        context = SaveContext(
            cid=ref.cid,
            existing=_existing(store, f"{ref.cid}/{name}") if name in present else None,
            collection=record,
            job_count=len(counted),
            owner_role=_role(jobs.principals, properties.owner),
        )
        try:
            job = jobs.checked_job(JobRef(ref, name), properties, _IMPORTER, now, context)
        except (ValidationFailed, Conflict) as exc:
            raise _under(where, exc) from exc
        checked.append(job)
        counted.add(name)
    return checked


def _job_item(where: str, item: Any) -> tuple[str, JobProperties]:
    if not isinstance(item, dict):
        raise _refused(where, "a job is {name, properties}")
    for key in item.keys() - _JOB_FIELDS:
        raise _refused(f"{where}.{key}", "is not a known field")
    name = item.get("name")
    if not isinstance(name, str):
        raise _refused(f"{where}.name", "a job's name is a string")
    try:
        checked_name("jobName", name)
        return name, JobProperties.model_validate(item.get("properties"))
    except ValidationError as exc:
        raise ValidationFailed(describe_validation_error(exc, (where, "properties"))) from exc
    except ValidationFailed as exc:
        raise _refused(f"{where}.name" if exc.field == "jobName" else where, str(exc)) from exc


def _existing(store: JobStore, jid: str) -> JobRecord | None:
    found = store.get_jobs([jid])
    return found[0] if found else None


def _role(principals: PrincipalBook, owner: str | None) -> str | None:
    if owner is None:
        return None
    principal = principals.get(owner)
    return principal.role.value if principal else None
