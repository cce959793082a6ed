"""The Azure Resource Manager routes of Microsoft.Scheduler, api-version 2016-03-01."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from scheduler.api.deps import ApiVersion, Collections, Jobs, Reader, Writer
from scheduler.api.envelopes import collection_envelope, history_envelope, job_envelope
from scheduler.api.hand_solved import HandSolvedRoute
from scheduler.api.media import JsonRoute
from scheduler.api.rendering import render_job, render_jobs
from scheduler.api.schemas import (
    JobCollectionDefinition,
    JobCollectionList,
    JobDefinition,
    JobDefinitionBody,
    JobHistoryList,
    JobList,
    Occurrences,
    PatchBody,
)
from scheduler.clock import utcnow
from scheduler.domain.models import CollectionState, JobCollection, JobExecutionStatus, JobState
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.service.jobs import parse_filter

__all__ = ["router"]

router = APIRouter(tags=["Azure Scheduler (ARM)"], route_class=JsonRoute)

_PROVIDER = "/providers/Microsoft.Scheduler/jobCollections"
_BY_SUBSCRIPTION = "/subscriptions/{subscriptionId}" + _PROVIDER
_BY_GROUP = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}" + _PROVIDER
_COLLECTION = _BY_GROUP + "/{jobCollectionName}"
_JOBS = _COLLECTION + "/jobs"
_JOB = _JOBS + "/{jobName}"

Subscription = Annotated[str, Path(alias="subscriptionId")]
ResourceGroup = Annotated[str, Path(alias="resourceGroupName")]
CollectionName = Annotated[str, Path(alias="jobCollectionName")]
JobName = Annotated[str, Path(alias="jobName")]
Top = Annotated[int, Query(alias="$top", ge=1, le=1000)]
Skip = Annotated[int, Query(alias="$skip", ge=0, le=1_000_000_000)]
Filter = Annotated[str | None, Query(alias="$filter")]


def _returns(model: type[Any]) -> dict[str, Any]:
    """Document the answer's shape in /openapi.json without re-validating it per request."""
    return {"response_model": None, "responses": {200: {"model": model}}}


def _next_link(request: Request, skip: int, top: int, more: bool) -> str | None:
    """The next page's URL: on ``TAKT_PUBLIC_URL``, else relative (a path and query),
    never on the request's Host header, which is the client's to choose."""
    if not more:
        return None
    query = request.url.include_query_params(**{"$skip": skip + top, "$top": top}).query
    base = request.app.state.settings.public_url or ""
    return f"{base}{request.url.path}?{query}"


def _page(values: list[dict[str, Any]], next_link: str | None) -> dict[str, Any]:
    return {"value": values, **({"nextLink": next_link} if next_link else {})}


# -- creating a job: the hot path ---------------------------------------------------------


