"""The first hour, API side (issue 13): a recurring job whose start is now or unset fires its
first occurrence at once, the same at the API, the console, the client and the beat; JSON
under every JSON media type; /docs and /redoc without a network."""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from scheduler.api import create_api
from scheduler.client import SchedulerClient
from scheduler.domain.models import JobProperties
from scheduler.domain.planning import first_fire, upcoming
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore
from tests.support.arm import API_VERSION, collection_path, iso
from tests.support.helpers import ADMIN_TOKEN, HttpTarget, wait_until
from tests.support.stack import Stack
from tests.support.swagger import ValidatingTransport, validated

with warnings.catch_warnings():
    # Starlette now asks for its httpx fork; the httpx it warns about works the same here.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
#: A request time whose microseconds the API's millisecond start time cuts off (start
#: times are kept to the millisecond).
NOW = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
NOW_MS = NOW.replace(microsecond=123000)
ACTION = {"type": "Http", "request": {"uri": "http://127.0.0.1:9/x", "method": "GET"}}


def _job(**extra: Any) -> JobProperties:
    return JobProperties.model_validate({"action": ACTION, **extra})


def _at(moment: datetime) -> str:
    return moment.isoformat()


# -- the first occurrence, pure ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "first"),
    [
        pytest.param({"recurrence": {"frequency": "Hour"}}, NOW, id="hourly-start-unset"),
        pytest.param(
            {"recurrence": {"frequency": "Hour"}, "startTime": _at(NOW_MS)},
            NOW_MS,
            id="hourly-start-filled-by-the-api",
        ),
        pytest.param(
            {"recurrence": {"frequency": "Hour"}, "startTime": _at(NOW_MS - 2 * SECOND)},
            NOW_MS - 2 * SECOND,
            id="hourly-start-a-client-sent-as-now-2s-ago",
        ),
        pytest.param(
            {"recurrence": {"frequency": "Hour"}, "startTime": _at(NOW_MS - HOUR - 20 * SECOND)},
            NOW_MS + HOUR - 20 * SECOND,
            id="hourly-last-one-20s-ago-skipped-first-future-one",
        ),
        pytest.param(
            {
                "recurrence": {"frequency": "Hour"},
                "startTime": _at(NOW_MS - 2 * SECOND),
                "startingDeadline": "PT1S",
            },
            NOW_MS + HOUR - 2 * SECOND,
            id="hourly-start-later-than-its-deadline",
        ),
        pytest.param(
            {"recurrence": {"frequency": "Second"}, "startTime": _at(NOW_MS - 5.5 * SECOND)},
            NOW_MS - SECOND / 2,
            id="every-second-only-the-latest-due-one",
        ),
        pytest.param(
            {"recurrence": {"cron": "* * * * *"}, "startTime": "2026-11-30T12:00:00Z"},
            datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
            id="cron-start-on-its-minute",
        ),
        pytest.param(
            {"recurrence": {"cron": "* * * * *"}},
            datetime(2026, 11, 30, 12, 1, tzinfo=UTC),
            id="cron-start-unset-next-minute",
        ),
        pytest.param(
            {"recurrence": {"frequency": "Day"}, "startTime": "2026-12-01T09:00:00Z"},
            datetime(2026, 12, 1, 9, tzinfo=UTC),
            id="daily-start-tomorrow",
        ),
        pytest.param({"startTime": "2020-01-01T00:00:00Z"}, NOW, id="one-shot-in-the-past"),
    ],
)
def test_the_first_occurrence(extra: dict[str, Any], first: datetime) -> None:
    # Given a job saved at NOW
    properties = _job(**extra)

    # When its first occurrence is planned and previewed
    planned = first_fire(properties, NOW)
    previewed = next(upcoming(properties, None, NOW))

    # Then both are the expected instant
    assert (planned, previewed) == (first, first)


def test_the_preview_follows_the_first_occurrence_by_the_rule() -> None:
    properties = _job(recurrence={"frequency": "Hour"}, startTime=_at(NOW_MS))

    fires = list(islice(upcoming(properties, first_fire(properties, NOW), NOW), 3))

    assert fires == [NOW_MS, NOW_MS + HOUR, NOW_MS + 2 * HOUR]


