"""Small helpers to talk ARM to the test stack's API.

Every answer they receive is validated against Microsoft's swagger
(:func:`tests.support.swagger.checked`), whatever client they were handed: a test's own
client, a ``TestClient``, or the stack's (where the check is already done, and not redone).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import httpx

from tests.support.swagger import checked

API_VERSION = {"api-version": "2016-03-01"}

_SERVICE_MANAGEMENT = "{http://schemas.microsoft.com/windowsazure}"


def collection_path(name: str, sub: str = "sub1", rg: str = "rg1") -> str:
    return (
        f"/subscriptions/{sub}/resourceGroups/{rg}"
        f"/providers/Microsoft.Scheduler/jobCollections/{name}"
    )


def new_collection(http: httpx.Client) -> str:
    path = collection_path(f"coll-{uuid.uuid4().hex[:10]}")
    response = checked(http.put(path, params=API_VERSION, json={"location": "local"}))
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
    response = checked(http.put(f"{collection}/jobs/{name}", params=API_VERSION, json=body))
    assert response.status_code in (200, 201), response.text
    return response.json()


def get_job(http: httpx.Client, collection: str, name: str) -> Any:
    response = checked(http.get(f"{collection}/jobs/{name}", params=API_VERSION))
    assert response.status_code == 200, response.text
    return response.json()


def history(http: httpx.Client, collection: str, name: str) -> list[Any]:
    response = checked(http.get(f"{collection}/jobs/{name}/history", params=API_VERSION))
    assert response.status_code == 200, response.text
    entries: list[Any] = response.json()["value"]
    return entries


def error_code(response: httpx.Response) -> str:
    """The code of an error answer: ARM's JSON body, or Service Management's XML ``Error``
    (MSDN's classic collection operations, docs/azure-compatibility.md), each checked to be
    nothing but its shape."""
    if response.headers.get("content-type", "").startswith("application/xml"):
        error = ElementTree.fromstring(response.content)
        assert error.tag == f"{_SERVICE_MANAGEMENT}Error", response.text
        assert [child.tag for child in error] == [
            f"{_SERVICE_MANAGEMENT}Code",
            f"{_SERVICE_MANAGEMENT}Message",
        ], response.text
        return error.findtext(f"{_SERVICE_MANAGEMENT}Code") or ""
    body = response.json()
    assert set(body) == {"error"}, body
    return str(body["error"]["code"])
