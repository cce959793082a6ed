"""The console's collections page, Jobs list and job form as a newcomer meets them: job
counts and New collection, the whole action on hover, retry fields only when they apply,
times in the browser's zone, a running state. Plain HTTP where the server decides,
Chromium where the page's CSS or JavaScript does (issue 13, item 12)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.arm import API_VERSION, collection_path, http_job, new_collection, put_job
from tests.support.browser import sign_in
from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import Stack
from tests.support.swagger import validating_client

pytestmark = pytest.mark.e2e

LATER = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)  # a Monday the tests never reach
NEW_YORK = {"timezone_id": "America/New_York", "locale": "en-US"}


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def console(stack: Stack) -> Iterator[httpx.Client]:
    """A browser-like HTTP client, not signed in."""
    with validating_client(base_url=stack.api_url, timeout=10) as client:
        yield client


def _signed_in(client: httpx.Client, key: str) -> str:
    """Sign ``client`` in with ``key``; the session's CSRF token."""
    answer = client.post("/console/signin", data={"key": key})
    assert answer.status_code == 303, answer.text
    match = re.search(r'data-csrf="([^"]+)"', client.get("/").text)
    assert match
    return match.group(1)


def _console_path(collection: str) -> str:
    parts = collection.split("/")
    return f"/console/c/{parts[2]}/{parts[4]}/{parts[8]}"


def _cid(collection: str) -> str:
    parts = collection.split("/")
    return f"{parts[2]}/{parts[4]}/{parts[8]}"


def _collection_row(page_text: str, cid: str) -> str:
    match = re.search(rf'<tr data-collection="{re.escape(cid)}">(.*?)</tr>', page_text, re.S)
    assert match, f"no row for {cid}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def _new_collection_form(**fields: str) -> dict[str, str]:
    return {
        "subscriptionId": "sub1",
        "resourceGroupName": "rg1",
        "jobCollectionName": f"made-{uuid.uuid4().hex[:8]}",
        "sku": "",
        **fields,
    }


def _collection(stack: Stack, sub: str, rg: str, name: str) -> httpx.Response:
    return stack.http.get(collection_path(name, sub, rg), params=API_VERSION)


@pytest.fixture
def reader_key(stack: Stack) -> Iterator[str]:
    name = f"reader-{uuid.uuid4().hex[:6]}"
    answer = stack.http.post("/principals", json={"name": name, "role": "reader"})
    answer.raise_for_status()
    yield answer.json()["key"]
    stack.http.delete(f"/principals/{name}")


# -- collections: job counts and New collection (plain HTTP) -----------------------------------


def test_the_collections_page_counts_the_jobs_of_each_collection(
    stack: Stack, console: httpx.Client
) -> None:
    # Given a collection with two jobs, and a Free one (Azure's quota: 5 jobs) with one
    busy = new_collection(stack.http)
    for name in ("a", "b"):
        put_job(stack.http, busy, name, http_job("http://127.0.0.1:9/", start=LATER))
    free = collection_path(f"free-{uuid.uuid4().hex[:8]}")
    stack.http.put(
        free,
        params=API_VERSION,
        json={"location": "local", "properties": {"sku": {"name": "Free"}}},
    ).raise_for_status()
    put_job(stack.http, free, "only", http_job("http://127.0.0.1:9/", start=LATER))

    # When an administrator opens the console
    _signed_in(console, stack.token)
    page_text = console.get("/").text

    # Then each collection's row says how many jobs it holds, and of how many allowed
    assert "2 jobs" in _collection_row(page_text, _cid(busy))
    assert "1 of 5 jobs" in _collection_row(page_text, _cid(free))


