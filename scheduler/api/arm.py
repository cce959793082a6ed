"""The Azure Resource Manager routes of Microsoft.Scheduler, api-version 2016-03-01."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from scheduler.api.deps import ApiVersion, Reader, Service, Writer
from scheduler.api.envelopes import collection_envelope, history_envelope, job_envelope
from scheduler.clock import utcnow
from scheduler.models import JobCollection, JobProperties, Timestamp, WireModel
from scheduler.service import CollectionRef, JobRef

__all__ = ["JobDefinitionBody", "router"]

router = APIRouter(tags=["Azure Scheduler (ARM)"])

_COLLECTION = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.Scheduler/jobCollections/{jobCollectionName}"
)
_JOB = _COLLECTION + "/jobs/{jobName}"

Subscription = Annotated[str, Path(alias="subscriptionId")]
ResourceGroup = Annotated[str, Path(alias="resourceGroupName")]
CollectionName = Annotated[str, Path(alias="jobCollectionName")]
JobName = Annotated[str, Path(alias="jobName")]


class JobDefinitionBody(WireModel):
    """A PUT body: the job's properties; echoed envelope members are ignored."""

    properties: JobProperties
    id: str | None = None
    type: str | None = None
    name: str | None = None


def _collection_ref(sub: str, rg: str, name: str) -> CollectionRef:
    return CollectionRef(sub, rg, name)


@router.put(_COLLECTION, status_code=status.HTTP_200_OK)
def put_collection(
    sub: Subscription,
    rg: ResourceGroup,
    name: CollectionName,
    body: JobCollection,
    service: Service,
    _: Writer,
    __: ApiVersion,
    response: Response,
) -> dict[str, Any]:
    ref = _collection_ref(sub, rg, name)
    record, created = service.put_collection(ref, body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return collection_envelope(ref, record)


@router.get(_COLLECTION)
def get_collection(
    sub: Subscription,
    rg: ResourceGroup,
    name: CollectionName,
    service: Service,
    _: Reader,
    __: ApiVersion,
) -> dict[str, Any]:
    ref = _collection_ref(sub, rg, name)
    return collection_envelope(ref, service.get_collection(ref))


@router.put(_JOB, status_code=status.HTTP_200_OK)
def put_job(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    body: JobDefinitionBody,
    service: Service,
    principal: Writer,
    __: ApiVersion,
    response: Response,
) -> dict[str, Any]:
    ref = JobRef(_collection_ref(sub, rg, coll), job)
    record, created = service.put_job(ref, body.properties, principal, utcnow())
    if created:
        response.status_code = status.HTTP_201_CREATED
    return job_envelope(ref, record)


@router.get(_JOB)
def get_job(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    service: Service,
    _: Reader,
    __: ApiVersion,
) -> dict[str, Any]:
    ref = JobRef(_collection_ref(sub, rg, coll), job)
    return job_envelope(ref, service.get_job(ref))


@router.delete(_JOB)
def delete_job(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    service: Service,
    _: Writer,
    __: ApiVersion,
) -> Response:
    service.delete_job(JobRef(_collection_ref(sub, rg, coll), job))
    return Response(status_code=status.HTTP_200_OK)


@router.get(_JOB + "/history")
def job_history(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    service: Service,
    _: Reader,
    __: ApiVersion,
    top: Annotated[int, Query(alias="$top", ge=1, le=1000)] = 100,
    skip: Annotated[int, Query(alias="$skip", ge=0)] = 0,
) -> dict[str, Any]:
    ref = JobRef(_collection_ref(sub, rg, coll), job)
    entries = service.history(ref, skip=skip, top=top)
    return {"value": [history_envelope(ref, entry) for entry in entries]}


class Occurrences(WireModel):
    """The next instants a job fires at (Takt extension)."""

    value: list[Timestamp]


@router.get(_JOB + "/occurrences", response_model=Occurrences, tags=["Takt extensions"])
def job_occurrences(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    service: Service,
    _: Reader,
    __: ApiVersion,
    count: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> Occurrences:
    """When will this run: the next ``count`` fire times, as the beat will compute them."""
    ref = JobRef(_collection_ref(sub, rg, coll), job)
    return Occurrences(value=service.occurrences(ref, count, utcnow()))