async def put_job(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    body: JobDefinitionBody,
    jobs: Jobs,
    principal: Writer,
    __: ApiVersion,
) -> JSONResponse:
    """Create or replace a job. Async over the asyncio store, as job creation is the hot
    path: a sync route pays a thread-pool hop and blocks a thread per round trip."""
    ref = JobRef(CollectionRef(sub, rg, coll), job)
    record, created = await jobs.put_async(ref, body.properties, principal, utcnow())
    return JSONResponse(
        job_envelope(ref, record),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


# Documented from the signature above like the others; its arguments are solved by hand.
# The first route of the API: FastAPI tries routes in order, at several µs each.
router.add_api_route(
    _JOB, put_job, methods=["PUT"], route_class_override=HandSolvedRoute, **_returns(JobDefinition)
)


# -- job collections ---------------------------------------------------------------------


@router.get(_BY_SUBSCRIPTION, **_returns(JobCollectionList))
def list_collections_by_subscription(
    sub: Subscription, collections: Collections, _: Reader, __: ApiVersion
) -> dict[str, Any]:
    records = collections.list_all(sub)
    return {"value": [collection_envelope(CollectionRef.from_cid(r.cid), r) for r in records]}


@router.get(_BY_GROUP, **_returns(JobCollectionList))
def list_collections_by_resource_group(
    sub: Subscription, rg: ResourceGroup, collections: Collections, _: Reader, __: ApiVersion
) -> dict[str, Any]:
    CollectionRef(sub, rg, "x")  # validates the names
    records = collections.list_all(sub, rg)
    return {"value": [collection_envelope(CollectionRef.from_cid(r.cid), r) for r in records]}


@router.put(_COLLECTION, **_returns(JobCollectionDefinition))
def put_collection(
    sub: Subscription,
    rg: ResourceGroup,
    name: CollectionName,
    body: JobCollection,
    collections: Collections,
    _: Writer,
    __: ApiVersion,
    response: Response,
) -> dict[str, Any]:
    ref = CollectionRef(sub, rg, name)
    record, created = collections.put(ref, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return collection_envelope(ref, record)


@router.patch(_COLLECTION, **_returns(JobCollectionDefinition))
def patch_collection(
    sub: Subscription,
    rg: ResourceGroup,
    name: CollectionName,
    body: PatchBody,
    collections: Collections,
    _: Writer,
    __: ApiVersion,
) -> dict[str, Any]:
    ref = CollectionRef(sub, rg, name)
    patch = body.model_dump(by_alias=True, exclude_unset=True)
    return collection_envelope(ref, collections.patch(ref, patch))


@router.get(_COLLECTION, **_returns(JobCollectionDefinition))
def get_collection(
    sub: Subscription,
    rg: ResourceGroup,
    name: CollectionName,
    collections: Collections,
    _: Reader,
    __: ApiVersion,
) -> dict[str, Any]:
    ref = CollectionRef(sub, rg, name)
    return collection_envelope(ref, collections.get(ref))


@router.delete(_COLLECTION)
def delete_collection(
    sub: Subscription,
    rg: ResourceGroup,
    name: CollectionName,
    collections: Collections,
    _: Writer,
    __: ApiVersion,
) -> Response:
    """Delete the collection with all its jobs (done when it answers: a plain 200)."""
    collections.delete(CollectionRef(sub, rg, name))
    return Response(status_code=status.HTTP_200_OK)


@router.post(_COLLECTION + "/enable")
def enable_collection(
    sub: Subscription,
    rg: ResourceGroup,
    name: CollectionName,
    collections: Collections,
    _: Writer,
    __: ApiVersion,
) -> Response:
    """Enable the collection and every job in it that is not finished."""
    collections.set_state(CollectionRef(sub, rg, name), CollectionState.ENABLED, utcnow())
    return Response(status_code=status.HTTP_200_OK)


@router.post(_COLLECTION + "/disable")
def disable_collection(
    sub: Subscription,
    rg: ResourceGroup,
    name: CollectionName,
    collections: Collections,
    _: Writer,
    __: ApiVersion,
) -> Response:
    """Disable the collection and every job in it that is not finished."""
    collections.set_state(CollectionRef(sub, rg, name), CollectionState.DISABLED, utcnow())
    return Response(status_code=status.HTTP_200_OK)


# -- jobs ----------------------------------------------------------------------------------


@router.get(_JOBS, **_returns(JobList))
def list_jobs(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    request: Request,
    jobs: Jobs,
    _: Reader,
    __: ApiVersion,
    top: Top = 100,
    skip: Skip = 0,
    filter_: Filter = None,
) -> dict[str, Any]:
    """Jobs of the collection; ``$filter=state eq 'Enabled'``; ``nextLink`` pages."""
    ref = CollectionRef(sub, rg, coll)
    state = parse_filter(filter_, "state", JobState)
    page = jobs.list_page(ref, skip=skip, top=top, state=state)
    values = render_jobs(page.jobs, lambda r: job_envelope(JobRef(ref, r.jid.rsplit("/", 1)[1]), r))
    return _page(values, _next_link(request, skip, top, page.more))


@router.patch(_JOB, **_returns(JobDefinition))
def patch_job(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    body: PatchBody,
    jobs: Jobs,
    principal: Writer,
    __: ApiVersion,
) -> dict[str, Any]:
    """Merge the given properties (fields left out stay); changes apply from now on."""
    ref = JobRef(CollectionRef(sub, rg, coll), job)
    return job_envelope(ref, jobs.patch(ref, body.properties, principal, utcnow()))


@router.get(_JOB, **_returns(JobDefinition))
def get_job(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    jobs: Jobs,
    _: Reader,
    __: ApiVersion,
) -> dict[str, Any]:
    ref = JobRef(CollectionRef(sub, rg, coll), job)
    return render_job(jobs.get(ref), lambda record: job_envelope(ref, record))


@router.delete(_JOB)
def delete_job(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    jobs: Jobs,
    _: Writer,
    __: ApiVersion,
) -> Response:
    jobs.delete(JobRef(CollectionRef(sub, rg, coll), job))
    return Response(status_code=status.HTTP_200_OK)


@router.post(_JOB + "/run")
def run_job(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    jobs: Jobs,
    _: Writer,
    __: ApiVersion,
) -> Response:
    """Run an enabled job now, outside its schedule; the run appears in its history."""
    jobs.run(JobRef(CollectionRef(sub, rg, coll), job), utcnow())
    return Response(status_code=status.HTTP_200_OK)


@router.get(_JOB + "/history", **_returns(JobHistoryList))
def job_history(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    request: Request,
    jobs: Jobs,
    _: Reader,
    __: ApiVersion,
    top: Top = 100,
    skip: Skip = 0,
    filter_: Filter = None,
) -> dict[str, Any]:
    """Executions, newest first; ``$filter=status eq 'Failed'``; ``nextLink`` pages."""
    ref = JobRef(CollectionRef(sub, rg, coll), job)
    wanted = parse_filter(filter_, "status", JobExecutionStatus)
    entries, more = jobs.history(ref, skip=skip, top=top, status=wanted)
    values = [history_envelope(ref, entry) for entry in entries]
    return _page(values, _next_link(request, skip, top, more))


@router.get(_JOB + "/occurrences", response_model=Occurrences, tags=["Takt extensions"])
def job_occurrences(
    sub: Subscription,
    rg: ResourceGroup,
    coll: CollectionName,
    job: JobName,
    jobs: Jobs,
    _: Reader,
    __: ApiVersion,
    count: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> Occurrences:
    """When will this run: the next ``count`` fire times, as the beat will compute them."""
    ref = JobRef(CollectionRef(sub, rg, coll), job)
    return Occurrences(value=jobs.occurrences(ref, count, utcnow()))
