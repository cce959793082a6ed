"""The classic job collection API as MSDN documents it: XML bodies, 202 for the writes.

MSDN's operations (Create, Update, Get and Delete Job Collection):

- ``PUT /{subscription}/cloudServices/{cloudService}/resources/scheduler/jobCollections/{name}``
  with a ``Resource`` body (its optional ``IntrinsicSettings``: ``Plan``, ``Quota``)
  creates the collection, or updates it (``If-Match``: its ``ETag``, or ``*``): 202;
- ``DELETE`` on the same path deletes it with its jobs: 202;
- ``GET /{subscription}/cloudservices/{cloudService}/resources/scheduler/~/jobCollections/{name}``
  answers the ``Resource``: 200.

Errors on these are Service Management's (MSDN, "Service Management Status and Error
Codes"): the status, and ``<Error><Code/><Message/></Error>`` in XML
(:func:`~scheduler.api.errors.as_service_management_error`).

The seed document's lower-case spellings (PUT and DELETE on ``.../scheduler/jobcollections/
{name}``, GET on ``.../scheduler/~/jobcollections/{name}``; PUT and DELETE on the ``~`` one
too) serve both MSDN's XML and the seed's JSON (:mod:`scheduler.api.classic`), told apart by
what the request speaks (:func:`speaks_service_management`): a PUT with an XML body, a GET
that asks for XML, are MSDN's operations, with Service Management's errors; a JSON PUT, a
plain GET, go on to the JSON routes. DELETE is MSDN's 202 on every spelling; its errors are
XML for a request that speaks Service Management, JSON otherwise.

The cloud service stands for the resource group, as on the classic job routes. Every write
goes through :class:`~scheduler.service.job_collections.CollectionService`, as the ARM
routes' do: the XML becomes the same :class:`~scheduler.domain.models.JobCollection`,
validated the same way.
"""

from __future__ import annotations

import email.message
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response, status
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

from scheduler.api.classic_xml import etag, parse_resource, render_resource
from scheduler.api.deps import Collections, Reader, Writer
from scheduler.api.errors import as_service_management_error, service_management_error
from scheduler.domain.models import JobCollection, describe_validation_error
from scheduler.domain.refs import CollectionRef
from scheduler.errors import CollectionNotFound, ValidationFailed
from scheduler.store.jobs import CollectionRecord

__all__ = ["router", "seed_router", "speaks_service_management"]

_XML = "application/xml"


def _media_type(value: str) -> tuple[str, str]:
    message = email.message.Message()
    message["content-type"] = value
    return message.get_content_maintype(), message.get_content_subtype()


def _is_xml(media_type: str) -> bool:
    kind, subtype = _media_type(media_type)
    return (kind in ("application", "text") and subtype == "xml") or subtype.endswith("+xml")


def _is_json(media_type: str) -> bool:
    kind, subtype = _media_type(media_type)
    return (kind in ("application", "text") and subtype == "json") or subtype.endswith("+json")


def speaks_service_management(headers: Headers) -> bool:
    """Whether a request on the seed's paths is MSDN's: its body is XML; else it asks for
    XML (``Accept``); else it carries ``x-ms-version``, which MSDN requires on every call.
    A JSON body, or an ``Accept`` of JSON, is the seed's JSON API."""
    content_type = headers.get("content-type")
    if content_type:
        if _is_xml(content_type):
            return True
        if _is_json(content_type):
            return False
    accepted = [part.split(";")[0].strip() for part in headers.get("accept", "").split(",")]
    if any(_is_xml(kind) for kind in accepted if kind):
        return True
    if any(_is_json(kind) for kind in accepted if kind):
        return False
    return "x-ms-version" in headers


