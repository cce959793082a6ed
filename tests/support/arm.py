"""Small helpers to talk ARM to the test stack's API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

API_VERSION = {"api-version": "2016-03-01"}


def collection_path(name: str, sub: str = "sub1", rg: str = "rg1") -> str:
    return (
        f"/subscriptions/{sub}/resourceGroups/{rg}"
        f"/providers/Microsoft.Scheduler/jobCollections/{name}"
    )


def new_collection(http: httpx.Client) -> str:
    path = collection_path(f"coll-{uuid.uuid4().hex[:10]}")
    response = http.put(path, params=API_VERSION, json={"location": "local"})
    assert response.status_code == 201, response.text
    return path


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def in_seconds(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def http_job(
    uri: str, *, start: datetime | None = None, method: str = "GET", **extra: Any
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "action": {
            "type": "Http",
            "request": {"uri": uri, "method": method},
            "retryPolicy": {"retryType": "None"},
        },
        **extra,
    }
    if start is not None:
        properties["startTime"] = iso(start)
    return {"properties": properties}


def put_job(http: httpx.Client, collection: str, name: str, body: dict[str, Any]) -> Any:
    response = http.put(f"{collection}/jobs/{name}", params=API_VERSION, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def get_job(http: httpx.Client, collection: str, name: str) -> Any:
    response = http.get(f"{collection}/jobs/{name}", params=API_VERSION)
    assert response.status_code == 200, response.text
    return response.json()


def history(http: httpx.Client, collection: str, name: str) -> list[Any]:
    response = http.get(f"{collection}/jobs/{name}/history", params=API_VERSION)
    assert response.status_code == 200, response.text
    entries: list[Any] = response.json()["value"]
    return entries
