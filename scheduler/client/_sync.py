"""The synchronous client: one keep-alive ``httpx.Client`` per instance."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from scheduler.client._calls import Call, Page, Pager, http_options
from scheduler.client._errors import transport_errors
from scheduler.client._routes import USE_CLIENT_DEFAULT, Routes, UseClientDefault
from scheduler.client.results import Collection, HistoryRecord, Job, Principal
from scheduler.domain.models import (
    JobCollectionQuota,
    JobExecutionStatus,
    JobProperties,
    JobState,
    SkuName,
)

__all__ = ["SchedulerClient"]

T = TypeVar("T")


class SchedulerClient:
    """A Takt API client for producers and operators.

    Every method raises the project's exceptions (``scheduler.errors``): the API's error
    answers by status and ARM code (``JobNotFound``, ``ValidationFailed``, ``Conflict``...),
    and ``ClientError`` when the API cannot be reached.

    Args:
        base_url: The API's root, e.g. ``http://127.0.0.1:8000``.
        token: An API key (``takt principals add`` makes one).
        subscription: The subscription id of every path.
        resource_group: The resource group of every path (``list_collections`` may differ).
        transport: An httpx transport (tests pass ``httpx.MockTransport``).
        timeout_s: Seconds to wait for connecting and for each read.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        subscription: str = "default",
        resource_group: str = "default",
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._routes = Routes(subscription, resource_group)
        self._http = httpx.Client(transport=transport, **http_options(base_url, token, timeout_s))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        with transport_errors():
            response = self._http.request(call.method, call.url, params=call.params, **call.body())
        return call.result(response)

    def _send_all(self, first: Call[Page[T]], limit: int | None = None) -> list[T]:
        pager = Pager(first, self._http.base_url, limit)
        while (call := pager.next_call()) is not None:
            pager.receive(self._send(call))
        return pager.items

    # Collections

    def create_collection(
        self,
        name: str,
        *,
        location: str | None = "local",
        sku: SkuName | str | None = None,
        quota: JobCollectionQuota | Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Collection:
        """Create the collection, or replace the one of that name (PUT)."""
        return self._send(self._routes.create_collection(name, location, sku, quota, tags))

    def get_collection(self, name: str) -> Collection:
        """The collection; ``CollectionNotFound`` when there is none."""
        return self._send(self._routes.get_collection(name))

    def list_collections(
        self, resource_group: str | UseClientDefault | None = USE_CLIENT_DEFAULT
    ) -> list[Collection]:
        """The collections of a resource group (the client's by default; None: all of the
        subscription), every page."""
        return self._send_all(self._routes.list_collections(resource_group))

    def list_all_collections(self) -> list[Collection]:
        """Every collection Takt holds, in every subscription and resource group (Takt
        extension); each one's ``id`` names its place."""
        return self._send_all(self._routes.list_all_collections())

    def update_collection(self, name: str, patch: Mapping[str, Any]) -> Collection:
        """Merge ``patch`` (``location``, ``tags``, ``properties``) into the collection."""
        return self._send(self._routes.update_collection(name, patch))

    def delete_collection(self, name: str) -> None:
        """Delete the collection and every job in it."""
        self._send(self._routes.delete_collection(name))

    def enable_collection(self, name: str) -> None:
        """Enable the collection: its enabled jobs run again."""
        self._send(self._routes.enable_collection(name))

    def disable_collection(self, name: str) -> None:
        """Disable the collection: none of its jobs runs until it is enabled."""
        self._send(self._routes.disable_collection(name))

    # Jobs

    def create_job(
        self, collection: str, name: str, properties: JobProperties | Mapping[str, Any]
    ) -> Job:
        """Create the job, or replace the one of that name (PUT).

        ``properties`` is a JobProperties, its wire dict, or ``{"properties": {...}}``.
        """
        return self._send(self._routes.create_job(collection, name, properties))

    def get_job(self, collection: str, name: str) -> Job:
        """The job; ``JobNotFound`` (or ``CollectionNotFound``) when there is none."""
        return self._send(self._routes.get_job(collection, name))

    def list_jobs(
        self, collection: str, *, state: JobState | str | None = None, top: int | None = None
    ) -> list[Job]:
        """The collection's jobs, every page; ``state`` filters, ``top`` caps the count."""
        first = self._routes.list_jobs(collection, state, top)
        return self._send_all(first, top)

    def update_job(self, collection: str, name: str, patch: Mapping[str, Any]) -> Job:
        """Merge ``patch`` (partial properties, wire names) into the job (PATCH)."""
        return self._send(self._routes.update_job(collection, name, patch))

    def run_job(self, collection: str, name: str) -> None:
        """Run the job once now; ``Conflict`` when it is disabled or finished."""
        self._send(self._routes.run_job(collection, name))

    def enable_job(self, collection: str, name: str) -> Job:
        """Set the job's state to Enabled."""
        return self._send(self._routes.enable_job(collection, name))

    def disable_job(self, collection: str, name: str) -> Job:
        """Set the job's state to Disabled: it does not run until enabled."""
        return self._send(self._routes.disable_job(collection, name))

    def rename_job(self, collection: str, name: str, display_name: str) -> Job:
        """Set the job's display name (its name, part of its path, never changes)."""
        return self._send(self._routes.rename_job(collection, name, display_name))

    def change_owner(self, collection: str, name: str, owner: str) -> Job:
        """Hand the job to another administrator principal."""
        return self._send(self._routes.change_owner(collection, name, owner))

    def delete_job(self, collection: str, name: str) -> None:
        """Delete the job and its history."""
        self._send(self._routes.delete_job(collection, name))

    def history(
        self,
        collection: str,
        name: str,
        *,
        status: JobExecutionStatus | str | None = None,
        top: int | None = None,
    ) -> list[HistoryRecord]:
        """The job's history, newest first, every page; ``status`` filters, ``top`` caps."""
        first = self._routes.history(collection, name, status, top)
        return self._send_all(first, top)

    def occurrences(self, collection: str, name: str, count: int = 10) -> list[datetime]:
        """The next ``count`` instants the job will fire at (aware, UTC)."""
        return self._send(self._routes.occurrences(collection, name, count))

    # Principals

    def list_principals(self) -> list[Principal]:
        """Every principal (administrators only)."""
        return self._send_all(self._routes.list_principals())

    def add_principal(self, name: str, role: str) -> str:
        """Make a principal (``admin`` or ``reader``) and return its key, shown only now."""
        return self._send(self._routes.add_principal(name, role))

    def revoke_principal(self, name: str) -> None:
        """Delete the principal: its key stops working at once."""
        self._send(self._routes.revoke_principal(name))
