"""Request and response bodies of the ARM routes, so /openapi.json shows the real shapes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from scheduler.domain.models import (
    HistoryEntry,
    JobCollectionProperties,
    JobProperties,
    Timestamp,
    WireModel,
)

__all__ = [
    "JobCollectionDefinition",
    "JobCollectionList",
    "JobDefinition",
    "JobDefinitionBody",
    "JobHistoryDefinition",
    "JobHistoryList",
    "JobList",
    "Occurrences",
    "PatchBody",
    "PrincipalIn",
    "PrincipalKey",
    "PrincipalList",
    "PrincipalOut",
]


class JobDefinitionBody(WireModel):
    """A PUT body: the job's properties; echoed envelope members are ignored."""

    properties: JobProperties
    id: str | None = None
    type: str | None = None
    name: str | None = None


class PatchBody(WireModel):
    """A PATCH body: members to merge (RFC 7396); left-out members stay as they are."""

    properties: dict[str, Any] = Field(default_factory=dict)
    location: str | None = None
    tags: dict[str, str] | None = None
    id: str | None = None
    type: str | None = None
    name: str | None = None


class JobDefinition(WireModel):
    id: str
    type: str
    name: str
    properties: JobProperties


class JobList(WireModel):
    value: list[JobDefinition]
    next_link: str | None = None


class JobCollectionDefinition(WireModel):
    id: str
    type: str
    name: str
    location: str | None = None
    tags: dict[str, str] | None = None
    properties: JobCollectionProperties


class JobCollectionList(WireModel):
    value: list[JobCollectionDefinition]
    next_link: str | None = None


class JobHistoryDefinition(WireModel):
    id: str
    type: str
    name: str
    properties: HistoryEntry


class JobHistoryList(WireModel):
    value: list[JobHistoryDefinition]
    next_link: str | None = None


class Occurrences(WireModel):
    """The next instants a job fires at (Takt extension)."""

    value: list[Timestamp]


class PrincipalIn(WireModel):
    name: str
    role: str = Field(pattern="^(admin|reader)$")


class PrincipalOut(WireModel):
    name: str
    role: str


class PrincipalKey(PrincipalOut):
    key: str = Field(description="The new API key. It is shown once and never stored.")


class PrincipalList(WireModel):
    value: list[PrincipalOut]