def test_an_administrator_creates_a_collection_from_the_console(
    stack: Stack, console: httpx.Client
) -> None:
    # Given a signed-in administrator
    csrf = _signed_in(console, stack.token)
    form = _new_collection_form(sku="Standard")

    # When they send the New collection form
    answer = console.post("/console/collections", data={"csrf": csrf, **form})

    # Then the collection exists as the API's PUT would make it, and its Jobs page opens
    assert answer.status_code == 303, answer.text
    name = form["jobCollectionName"]
    assert answer.headers["location"] == f"/console/c/sub1/rg1/{name}?done=collection"
    made = _collection(stack, "sub1", "rg1", name)
    assert made.status_code == 200, made.text
    assert made.json()["location"] == "local"
    assert made.json()["properties"]["sku"] == {"name": "Standard"}
    jobs_page = console.get(answer.headers["location"]).text
    assert "The collection was created." in jobs_page
    assert "0 of 50 jobs" in _collection_row(console.get("/").text, f"sub1/rg1/{name}")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"jobCollectionName": "bad name<img>"}, "jobCollectionName", id="name"),
        pytest.param({"subscriptionId": "-sub"}, "subscriptionId", id="subscription"),
        pytest.param({"resourceGroupName": ""}, "resourceGroupName", id="empty-group"),
        pytest.param({"jobCollectionName": "x" * 101}, "jobCollectionName", id="long-name"),
        pytest.param({"sku": "Gold"}, "properties.sku.name", id="sku"),
    ],
)
def test_a_new_collection_is_refused_as_the_api_refuses_it(
    stack: Stack, console: httpx.Client, fields: dict[str, str], field: str
) -> None:
    csrf = _signed_in(console, stack.token)
    form = _new_collection_form(**fields)

    answer = console.post("/console/collections", data={"csrf": csrf, **form})

    # a 400 that names the field, as the API's PUT of the same collection does
    assert answer.status_code == 400, answer.text
    message = re.search(r'<div class="message error" role="alert">(.*?)</div>', answer.text, re.S)
    assert message, answer.text
    assert html.unescape(message.group(1)).startswith(f"{field}"), message.group(1)
    sku = {"properties": {"sku": {"name": form["sku"]}}} if form["sku"] else {}
    if form["resourceGroupName"] and form["jobCollectionName"]:
        api = stack.http.put(
            collection_path(
                form["jobCollectionName"], form["subscriptionId"], form["resourceGroupName"]
            ),
            params=API_VERSION,
            json={"location": "local", **sku},
        )
        assert api.status_code == 400
        assert api.json()["error"]["message"].startswith(field)
    # and what was typed is shown again, escaped
    assert "<img>" not in answer.text
    if "<img>" in form["jobCollectionName"]:
        assert 'value="bad name&lt;img&gt;"' in answer.text


def test_new_collection_never_replaces_an_existing_one(stack: Stack, console: httpx.Client) -> None:
    # Given a Free collection with a job
    name = f"kept-{uuid.uuid4().hex[:8]}"
    path = collection_path(name)
    stack.http.put(
        path, params=API_VERSION, json={"location": "west", "properties": {"sku": {"name": "Free"}}}
    ).raise_for_status()
    put_job(stack.http, path, "j", http_job("http://127.0.0.1:9/", start=LATER))
    csrf = _signed_in(console, stack.token)

    # When the New collection form names it again
    answer = console.post(
        "/console/collections",
        data={"csrf": csrf, **_new_collection_form(jobCollectionName=name)},
    )

    # Then it is a 409, and the collection is as it was
    assert answer.status_code == 409, answer.text
    assert f"a job collection named &#39;{name}&#39; exists" in answer.text
    kept = _collection(stack, "sub1", "rg1", name).json()
    assert kept["location"] == "west"
    assert kept["properties"]["sku"] == {"name": "Free"}