class ServiceManagementRoute(APIRoute):
    """A route of MSDN's paths: every error in Service Management's XML."""

    def answers_in_xml(self, headers: Headers) -> bool:
        return True

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def service_management_route(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                if not self.answers_in_xml(request.headers):
                    raise  # to the app's handlers, once: they count store errors
                answer = await _arm_answer(request, exc)
                if answer is None:
                    raise
                return as_service_management_error(answer)

        return service_management_route


class SeedRoute(ServiceManagementRoute):
    """A route of the seed's lower-case paths, which serve the seed's JSON too: a PUT or
    GET that does not speak Service Management is not this route's (the JSON route
    registered after it takes it), and other errors are XML only for one that does."""

    def answers_in_xml(self, headers: Headers) -> bool:
        return speaks_service_management(headers)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        negotiated = scope.get("method") in ("PUT", "GET")
        if match is Match.FULL and negotiated and not self.answers_in_xml(Headers(scope=scope)):
            return Match.NONE, {}
        return match, child


async def _arm_answer(request: Request, exc: Exception) -> Response | None:
    """What the app's own handler answers for ``exc`` (an ARM error), or None without one."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        if kind in handlers:
            answer: Response = await handlers[kind](request, exc)
            return answer
    return None


router = APIRouter(tags=["Azure Scheduler (classic)"], route_class=ServiceManagementRoute)
#: The seed's spellings, served before the seed's JSON routes they share paths with.
seed_router = APIRouter(tags=["Azure Scheduler (classic)"], route_class=SeedRoute)

_MSDN = "/{subscriptionId}/cloudServices/{cloudServiceName}/resources/scheduler/jobCollections"
_MSDN_GET = (
    "/{subscriptionId}/cloudservices/{cloudServiceName}/resources/scheduler/~/jobCollections"
)
_SEED_ROOT = "/{subscriptionId}/cloudservices/{cloudServiceName}/resources/scheduler"
_SEED = _SEED_ROOT + "/~/jobcollections"
_SEED_WRITE = _SEED_ROOT + "/jobcollections"
_NAME = "/{jobCollectionName}"
#: A seed path's XML operation shares its path and method with a JSON one (the documented).
_NEGOTIATED: dict[str, Any] = {
    "status_code": 202,
    "response_class": Response,
    "include_in_schema": False,
}

#: The oldest ``x-ms-version`` MSDN allows for these operations.
_OLDEST_VERSION = "2013-06-01"

Subscription = Annotated[str, Path(alias="subscriptionId")]
CloudService = Annotated[str, Path(alias="cloudServiceName")]
CollectionName = Annotated[str, Path(alias="jobCollectionName")]
IfMatch = Annotated[str | None, Header(alias="If-Match")]
MsVersion = Annotated[str | None, Header(alias="x-ms-version")]


def _accepted() -> Response:
    """MSDN's 202, with the request id its answers carry."""
    return Response(status_code=status.HTTP_202_ACCEPTED, headers=_request_id())


def _request_id() -> dict[str, str]:
    return {"x-ms-request-id": uuid.uuid4().hex}


def _check_version(version: str | None) -> None:
    """``x-ms-version`` is optional here; a date older than MSDN's minimum is refused."""
    if version is not None and version.strip() < _OLDEST_VERSION:
        raise ValidationFailed(
            f"x-ms-version {version!r} is too old: {_OLDEST_VERSION} or later",
            field="x-ms-version",
        )


def _require_xml(content_type: str | None) -> None:
    if not content_type or not _is_xml(content_type):
        raise HTTPException(
            415, f"a job collection is XML (application/xml or text/xml), not {content_type!r}"
        )


def _current(collections: Collections, ref: CollectionRef) -> CollectionRecord | None:
    try:
        return collections.get(ref)
    except CollectionNotFound:
        return None


def _precondition_failed(if_match: str | None, record: CollectionRecord | None) -> bool:
    """``If-Match`` (MSDN's update) names the ETag the client read, or ``*``: any."""
    if if_match is None:
        return False
    if record is None:
        return True
    tags = {tag.strip().strip('"') for tag in if_match.split(",")}
    return "*" not in tags and etag(record.collection) not in tags


def _updated(record: CollectionRecord | None, properties: dict[str, object]) -> JobCollection:
    """What a Resource body makes of the collection: its IntrinsicSettings (Plan, Quota)
    replace the collection's SKU and quota; the rest (location, tags, pool) is kept."""
    wire = record.collection.to_wire() if record is not None else {}
    if properties:
        kept = {k: v for k, v in wire.get("properties", {}).items() if k not in ("sku", "quota")}
        wire["properties"] = {**kept, **properties}
    try:
        return JobCollection.model_validate(wire)
    except ValidationError as exc:
        raise ValidationFailed(describe_validation_error(exc, ("properties",))) from exc


async def _put(
    ref: CollectionRef,
    request: Request,
    collections: Collections,
    if_match: str | None,
    version: str | None,
) -> Response:
    _check_version(version)
    _require_xml(request.headers.get("content-type"))
    try:
        properties = parse_resource(await request.body())
    except ValidationFailed as exc:  # MSDN's code for a body that is not a Resource
        return service_management_error(400, "InvalidXmlRequest", str(exc))
    record = await run_in_threadpool(_current, collections, ref)
    if _precondition_failed(if_match, record):
        return service_management_error(
            412,
            "PreconditionFailed",
            f"If-Match {if_match!r} does not match the ETag of job collection {ref.name!r}",
        )
    body = _updated(record, properties)
    await run_in_threadpool(collections.put, ref, body)
    return _accepted()


@router.put(_MSDN + _NAME, status_code=202, response_class=Response)
async def create_or_update_collection(
    sub: Subscription,
    cs: CloudService,
    name: CollectionName,
    request: Request,
    collections: Collections,
    _: Writer,
    if_match: IfMatch = None,
    version: MsVersion = None,
) -> Response:
    """Create Job Collection, or Update Job Collection with ``If-Match`` (MSDN): 202."""
    return await _put(CollectionRef(sub, cs, name), request, collections, if_match, version)


@seed_router.put(_SEED_WRITE + _NAME, **_NEGOTIATED)
@seed_router.put(_SEED + _NAME, **_NEGOTIATED)
async def create_or_update_collection_seed_path(
    sub: Subscription,
    cs: CloudService,
    name: CollectionName,
    request: Request,
    collections: Collections,
    _: Writer,
    if_match: IfMatch = None,
    version: MsVersion = None,
) -> Response:
    """The same on the seed document's paths, for a body in XML."""
    return await _put(CollectionRef(sub, cs, name), request, collections, if_match, version)


@router.delete(_MSDN + _NAME, status_code=202, response_class=Response)
def delete_collection(
    sub: Subscription,
    cs: CloudService,
    name: CollectionName,
    collections: Collections,
    _: Writer,
    version: MsVersion = None,
) -> Response:
    """Delete Job Collection (MSDN): the collection and its jobs, 202."""
    _check_version(version)
    collections.delete(CollectionRef(sub, cs, name))
    return _accepted()


seed_router.add_api_route(
    _SEED_WRITE + _NAME,
    delete_collection,
    methods=["DELETE"],
    status_code=202,
    response_class=Response,
)
seed_router.add_api_route(
    _SEED + _NAME, delete_collection, methods=["DELETE"], status_code=202, response_class=Response
)


@router.get(_MSDN_GET + _NAME, response_class=Response)
@router.get(_MSDN + _NAME, response_class=Response)
def get_collection(
    sub: Subscription,
    cs: CloudService,
    name: CollectionName,
    collections: Collections,
    _: Reader,
    version: MsVersion = None,
) -> Response:
    """Get Job Collection (MSDN): the ``Resource``, 200."""
    _check_version(version)
    record = collections.get(CollectionRef(sub, cs, name))
    body = render_resource(name, record.collection)
    return Response(
        body, media_type=_XML, headers={"ETag": etag(record.collection), **_request_id()}
    )


seed_router.add_api_route(
    _SEED + _NAME, get_collection, methods=["GET"], response_class=Response, include_in_schema=False
)
