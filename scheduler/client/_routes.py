"""Every API operation as a :class:`~scheduler.client._calls.Call`: path, body, reader.

:class:`Routes` has one method per client method, with the same name and arguments, so
both clients are one line per method. Paths are Azure Scheduler's (2016-03-01) under
``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Scheduler``;
``/principals`` is a Takt extension without api-version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from scheduler.client._calls import Call, Page
from scheduler.client.results import Collection, HistoryRecord, Job, Principal
from scheduler.domain.models import (
    JobCollectionQuota,
    JobExecutionStatus,
    JobProperties,
    JobState,
    SkuName,
    Timestamp,
    WireModel,
)

__all__ = ["API_VERSION", "USE_CLIENT_DEFAULT", "Routes", "UseClientDefault", "job_body"]

API_VERSION = "2016-03-01"
_VERSION: dict[str, str | int] = {"api-version": API_VERSION}
_PROVIDER = "providers/Microsoft.Scheduler"
_TIMESTAMPS = TypeAdapter(list[Timestamp])

T = TypeVar("T")


class UseClientDefault(Enum):
    """An argument left to the client's own setting (httpx's ``USE_CLIENT_DEFAULT``)."""

    TOKEN = "use-client-default"


USE_CLIENT_DEFAULT = UseClientDefault.TOKEN


def _segment(value: str) -> str:
    return quote(value, safe="")


def _wire(value: Mapping[str, Any] | WireModel) -> dict[str, Any]:
    return value.to_wire() if isinstance(value, WireModel) else dict(value)


def job_body(properties: JobProperties | Mapping[str, Any]) -> dict[str, Any]:
    """A job PUT/PATCH body from JobProperties, flat properties or ``{"properties": ...}``."""
    wire = _wire(properties)
    return wire if "properties" in wire else {"properties": wire}


def _nothing(_: httpx.Response) -> None:
    return None


def _one(read: Callable[[dict[str, Any]], T]) -> Callable[[httpx.Response], T]:
    return lambda response: read(response.json())


def _page(read: Callable[[dict[str, Any]], T]) -> Callable[[httpx.Response], Page[T]]:
    def read_page(response: httpx.Response) -> Page[T]:
        body = response.json()
        return Page([read(item) for item in body["value"]], body.get("nextLink"))

    return read_page


def _timestamps(response: httpx.Response) -> list[datetime]:
    return _TIMESTAMPS.validate_python(response.json()["value"])


def _key(response: httpx.Response) -> str:
    return str(response.json()["key"])


def _filter(member: str, value: object | None) -> dict[str, str | int]:
    return {} if value is None else {"$filter": f"{member} eq '{value}'"}


def _top(top: int | None) -> dict[str, str | int]:
    return {} if top is None else {"$top": top}


class Routes:
    """Builds the calls of one subscription and default resource group."""

    def __init__(self, subscription: str, resource_group: str) -> None:
        self.subscription = subscription
        self.resource_group = resource_group

    def _collections(self, resource_group: str | None) -> str:
        sub = f"/subscriptions/{_segment(self.subscription)}"
        if resource_group is None:
            return f"{sub}/{_PROVIDER}/jobCollections"
        return f"{sub}/resourceGroups/{_segment(resource_group)}/{_PROVIDER}/jobCollections"

    def _collection(self, name: str) -> str:
        return f"{self._collections(self.resource_group)}/{_segment(name)}"

    def _job(self, collection: str, name: str) -> str:
        return f"{self._collection(collection)}/jobs/{_segment(name)}"

    # Collections

    def create_collection(
        self,
        name: str,
        location: str | None,
        sku: SkuName | str | None,
        quota: JobCollectionQuota | Mapping[str, Any] | None,
        tags: Mapping[str, str] | None,
    ) -> Call[Collection]:
        properties: dict[str, Any] = {}
        if sku is not None:
            properties["sku"] = {"name": str(sku)}
        if quota is not None:
            properties["quota"] = _wire(quota)
        body: dict[str, Any] = {"location": location, "properties": properties}
        if tags is not None:
            body["tags"] = dict(tags)
        return Call("PUT", self._collection(name), _one(Collection.from_wire), _VERSION, body)

    def get_collection(self, name: str) -> Call[Collection]:
        return Call("GET", self._collection(name), _one(Collection.from_wire), _VERSION)

    def list_collections(
        self, resource_group: str | UseClientDefault | None
    ) -> Call[Page[Collection]]:
        if isinstance(resource_group, UseClientDefault):
            resource_group = self.resource_group
        url = self._collections(resource_group)
        return Call("GET", url, _page(Collection.from_wire), _VERSION)

    def list_all_collections(self) -> Call[Page[Collection]]:
        url = f"/{_PROVIDER}/jobCollections"  # Takt extension: above any subscription
        return Call("GET", url, _page(Collection.from_wire), _VERSION)

    def update_collection(self, name: str, patch: Mapping[str, Any]) -> Call[Collection]:
        url = self._collection(name)
        return Call("PATCH", url, _one(Collection.from_wire), _VERSION, dict(patch))

    def delete_collection(self, name: str) -> Call[None]:
        return Call("DELETE", self._collection(name), _nothing, _VERSION)

    def enable_collection(self, name: str) -> Call[None]:
        return Call("POST", f"{self._collection(name)}/enable", _nothing, _VERSION)

    def disable_collection(self, name: str) -> Call[None]:
        return Call("POST", f"{self._collection(name)}/disable", _nothing, _VERSION)

    # Jobs

    def create_job(
        self, collection: str, name: str, properties: JobProperties | Mapping[str, Any]
    ) -> Call[Job]:
        url = self._job(collection, name)
        return Call("PUT", url, _one(Job.from_wire), _VERSION, job_body(properties))

    def get_job(self, collection: str, name: str) -> Call[Job]:
        return Call("GET", self._job(collection, name), _one(Job.from_wire), _VERSION)

    def list_jobs(
        self, collection: str, state: JobState | str | None, top: int | None
    ) -> Call[Page[Job]]:
        params = {**_VERSION, **_top(top), **_filter("state", state)}
        url = f"{self._collection(collection)}/jobs"
        return Call("GET", url, _page(Job.from_wire), params)

    def update_job(self, collection: str, name: str, patch: Mapping[str, Any]) -> Call[Job]:
        url = self._job(collection, name)
        return Call("PATCH", url, _one(Job.from_wire), _VERSION, job_body(patch))

    def run_job(self, collection: str, name: str) -> Call[None]:
        return Call("POST", f"{self._job(collection, name)}/run", _nothing, _VERSION)

    def enable_job(self, collection: str, name: str) -> Call[Job]:
        return self.update_job(collection, name, {"state": JobState.ENABLED.value})

    def disable_job(self, collection: str, name: str) -> Call[Job]:
        return self.update_job(collection, name, {"state": JobState.DISABLED.value})

    def rename_job(self, collection: str, name: str, display_name: str) -> Call[Job]:
        return self.update_job(collection, name, {"displayName": display_name})

    def change_owner(self, collection: str, name: str, owner: str) -> Call[Job]:
        return self.update_job(collection, name, {"owner": owner})

    def delete_job(self, collection: str, name: str) -> Call[None]:
        return Call("DELETE", self._job(collection, name), _nothing, _VERSION)

    def history(
        self,
        collection: str,
        name: str,
        status: JobExecutionStatus | str | None,
        top: int | None,
    ) -> Call[Page[HistoryRecord]]:
        params = {**_VERSION, **_top(top), **_filter("status", status)}
        url = f"{self._job(collection, name)}/history"
        return Call("GET", url, _page(HistoryRecord.from_wire), params)

    def occurrences(self, collection: str, name: str, count: int) -> Call[list[datetime]]:
        url = f"{self._job(collection, name)}/occurrences"
        return Call("GET", url, _timestamps, {**_VERSION, "count": count})

    # Principals (Takt extension; no api-version)

    def list_principals(self) -> Call[Page[Principal]]:
        return Call("GET", "/principals", _page(Principal.from_wire))

    def add_principal(self, name: str, role: str) -> Call[str]:
        return Call("POST", "/principals", _key, json={"name": name, "role": str(role)})

    def revoke_principal(self, name: str) -> Call[None]:
        return Call("DELETE", f"/principals/{_segment(name)}", _nothing)