# -- the API, in process ---------------------------------------------------------------------


@pytest.fixture
def api(settings: TaktSettings, store: JobStore) -> Iterator[TestClient]:
    with validated(TestClient(create_api(settings, store))) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


@pytest.fixture
def collection(api: TestClient) -> str:
    path = collection_path(f"first-{uuid.uuid4().hex[:8]}")
    answer = api.put(path, params=API_VERSION, json={"location": "local"})
    assert answer.status_code == 201, answer.text
    return path


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_an_hourly_job_without_start_is_due_now_at_the_api(
    api: TestClient, collection: str
) -> None:
    # Given an hourly job sent without startTime
    before = datetime.now(UTC)
    answer = api.put(
        f"{collection}/jobs/hourly",
        params=API_VERSION,
        json={"properties": {"action": ACTION, "recurrence": {"frequency": "Hour"}}},
    )
    after = datetime.now(UTC)

    # Then its next execution is its start, the request's time, and its occurrences begin there
    assert answer.status_code == 201, answer.text
    properties = answer.json()["properties"]
    next_time = _when(properties["status"]["nextExecutionTime"])
    assert next_time == _when(properties["startTime"])
    assert before - timedelta(milliseconds=1) <= next_time <= after
    listed = api.get(f"{collection}/jobs/hourly/occurrences", params={**API_VERSION, "count": 3})
    assert listed.status_code == 200, listed.text
    assert [_when(t) for t in listed.json()["value"]] == [
        next_time,
        next_time + HOUR,
        next_time + 2 * HOUR,
    ]


def test_an_hourly_job_whose_start_a_client_sent_as_now_is_due_now(
    api: TestClient, collection: str
) -> None:
    # Given an hourly job whose startTime the client took a moment before sending it
    start = datetime.now(UTC) - timedelta(milliseconds=300)
    body = {"properties": {"action": ACTION, "recurrence": {"frequency": "Hour"}}}
    body["properties"]["startTime"] = iso(start)

    answer = api.put(f"{collection}/jobs/hourly", params=API_VERSION, json=body)

    # Then that start is its next execution, not an hour later
    assert answer.status_code == 201, answer.text
    next_time = _when(answer.json()["properties"]["status"]["nextExecutionTime"])
    assert abs(next_time - start) < timedelta(milliseconds=1)


# -- JSON media types ------------------------------------------------------------------------


JSON_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/json",
    "text/json; charset=utf-8",
    "Text/JSON",
    "application/merge-patch+json",
    "application/vnd.takt+json",
]


def _send(api: TestClient, method: str, path: str, body: Any, content_type: str) -> Any:
    return api.request(
        method,
        path,
        params=API_VERSION,
        content=httpx.Request("POST", "/", json=body).content,
        headers={"Content-Type": content_type},
    )


@pytest.mark.parametrize("content_type", JSON_TYPES)
def test_every_json_media_type_is_json_on_every_json_route(
    api: TestClient, collection: str, content_type: str
) -> None:
    job = {"properties": {"action": ACTION, "startTime": "2030-01-01T00:00:00Z"}}
    name = collection.rsplit("/", 1)[1]
    classic = f"/sub1/cloudservices/rg1/resources/scheduler/~/jobcollections/{name}/jobs/k"
    calls = [
        ("PUT", f"{collection}/jobs/j", job),  # the hand-solved route
        ("PATCH", f"{collection}/jobs/j", {"properties": {"state": "Disabled"}}),
        ("PATCH", collection, {"properties": {"state": "Enabled"}}),
        ("PUT", collection_path(f"c-{uuid.uuid4().hex[:6]}"), {"location": "local"}),
        ("PUT", classic, job["properties"]),
        ("PATCH", classic, {"state": "Disabled"}),
        ("POST", "/principals", {"name": f"p{uuid.uuid4().hex[:6]}", "role": "reader"}),
    ]
    for method, path, body in calls:
        answer = _send(api, method, path, body, content_type)
        assert answer.status_code in (200, 201), (method, path, answer.text)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "text/jsonx"],
)
@pytest.mark.parametrize(
    ("method", "route"),
    [("PUT", "/jobs/j"), ("PATCH", "/jobs/j"), ("PATCH", ""), ("PUT", "/../c2")],
    ids=["put-job", "patch-job", "patch-collection", "put-collection"],
)
def test_other_media_types_are_refused_by_name(
    api: TestClient, collection: str, content_type: str, method: str, route: str
) -> None:
    api.put(
        f"{collection}/jobs/j",
        params=API_VERSION,
        json={"properties": {"action": ACTION, "startTime": "2030-01-01T00:00:00Z"}},
    )
    path = collection.rsplit("/", 1)[0] + "/c2" if route == "/../c2" else collection + route
    body = {"properties": {"action": ACTION}} if "jobs" in route else {"location": "local"}

    answer = _send(api, method, path, body, content_type)

    assert answer.status_code == 415, answer.text
    error = answer.json()["error"]
    assert error["code"] == "UnsupportedMediaType"
    assert content_type in error["message"]


