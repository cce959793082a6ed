"""The asynchronous client: the same methods as ``SchedulerClient``, awaited."""

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

__all__ = ["AsyncSchedulerClient"]

T = TypeVar("T")


class AsyncSchedulerClient:
    """The asyncio twin of :class:`~scheduler.client.SchedulerClient`, over ``httpx.AsyncClient``.

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
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._routes = Routes(subscription, resource_group)
        self._http = httpx.AsyncClient(
            transport=transport, **http_options(base_url, token, timeout_s)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(self, call: Call[T]) -> T:
        with transport_errors():
            response = await self._http.request(
                call.method, call.url, params=call.params, **call.body()
            )
        return call.result(response)

    async def _send_all(self, first: Call[Page[T]], limit: int | None = None) -> list[T]:
        pager = Pager(first, self._http.base_url, limit)
        while (call := pager.next_call()) is not None:
            pager.receive(await self._send(call))
        return pager.items

    # Collections

    async def create_collection(
        self,
        name: str,
        *,
        location: str | None = "local",
        sku: SkuName | str | None = None,
        quota: JobCollectionQuota | Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Collection:
        """Create the collection, or replace the one of that name (PUT)."""
        return await self._send(self._routes.create_collection(name, location, sku, quota, tags))

    async def get_collection(self, name: str) -> Collection:
        """The collection; ``CollectionNotFound`` when there is none."""
        return await self._send(self._routes.get_collection(name))

    async def list_collections(
        self, resource_group: str | UseClientDefault | None = USE_CLIENT_DEFAULT
    ) -> list[Collection]:
        """The collections of a resource group (the client's by default; None: all of the
        subscription), every page."""
        return await self._send_all(self._routes.list_collections(resource_group))

    async def list_all_collections(self) -> list[Collection]:
        """Every collection Takt holds, in every subscription and resource group (Takt
        extension); each one's ``id`` names its place."""
        return await self._send_all(self._routes.list_all_collections())

    async def update_collection(self, name: str, patch: Mapping[str, Any]) -> Collection:
        """Merge ``patch`` (``location``, ``tags``, ``properties``) into the collection."""
        return await self._send(self._routes.update_collection(name, patch))

    async def delete_collection(self, name: str) -> None:
        """Delete the collection and every job in it."""
        await self._send(self._routes.delete_collection(name))

    async def enable_collection(self, name: str) -> None:
        """Enable the collection: its enabled jobs run again."""
        await self._send(self._routes.enable_collection(name))

    async def disable_collection(self, name: str) -> None:
        """Disable the collection: none of its jobs runs until it is enabled."""
        await self._send(self._routes.disable_collection(name))

    # Jobs

    async def create_job(
        self, collection: str, name: str, properties: JobProperties | Mapping[str, Any]
    ) -> Job:
        """Create the job, or replace the one of that name (PUT).

        ``properties`` is a JobProperties, its wire dict, or ``{"properties": {...}}``.
        """
        return await self._send(self._routes.create_job(collection, name, properties))

    async def get_job(self, collection: str, name: str) -> Job:
        """The job; ``JobNotFound`` (or ``CollectionNotFound``) when there is none."""
        return await self._send(self._routes.get_job(collection, name))

    async def list_jobs(
        self, collection: str, *, state: JobState | str | None = None, top: int | None = None
    ) -> list[Job]:
        """The collection's jobs, every page; ``state`` filters, ``top`` caps the count."""
        first = self._routes.list_jobs(collection, state, top)
        return await self._send_all(first, top)

    async def update_job(self, collection: str, name: str, patch: Mapping[str, Any]) -> Job:
        """Merge ``patch`` (partial properties, wire names) into the job (PATCH)."""
        return await self._send(self._routes.update_job(collection, name, patch))

    async def run_job(self, collection: str, name: str) -> None:
        """Run the job once now; ``Conflict`` when it is disabled or finished."""
        await self._send(self._routes.run_job(collection, name))

    async def enable_job(self, collection: str, name: str) -> Job:
        """Set the job's state to Enabled."""
        return await self._send(self._routes.enable_job(collection, name))

    async def disable_job(self, collection: str, name: str) -> Job:
        """Set the job's state to Disabled: it does not run until enabled."""
        return await self._send(self._routes.disable_job(collection, name))

    async def rename_job(self, collection: str, name: str, display_name: str) -> Job:
        """Set the job's display name (its name, part of its path, never changes)."""
        return await self._send(self._routes.rename_job(collection, name, display_name))

    async def change_owner(self, collection: str, name: str, owner: str) -> Job:
        """Hand the job to another administrator principal."""
        return await self._send(self._routes.change_owner(collection, name, owner))

    async def delete_job(self, collection: str, name: str) -> None:
        """Delete the job and its history."""
        await self._send(self._routes.delete_job(collection, name))

    async def history(
        self,
        collection: str,
        name: str,
        *,
        status: JobExecutionStatus | str | None = None,
        top: int | None = None,
    ) -> list[HistoryRecord]:
        """The job's history, newest first, every page; ``status`` filters, ``top`` caps."""
        first = self._routes.history(collection, name, status, top)
        return await self._send_all(first, top)

    async def occurrences(self, collection: str, name: str, count: int = 10) -> list[datetime]:
        """The next ``count`` instants the job will fire at (aware, UTC)."""
        return await self._send(self._routes.occurrences(collection, name, count))

    # Principals

    async def list_principals(self) -> list[Principal]:
        """Every principal (administrators only)."""
        return await self._send_all(self._routes.list_principals())

    async def add_principal(self, name: str, role: str) -> str:
        """Make a principal (``admin`` or ``reader``) and return its key, shown only now."""
        return await self._send(self._routes.add_principal(name, role))

    async def revoke_principal(self, name: str) -> None:
        """Delete the principal: its key stops working at once."""
        await self._send(self._routes.revoke_principal(name))
