"""Principals (Takt extension): API keys with a role, stored hashed; a key is shown once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from scheduler.api.deps import Principals, Reader, Writer
from scheduler.api.media import JsonRoute
from scheduler.api.schemas import PrincipalIn, PrincipalKey, PrincipalList, PrincipalOut
from scheduler.store.principals import Role

__all__ = ["router"]

router = APIRouter(tags=["Takt extensions"], route_class=JsonRoute)

Name = Annotated[str, Path(alias="name")]


@router.get("/principals", response_model=PrincipalList)
def list_principals(book: Principals, _: Reader) -> PrincipalList:
    """Every principal and its role (keys are never shown again)."""
    return PrincipalList(value=[PrincipalOut(name=p.name, role=p.role.value) for p in book.list()])


@router.post("/principals", response_model=PrincipalKey, status_code=status.HTTP_201_CREATED)
def add_principal(body: PrincipalIn, book: Principals, _: Writer) -> PrincipalKey:
    """Create a principal; the answer holds its key, the only time it is shown."""
    key = book.add(body.name, Role(body.role))
    return PrincipalKey(name=body.name, role=body.role, key=key)


@router.delete("/principals/{name}")
def revoke_principal(name: Name, book: Principals, _: Writer) -> Response:
    """Delete a principal and its key (not the last administrator)."""
    book.revoke(name)
    return Response(status_code=status.HTTP_200_OK)
