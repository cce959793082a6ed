"""The classic job collection API as MSDN documents it: XML bodies, 202 for the writes.

MSDN's operations (Create, Update, Get and Delete Job Collection):

- ``PUT /{subscription}/cloudServices/{cloudService}/resources/scheduler/jobCollections/{name}``
  with a ``Resource`` body (its optional ``IntrinsicSettings``: ``Plan``, ``Quota``)
  creates the collection, or updates it (``If-Match``: its ``ETag``, or ``*``): 202;
- ``DELETE`` on the same path deletes it with its jobs: 202;
- ``GET /{subscription}/cloudservices/{cloudService}/resources/scheduler/~/jobCollections/{name}``
  answers the ``Resource``: 200.

The seed document's spelling (``.../scheduler/~/jobcollections/{name}``) takes the same PUT
and DELETE (its GET answers JSON: :mod:`scheduler.api.classic`). The cloud service stands
for the resource group, as on the classic job routes. Every write goes through
:class:`~scheduler.service.job_collections.CollectionService`, as the ARM routes' do: the
XML becomes the same :class:`~scheduler.domain.models.JobCollection`, validated the same way.
Errors are ARM error bodies, as everywhere in the API.
"""

from __future__ import annotations

import email.message
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response, status
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from scheduler.api.classic_xml import etag, parse_resource, render_resource
from scheduler.api.deps import Collections, Reader, Writer
from scheduler.api.errors import arm_error
from scheduler.domain.models import JobCollection, describe_validation_error
from scheduler.domain.refs import CollectionRef
from scheduler.errors import CollectionNotFound, ValidationFailed
from scheduler.store.jobs import CollectionRecord

__all__ = ["router"]

router = APIRouter(tags=["Azure Scheduler (classic)"])

_MSDN = "/{subscriptionId}/cloudServices/{cloudServiceName}/resources/scheduler/jobCollections"
_MSDN_GET = (
    "/{subscriptionId}/cloudservices/{cloudServiceName}/resources/scheduler/~/jobCollections"
)
_SEED = "/{subscriptionId}/cloudservices/{cloudServiceName}/resources/scheduler/~/jobcollections"
_NAME = "/{jobCollectionName}"

#: The oldest ``x-ms-version`` MSDN allows for these operations.
_OLDEST_VERSION = "2013-06-01"
_XML = "application/xml"

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
    message = email.message.Message()
    message["content-type"] = content_type or ""
    kind, subtype = message.get_content_maintype(), message.get_content_subtype()
    if not content_type or not (
        (kind in ("application", "text") and subtype == "xml") or subtype.endswith("+xml")
    ):
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
    properties = parse_resource(await request.body())
    record = await run_in_threadpool(_current, collections, ref)
    if _precondition_failed(if_match, record):
        return arm_error(
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


@router.put(_SEED + _NAME, status_code=202, response_class=Response)
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
    """The same on the seed document's ``~/jobcollections`` path."""
    return await _put(CollectionRef(sub, cs, name), request, collections, if_match, version)


@router.delete(_MSDN + _NAME, status_code=202, response_class=Response)
@router.delete(_SEED + _NAME, status_code=202, response_class=Response)
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
