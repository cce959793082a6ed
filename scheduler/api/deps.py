"""Request dependencies: the services, the calling principal, the api-version."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scheduler.errors import Forbidden, ValidationFailed
from scheduler.service.job_collections import CollectionService
from scheduler.service.jobs import JobService
from scheduler.store.principals import KeyCache, Principal, PrincipalBook, authenticate

__all__ = [
    "API_VERSION",
    "ApiVersion",
    "Collections",
    "Jobs",
    "Principals",
    "Reader",
    "Writer",
    "api_version",
    "bearer",
    "principal",
    "writer",
]

API_VERSION = "2016-03-01"

bearer = HTTPBearer(auto_error=False, description="A Takt API key")


async def _jobs(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service


async def _collections(request: Request) -> CollectionService:
    service: CollectionService = request.app.state.collections
    return service


async def _principals(request: Request) -> PrincipalBook:
    book: PrincipalBook = request.app.state.principals
    return book


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller. Async on purpose: a known key is answered from a 2 s cache without
    I/O, so no request pays a thread hop for it (a miss is one short Redis round trip)."""
    key = credentials.credentials if credentials else None
    keys: KeyCache = request.app.state.keys
    return keys.principal(key, lambda: authenticate(request.app.state.jobs.store, key))


async def writer(caller: Annotated[Principal, Depends(principal)]) -> Principal:
    if not caller.can_write:
        raise Forbidden(f"principal {caller.name!r} is a reader and cannot change anything")
    return caller


async def api_version(
    version: Annotated[str | None, Query(alias="api-version")] = None,
) -> str:
    if version is None:
        raise ValidationFailed(
            "the api-version query parameter is required (2016-03-01)", field="api-version"
        )
    if version != API_VERSION:
        raise ValidationFailed(
            f"api-version {version!r} is not supported; use {API_VERSION}", field="api-version"
        )
    return version


Jobs = Annotated[JobService, Depends(_jobs)]
Collections = Annotated[CollectionService, Depends(_collections)]
Principals = Annotated[PrincipalBook, Depends(_principals)]
Reader = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(writer)]
ApiVersion = Annotated[str, Depends(api_version)]
