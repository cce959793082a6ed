"""The classic Scheduler paths of the seed document, over the same services as ARM.

MSDN's XML job collection operations are :mod:`scheduler.api.classic_collections`'s,
included in this router: on the seed's lower-case collection paths, its routes come first
and take the requests that speak Service Management (an XML body, ``Accept`` XML,
``x-ms-version``); the JSON ones go on to the routes here. Errors here are ARM's JSON.

The cloud service stands for the resource group. Jobs travel as the flat job JSON of the
classic API (the properties of an ARM job plus ``id``). A ``status`` member in a request
is ignored here, because classic clients round-trip the whole job they read; on the ARM
routes it is a 400.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status
from fastapi.responses import JSONResponse

from scheduler.api.classic_collections import router as collections_router
from scheduler.api.classic_collections import seed_router
from scheduler.api.deps import Collections, Jobs, Reader, Writer
from scheduler.api.envelopes import collection_envelope
from scheduler.api.media import JsonRoute
from scheduler.api.rendering import render_job, render_jobs
from scheduler.api.schemas import JobCollectionDefinition
from scheduler.clock import utcnow
from scheduler.domain.models import JobCollection, JobProperties, without_secrets
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.store.jobs import JobRecord, StoredHistoryEntry

__all__ = ["ClassicJob", "router"]

router = APIRouter(tags=["Azure Scheduler (classic)"], route_class=JsonRoute)
# Before the JSON routes of the same paths: a request that speaks Service Management is its.
router.include_router(seed_router)

_ROOT = "/{subscriptionId}/cloudservices/{cloudServiceName}/resources/scheduler"
_COLLECTION = _ROOT + "/jobcollections/{jobCollectionName}"
_COLLECTION_GET = _ROOT + "/~/jobcollections/{jobCollectionName}"
_JOBS = _COLLECTION_GET + "/jobs"
_JOB = _JOBS + "/{jobId}"

Subscription = Annotated[str, Path(alias="subscriptionId")]
CloudService = Annotated[str, Path(alias="cloudServiceName")]
CollectionName = Annotated[str, Path(alias="jobCollectionName")]
JobId = Annotated[str, Path(alias="jobId")]


class ClassicJob(JobProperties):
    """The flat job of the classic API: the job's properties plus its ``id``."""

    id: str | None = None


def _properties(body: ClassicJob) -> JobProperties:
    return JobProperties.model_validate(
        body.model_dump(exclude={"id", "status"}, exclude_none=True)
    )


def _flat(name: str, record: JobRecord) -> dict[str, Any]:
    return {"id": name, **without_secrets(record.properties.to_wire())}


def _flat_history(name: str, stored: StoredHistoryEntry) -> dict[str, Any]:
    return {"jobId": name, "id": stored.entry_id, **stored.entry.to_wire()}


@router.put(_COLLECTION, response_model=None, responses={200: {"model": JobCollectionDefinition}})
@router.put(
    _COLLECTION_GET, response_model=None, responses={200: {"model": JobCollectionDefinition}}
)
def put_collection(
    sub: Subscription,
    cs: CloudService,
    name: CollectionName,
    body: JobCollection,
    collections: Collections,
    _: Writer,
    response: Response,
) -> dict[str, Any]:
    ref = CollectionRef(sub, cs, name)
    record, created = collections.put(ref, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return collection_envelope(ref, record)


@router.get(
    _COLLECTION_GET, response_model=None, responses={200: {"model": JobCollectionDefinition}}
)
def get_collection(
    sub: Subscription,
    cs: CloudService,
    name: CollectionName,
    collections: Collections,
    _: Reader,
) -> dict[str, Any]:
    ref = CollectionRef(sub, cs, name)
    return collection_envelope(ref, collections.get(ref))


@router.get(_JOBS, response_model=None, responses={200: {"model": list[ClassicJob]}})
def list_jobs(
    sub: Subscription,
    cs: CloudService,
    coll: CollectionName,
    jobs: Jobs,
    _: Reader,
) -> list[dict[str, Any]]:
    ref = CollectionRef(sub, cs, coll)
    page = jobs.list_page(ref, skip=0, top=100_000)
    return render_jobs(page.jobs, lambda r: _flat(r.jid.rsplit("/", 1)[1], r))


@router.post(
    _JOBS,
    response_model=None,
    status_code=status.HTTP_201_CREATED,
    responses={201: {"model": ClassicJob}},
)
def create_job(
    sub: Subscription,
    cs: CloudService,
    coll: CollectionName,
    body: ClassicJob,
    jobs: Jobs,
    principal: Writer,
) -> dict[str, Any]:
    """Create a job with a generated id."""
    ref = JobRef(CollectionRef(sub, cs, coll), uuid.uuid4().hex)
    record, _ = jobs.put(ref, _properties(body), principal, utcnow())
    return _flat(ref.name, record)


@router.put(_JOB, response_model=None, responses={200: {"model": ClassicJob}})
async def put_job(
    sub: Subscription,
    cs: CloudService,
    coll: CollectionName,
    job: JobId,
    body: ClassicJob,
    jobs: Jobs,
    principal: Writer,
) -> JSONResponse:
    """Create or replace a job (async, as the ARM route)."""
    ref = JobRef(CollectionRef(sub, cs, coll), job)
    record, created = await jobs.put_async(ref, _properties(body), principal, utcnow())
    return JSONResponse(
        _flat(job, record),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


@router.patch(_JOB, response_model=None, responses={200: {"model": ClassicJob}})
def patch_job(
    sub: Subscription,
    cs: CloudService,
    coll: CollectionName,
    job: JobId,
    body: dict[str, Any],
    jobs: Jobs,
    principal: Writer,
) -> dict[str, Any]:
    ref = JobRef(CollectionRef(sub, cs, coll), job)
    patch = {k: v for k, v in body.items() if k not in ("id", "status")}
    return _flat(job, jobs.patch(ref, patch, principal, utcnow()))


@router.get(_JOB, response_model=None, responses={200: {"model": ClassicJob}})
def get_job(
    sub: Subscription,
    cs: CloudService,
    coll: CollectionName,
    job: JobId,
    jobs: Jobs,
    _: Reader,
) -> dict[str, Any]:
    return render_job(jobs.get(JobRef(CollectionRef(sub, cs, coll), job)), lambda r: _flat(job, r))


@router.delete(_JOB)
def delete_job(
    sub: Subscription,
    cs: CloudService,
    coll: CollectionName,
    job: JobId,
    jobs: Jobs,
    _: Writer,
) -> Response:
    jobs.delete(JobRef(CollectionRef(sub, cs, coll), job))
    return Response(status_code=status.HTTP_200_OK)


@router.get(_JOB + "/history", response_model=None)
def job_history(
    sub: Subscription,
    cs: CloudService,
    coll: CollectionName,
    job: JobId,
    jobs: Jobs,
    _: Reader,
) -> list[dict[str, Any]]:
    ref = JobRef(CollectionRef(sub, cs, coll), job)
    entries, _more = jobs.history(ref, skip=0, top=1000)
    return [_flat_history(job, entry) for entry in entries]


# MSDN's collection operations on MSDN's paths (XML, 202), and DELETE (202) on the seed's
# (in seed_router above): routes of their own module, served with these.
router.include_router(collections_router)