def test_new_collection_needs_a_session_its_csrf_token_and_an_administrator(
    stack: Stack, console: httpx.Client, reader_key: str
) -> None:
    form = _new_collection_form()
    name = form["jobCollectionName"]

    # no session: to the sign-in page
    anonymous = console.post("/console/collections", data=form)
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/")
    # an administrator's session without the token, or with another one: 403
    csrf = _signed_in(console, stack.token)
    assert console.post("/console/collections", data=form).status_code == 403
    stale = console.post("/console/collections", data={"csrf": csrf + "x", **form})
    assert stale.status_code == 403
    assert "stale" in stale.text
    # a reader with a good token: 403, and readers get no form
    with validating_client(base_url=stack.api_url, timeout=10) as reader:
        reader_csrf = _signed_in(reader, reader_key)
        assert "New collection" not in reader.get("/").text
        refused = reader.post("/console/collections", data={"csrf": reader_csrf, **form})
        assert refused.status_code == 403
        assert "is a reader and cannot change anything" in refused.text
    # and none of them made anything
    assert _collection(stack, "sub1", "rg1", name).status_code == 404


def test_the_new_collection_form_is_there_for_a_newcomer(
    stack: Stack, console: httpx.Client
) -> None:
    # the form is on the collections page, prefilled with a subscription and group
    _signed_in(console, stack.token)
    page_text = console.get("/").text

    assert '<form method="post" action="/console/collections">' in page_text
    assert re.search(r'name="subscriptionId" value="[^"]+"', page_text)
    assert re.search(r'name="resourceGroupName" value="[^"]+"', page_text)


# -- the Jobs list: the whole action on hover (Chromium) ----------------------------------------


def test_the_whole_action_shows_on_hover_with_credentials_masked(stack: Stack, page: Page) -> None:
    # Given a job whose URI is longer than its column and carries credentials
    collection = new_collection(stack.http)
    uri = (
        "https://robot:s3cr3t-pw@hooks.example.test/very/long/path/to/the/endpoint"
        "?code=k3y-in-query&page=2"
    )
    put_job(stack.http, collection, "hook", http_job(uri, start=LATER, method="POST"))
    masked = (
        "POST https://robot:******@hooks.example.test/very/long/path/to/the/endpoint"
        "?code=******&page=2"
    )
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection))
    cell = page.locator("#jobs-table tr[data-job=hook] td.action")

    # Then the cell is cut off at rest, its title holds the whole (masked) action
    assert cell.evaluate("cell => cell.scrollWidth > cell.clientWidth")
    expect(cell).to_have_attribute("title", masked)

    # When the pointer rests on it
    cell.hover()

    # Then the whole action shows, nothing cut off
    wait_until(
        lambda: cell.evaluate("cell => cell.scrollWidth <= cell.clientWidth"),
        message="the cell to show the whole action",
    )
    expect(cell).to_have_text(masked)
    # and the credentials are nowhere in the page
    content = page.content()
    assert "s3cr3t-pw" not in content
    assert "k3y-in-query" not in content


# -- the job form: retry fields only when they apply (Chromium) ---------------------------------


def _retry_fields(page: Page) -> tuple[Any, Any]:
    """Count and Interval of the retries (the schedule's end has a Count of its own)."""
    return page.locator("#f-retry-count"), page.locator("#f-retry-interval")


@pytest.mark.parametrize("javascript", [True, False], ids=["with-js", "without-js"])
def test_retry_count_and_interval_show_only_for_fixed_retries(
    stack: Stack, browser: Browser, javascript: bool
) -> None:
    collection = new_collection(stack.http)
    context = browser.new_context(java_script_enabled=javascript)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        sign_in(page, stack.api_url, stack.token)

        # Given the manual new-job form, whose retries are None
        page.goto(stack.api_url + _console_path(collection) + "/new")
        count, interval = _retry_fields(page)
        expect(page.get_by_label("Retries")).to_have_value("None")

        # Then count and interval are hidden
        expect(count).to_be_hidden()
        expect(interval).to_be_hidden()

        # When Fixed is picked they show; back to None they hide again
        page.get_by_label("Retries").select_option("Fixed")
        expect(count).to_be_visible()
        expect(interval).to_be_visible()
        page.get_by_label("Retries").select_option("None")
        expect(count).to_be_hidden()
    finally:
        context.close()


