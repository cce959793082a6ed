"""What the client's methods return: small frozen records around the server's wire models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scheduler.domain.models import HistoryEntry, JobCollectionProperties, JobProperties

__all__ = ["Collection", "HistoryRecord", "Job", "Principal"]


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the API returns it (credentials masked: docs/security.md, the secret rule).

    Attributes:
        name: The job's name inside its collection.
        collection: The name of the collection that holds it.
        properties: Definition, state and server-controlled status.
        id: The ARM resource id (``/subscriptions/.../jobs/{name}``).
    """

    name: str
    collection: str
    properties: JobProperties
    id: str = ""

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Job:
        """Read an ARM job envelope (its ``name`` is ``"{collection}/{job}"``)."""
        collection, _, name = str(body["name"]).rpartition("/")
        properties = JobProperties.model_validate(body["properties"])
        return cls(name=name, collection=collection, properties=properties, id=body.get("id", ""))

    def to_wire(self) -> dict[str, Any]:
        """The ARM envelope, as the API would answer it."""
        return {
            "id": self.id,
            "type": "Microsoft.Scheduler/jobCollections/jobs",
            "name": f"{self.collection}/{self.name}",
            "properties": self.properties.to_wire(),
        }


@dataclass(frozen=True, slots=True)
class Collection:
    """A job collection.

    Attributes:
        name: The collection's name inside its resource group.
        location: Where it lives (Takt keeps whatever was given, ``local`` by default).
        properties: SKU, state and quota.
        tags: Free-form ARM tags.
        id: The ARM resource id.
    """

    name: str
    location: str | None
    properties: JobCollectionProperties
    tags: dict[str, str] = field(default_factory=dict)
    id: str = ""

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Collection:
        """Read an ARM job collection envelope."""
        return cls(
            name=str(body["name"]),
            location=body.get("location"),
            properties=JobCollectionProperties.model_validate(body.get("properties") or {}),
            tags=dict(body.get("tags") or {}),
            id=body.get("id", ""),
        )

    def to_wire(self) -> dict[str, Any]:
        """The ARM envelope, as the API would answer it."""
        wire: dict[str, Any] = {
            "id": self.id,
            "type": "Microsoft.Scheduler/jobCollections",
            "name": self.name,
            "location": self.location,
            "properties": self.properties.to_wire(),
        }
        if self.tags:
            wire["tags"] = self.tags
        return wire


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One history entry of a job: an attempt of its main or error action.

    Attributes:
        id: The ARM id of the entry (``.../jobs/{job}/history/{entry}``).
        entry: Times, action, status, message and counts.
    """

    id: str
    entry: HistoryEntry

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> HistoryRecord:
        """Read an ARM history envelope."""
        return cls(id=str(body["id"]), entry=HistoryEntry.model_validate(body["properties"]))

    def to_wire(self) -> dict[str, Any]:
        """The ARM envelope's id and properties."""
        return {"id": self.id, "properties": self.entry.to_wire()}


@dataclass(frozen=True, slots=True)
class Principal:
    """A named API key's owner and role (``admin`` or ``reader``); never the key itself."""

    name: str
    role: str

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Principal:
        """Read a principal of ``GET /principals``."""
        return cls(name=str(body["name"]), role=str(body["role"]))

    def to_wire(self) -> dict[str, Any]:
        """The principal as the API lists it."""
        return {"name": self.name, "role": self.role}