def test_a_json_body_without_a_content_type_is_refused_by_name(
    api: TestClient, collection: str
) -> None:
    answer = api.put(
        f"{collection}/jobs/j",
        params=API_VERSION,
        content=b'{"properties": {"action": {"type": "Http"}}}',
        headers={"Content-Type": ""},
    )

    assert answer.status_code == 415, answer.text
    assert "Content-Type" in answer.json()["error"]["message"]


def test_the_key_is_checked_before_the_media_type(collection: str, api: TestClient) -> None:
    answer = api.put(
        f"{collection}/jobs/j",
        params=API_VERSION,
        content=b"x",
        headers={"Content-Type": "text/plain", "Authorization": "Bearer nope"},
    )

    assert answer.status_code == 401, answer.text


def test_fetch_is_not_an_http_method_of_azures(api: TestClient, collection: str) -> None:
    action = {**ACTION, "request": {**ACTION["request"], "method": "FETCH"}}  # type: ignore[dict-item]

    answer = api.put(
        f"{collection}/jobs/j", params=API_VERSION, json={"properties": {"action": action}}
    )

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"].startswith("properties.action.request.method")


# -- the console, in process ---------------------------------------------------------------


def _signed_in(api: TestClient) -> str:
    """Sign ``api`` in to the console; returns the session's CSRF token."""
    answer = api.post("/console/signin", data={"key": ADMIN_TOKEN}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    csrf = re.search(r'data-csrf="([^"]+)"', api.get("/").text)
    assert csrf
    return csrf.group(1)


def _first_preview_item(html: str) -> str:
    listed = re.search(r'id="preview-list"[^>]*>(.*?)</ol>', html, re.S)
    assert listed, html
    first = re.search(r"<li[^>]*>(.*?)</li>", listed.group(1), re.S)
    assert first, listed.group(1)
    return first.group(1)


def test_the_console_previews_a_saved_job_without_start_from_now(
    api: TestClient, collection: str
) -> None:
    # Given an hourly job saved without startTime (no beat runs here: it stays due)
    before = datetime.now(UTC)
    answer = api.put(
        f"{collection}/jobs/hourly",
        params=API_VERSION,
        json={"properties": {"action": ACTION, "recurrence": {"frequency": "Hour"}}},
    )
    assert answer.status_code == 201, answer.text
    due = _when(answer.json()["properties"]["status"]["nextExecutionTime"])
    assert abs(due - before) < SECOND

    # When its page in the console is opened
    _signed_in(api)
    _, _, sub, _, rg, _, _, _, name = collection.split("/")
    page = api.get(f"/console/c/{sub}/{rg}/{name}/jobs/hourly")

    # Then its preview lists that due time first
    assert page.status_code == 200, page.text
    shown = _first_preview_item(page.text)
    assert due.strftime("%Y-%m-%d %H:%M:%S") in shown or iso(due)[:19] in shown, shown


def test_the_console_preview_of_an_unsaved_schedule_lists_now_first(api: TestClient) -> None:
    csrf = _signed_in(api)
    before = datetime.now(UTC)

    answer = api.post(
        "/console/preview",
        params={"count": 2},
        json={"recurrence": {"frequency": "Hour"}},
        headers={"X-CSRF-Token": csrf},
    )

    assert answer.status_code == 200, answer.text
    first, second = (_when(t) for t in answer.json()["value"])
    assert abs(first - before) < SECOND
    assert second - first == HOUR


# -- the client and the beat, end to end -----------------------------------------------------


@pytest.mark.e2e
def test_the_client_and_the_beat_agree_on_the_first_occurrence(
    stack: Stack, target: HttpTarget
) -> None:
    # Given an hourly job created with the client, without startTime
    name = f"first-{uuid.uuid4().hex[:8]}"
    action = {"type": "Http", "request": {"uri": f"{target.url}/hourly", "method": "GET"}}
    with SchedulerClient(
        stack.api_url, stack.token, resource_group=name, transport=ValidatingTransport()
    ) as takt:
        takt.create_collection(name)
        before = datetime.now(UTC)
        job = takt.create_job(
            name, "hourly", {"recurrence": {"frequency": "Hour"}, "action": action}
        )
        status = job.properties.status
        assert status is not None
        first = status.next_execution_time
        assert first is not None

        # Then the client sees it due now (the beat may have run it already: its
        # occurrences are checked in process above)
        assert abs(first - before) < SECOND

        # and the beat runs it within seconds, then plans the next one an hour on
        wait_until(
            lambda: target.requests_to("/hourly"), timeout=10, message="the first occurrence"
        )

        def next_time() -> datetime | None:
            planned = takt.get_job(name, "hourly").properties.status
            return planned.next_execution_time if planned else None

        later = wait_until(
            lambda: (t := next_time()) != first and t,
            timeout=10,
            message="the job to be planned an hour on",
        )
    assert later == first + HOUR
    assert len(target.requests_to("/hourly")) == 1


# -- /docs and /redoc offline, in Chromium ---------------------------------------------------


#: How long a page may take to draw a 1-2 MB bundle and the spec on a busy machine.
DRAWN_MS = 30_000


@dataclass
class Offline:
    """What a page tried while the network was cut: requests that left the machine (each
    aborted), and its errors (a Content-Security-Policy refusal is one)."""

    left: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _offline(page: Page) -> Offline:
    """Abort every request of ``page`` that leaves the machine, and record its errors."""
    seen = Offline()
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))

    def route(route: Route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            seen.left.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    return seen


@pytest.mark.e2e
def test_swagger_ui_works_offline(stack: Stack, page: Page) -> None:
    # Given a browser without a network
    seen = _offline(page)

    # When it opens /docs
    page.goto(f"{stack.api_url}/docs")

    # Then Swagger UI lists the operations, and the page asked nothing of the outside
    expect(page.locator(".opblock").first).to_be_visible(timeout=DRAWN_MS)
    assert page.locator(".opblock").count() > 10
    job_route = page.locator('.opblock-summary-path[data-path$="/jobs/{jobName}"]')
    expect(job_route.first).to_be_visible()
    assert (seen.left, seen.errors) == ([], [])


@pytest.mark.e2e
def test_redoc_works_offline(stack: Stack, page: Page) -> None:
    # Given a browser without a network
    seen = _offline(page)

    # When it opens /redoc
    page.goto(f"{stack.api_url}/redoc")

    # Then ReDoc draws its menu of operations, and no request left the machine: ReDoc's
    # footer logo (on its CDN) is the one thing it asks for, and the page's policy refuses
    # it before it is sent
    menu = page.locator(".menu-content")
    expect(menu).to_be_visible(timeout=DRAWN_MS)
    expect(menu.locator("li").first).to_be_visible()
    assert menu.locator("li").count() > 10
    assert seen.left == []
    refused_logo = "Loading the image 'https://cdn.redoc.ly/redoc/logo-mini.svg' violates"
    assert [e for e in seen.errors if not e.startswith(refused_logo)] == []


@pytest.mark.e2e
def test_the_docs_assets_are_takts_own_and_carry_the_security_headers(stack: Stack) -> None:
    page = httpx.get(f"{stack.api_url}/docs", timeout=10)
    scripts = re.findall(r'<script src="([^"]+)"', page.text)
    assert scripts, page.text
    for src in scripts:
        assert src.startswith("/"), src  # on Takt's own origin
        asset = httpx.get(f"{stack.api_url}{src}", timeout=10)
        assert asset.status_code == 200
        assert "javascript" in asset.headers["content-type"]
        assert asset.headers["x-content-type-options"] == "nosniff"