def test_a_job_with_fixed_retries_opens_with_its_retry_fields(stack: Stack, page: Page) -> None:
    collection = new_collection(stack.http)
    body = http_job("http://127.0.0.1:9/", start=LATER)
    body["properties"]["action"]["retryPolicy"] = {
        "retryType": "Fixed",
        "retryCount": 4,
        "retryInterval": "PT1M",
    }
    put_job(stack.http, collection, "retried", body)
    sign_in(page, stack.api_url, stack.token)

    page.goto(stack.api_url + _console_path(collection) + "/jobs/retried")

    count, interval = _retry_fields(page)
    expect(count).to_have_value("4")
    expect(interval).to_have_value("PT1M")


def test_a_hidden_retry_field_does_not_block_or_change_the_save(stack: Stack, page: Page) -> None:
    # Given a new job where Fixed retries got a count out of range, then None was picked
    collection = new_collection(stack.http)
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection) + "/new")
    page.get_by_label("Job name (id)").fill("plain")
    page.get_by_label("URI").fill("http://127.0.0.1:9/plain")
    page.get_by_label("Start", exact=True).fill("2030-01-07T10:00")
    page.get_by_label("Retries").select_option("Fixed")
    page.locator("#f-retry-count").fill("99")
    page.get_by_label("Retries").select_option("None")

    # When they create it
    page.get_by_role("button", name="Create").click()

    # Then it is created, without retries
    expect(page.get_by_role("status")).to_have_text("The job was created.")
    saved = stack.http.get(f"{collection}/jobs/plain", params=API_VERSION).json()
    assert saved["properties"]["action"]["retryPolicy"] == {"retryType": "None"}


# -- times: the browser's zone, UTC on hover ----------------------------------------------------


def test_times_are_sent_as_time_elements_in_utc(stack: Stack, console: httpx.Client) -> None:
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "weekly", _weekly_job())
    _signed_in(console, stack.token)

    jobs_text = console.get(_console_path(collection)).text
    form_text = console.get(_console_path(collection) + "/jobs/weekly").text

    # the table (to the minute), the panel and the form's preview (to the second)
    assert (
        '<time datetime="2030-01-07T10:00:00Z" data-precision="minute">2030-01-07 10:00</time>'
        in jobs_text
    )
    assert (
        '<time datetime="2030-01-07T10:00:00Z" data-precision="second">'
        "2030-01-07 10:00:00 UTC</time>" in jobs_text
    )
    assert (
        '<time datetime="2030-01-14T10:00:00Z" data-precision="second">'
        "2030-01-14 10:00:00 UTC</time>" in form_text
    )
    assert '<script src="/console/static/times.js" defer></script>' in jobs_text
    script = console.get("/console/static/times.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")


def _weekly_job() -> dict[str, Any]:
    body = http_job("http://127.0.0.1:9/", start=LATER)
    body["properties"]["recurrence"] = {"frequency": "Week"}
    return body


def test_times_show_in_the_browsers_zone_with_utc_on_hover(
    stack: Stack, target: HttpTarget, browser: Browser
) -> None:
    # Given a weekly job next due 2030-01-07 10:00 UTC that has run once by hand
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "weekly", _weekly_job())
    stack.http.post(f"{collection}/jobs/weekly/run", params=API_VERSION).raise_for_status()
    wait_until(
        lambda: stack.http.get(f"{collection}/jobs/weekly/history", params=API_VERSION).json()[
            "value"
        ],
        timeout=10,
        message="the run's history",
    )
    context = browser.new_context(**NEW_YORK)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        sign_in(page, stack.api_url, stack.token)

        # When a browser in New York opens the Jobs page
        page.goto(stack.api_url + _console_path(collection))
        row = page.locator("#jobs-table tr[data-job=weekly]")

        # Then the next run reads in New York time (EST), with the UTC time on hover
        next_run = row.locator("td.time time")
        expect(next_run).to_have_text("2030-01-07 05:00")
        expect(next_run).to_have_attribute("title", "2030-01-07 10:00 UTC")
        expect(page.locator("thead abbr[data-local-zone]")).to_have_text("EST")
        expect(page.locator("thead abbr[data-local-zone]")).to_have_attribute(
            "title", "America/New_York"
        )
        panel_next = page.locator("[data-panel=weekly] .counts time")
        expect(panel_next).to_have_text("2030-01-07 05:00:00 EST")
        expect(panel_next).to_have_attribute("title", "2030-01-07 10:00:00 UTC")
        # and so does the last run, whose UTC text is on hover too
        last_run = row.locator("td.last time")
        stamp = last_run.get_attribute("datetime") or ""
        ran = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        expect(last_run).to_have_attribute("title", f"{ran:%Y-%m-%d %H:%M} UTC")
        assert last_run.inner_text() != f"{ran:%Y-%m-%d %H:%M}"

        # and so do the job's results and the details of a result
        page.goto(stack.api_url + _console_path(collection) + "/jobs/weekly/results")
        started = page.locator("#results-table tbody time").first
        expect(started).to_have_attribute("title", re.compile(r"^\d{4}-\d\d-\d\d \S+ UTC$"))
        expect(started).to_have_text(re.compile(r" E[SD]T$"))
        page.locator("#results-table tbody tr").first.press("Enter")
        details = page.locator(".details dd time")
        expect(details).to_have_count(3)  # expected, started, ended
        for index in range(3):
            expect(details.nth(index)).to_have_attribute("title", re.compile(r" UTC$"))
            expect(details.nth(index)).to_have_text(re.compile(r" E[SD]T$"))

        # When they open its Properties: the preview reads in New York time too
        page.goto(stack.api_url + _console_path(collection) + "/jobs/weekly")
        first = page.locator("#preview-list time").first
        expect(first).to_have_text("2030-01-07 05:00:00 EST")
        expect(first).to_have_attribute("title", "2030-01-07 10:00:00 UTC")

        # and after a change, the live preview (drawn by console.js) as well
        page.get_by_label("Hours").fill("22")
        expect(page.locator("#preview-words")).to_contain_text("22:00")
        expect(first).to_have_text("2030-01-07 17:00:00 EST")
        expect(first).to_have_attribute("title", "2030-01-07 22:00:00 UTC")
    finally:
        context.close()


# -- the Jobs list: a running state ---------------------------------------------------------------


def _activity(console: httpx.Client, collection: str, job: str) -> str | None:
    page_text = console.get(_console_path(collection)).text
    row = re.search(rf'<tr tabindex="0" data-job="{job}".*?</tr>', page_text, re.S)
    assert row, page_text
    found = re.search(r'data-activity="(\w+)"', row.group(0))
    return found.group(1) if found else None


def test_a_job_in_progress_shows_as_running_in_the_jobs_list(
    stack: Stack, target: HttpTarget, console: httpx.Client
) -> None:
    # Given a job whose endpoint keeps the call waiting, and an idle neighbour
    collection = new_collection(stack.http)
    held = target.hold("/slow")
    put_job(stack.http, collection, "slow", http_job(f"{target.url}/slow", start=LATER))
    put_job(stack.http, collection, "idle", http_job(f"{target.url}/idle", start=LATER))
    _signed_in(console, stack.token)
    assert _activity(console, collection, "slow") is None

    # When it is started and a worker is calling the endpoint
    stack.http.post(f"{collection}/jobs/slow/run", params=API_VERSION).raise_for_status()
    wait_until(lambda: target.requests_to("/slow"), timeout=10, message="the call")

    # Then its row says Running; the neighbour's says nothing
    wait_until(
        lambda: _activity(console, collection, "slow") == "Running",
        timeout=10,
        message="the row to say Running",
    )
    assert _activity(console, collection, "idle") is None

    # and once the call returns, the row is idle again with its result
    held.set()
    wait_until(
        lambda: _activity(console, collection, "slow") is None,
        timeout=10,
        message="the row to be idle",
    )
    assert "result-completed" in console.get(_console_path(collection)).text
