"""The console: sessions, and the Jobs page in a real browser (Chromium) against the session
stack and a real HTTP target (its schedule in words and form parsing, pure, are
tests/unit/test_console_forms.py)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.arm import API_VERSION, get_job, history, http_job, new_collection, put_job
from tests.support.browser import PHONE, sign_in, snap
from tests.support.helpers import HttpTarget, free_port, wait_until
from tests.support.processes import stop_process
from tests.support.stack import Stack
from tests.support.swagger import validating_client

LATER = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)  # a Monday that jobs in the tests never reach


# -- sessions over HTTP ----------------------------------------------------------------------


@pytest.fixture
def anonymous(stack: Stack) -> Iterator[httpx.Client]:
    with validating_client(base_url=stack.api_url, timeout=10) as client:
        yield client


def _signed_in(client: httpx.Client, key: str, **headers: str) -> str:
    answer = client.post("/console/signin", data={"key": key}, headers=headers)
    assert answer.status_code == 303, answer.text
    page_text = client.get("/").text
    match = re.search(r'data-csrf="([^"]+)"', page_text)
    assert match, page_text
    return match.group(1)


@pytest.mark.e2e
def test_the_session_cookie_is_httponly_strict_and_expires(
    stack: Stack, anonymous: httpx.Client
) -> None:
    answer = anonymous.post("/console/signin", data={"key": stack.token})

    cookie = answer.headers["set-cookie"].lower()
    assert answer.status_code == 303
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "max-age=28800" in cookie
    assert "secure" not in cookie  # plain http here


@pytest.mark.e2e
def test_the_session_cookie_is_secure_behind_https(stack: Stack, anonymous: httpx.Client) -> None:
    # the stack trusts X-Forwarded-Proto from loopback (TAKT_TRUSTED_PROXIES), as from a
    # TLS-terminating proxy
    answer = anonymous.post(
        "/console/signin", data={"key": stack.token}, headers={"X-Forwarded-Proto": "https"}
    )

    assert "; secure" in answer.headers["set-cookie"].lower()


@pytest.mark.e2e
def test_a_wrong_key_a_missing_session_and_a_stale_form_are_refused(
    stack: Stack, anonymous: httpx.Client
) -> None:
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "j", http_job("http://127.0.0.1:9/", start=LATER))
    console = "/console/c/" + "/".join(collection.split("/")[i] for i in (2, 4, 8))

    assert anonymous.post("/console/signin", data={"key": "nope"}).status_code == 401
    assert anonymous.get(console).headers["location"] == "/"  # sign in first
    csrf = _signed_in(anonymous, stack.token)
    stale = anonymous.post(f"{console}/jobs/j/state", data={"csrf": "x" + csrf, "enabled": "0"})
    assert stale.status_code == 403
    assert "stale" in stale.text
    assert get_job(stack.http, collection, "j")["properties"]["state"] == "Enabled"


@pytest.mark.e2e
def test_signing_out_ends_the_session_in_redis(stack: Stack, anonymous: httpx.Client) -> None:
    csrf = _signed_in(anonymous, stack.token)
    sid = anonymous.cookies["takt_session"]

    anonymous.post("/console/signout", data={"csrf": csrf})

    anonymous.cookies.set("takt_session", sid)
    assert anonymous.get("/").text.count("Sign in to Takt") == 1


@pytest.mark.e2e
def test_the_preview_answers_occurrences_of_an_unsaved_schedule(
    stack: Stack, anonymous: httpx.Client
) -> None:
    assert anonymous.post("/console/preview", json={}).status_code == 401
    csrf = _signed_in(anonymous, stack.token)
    body = {"startTime": "2030-01-07T10:00:00Z", "recurrence": {"frequency": "Week", "count": 3}}

    answer = anonymous.post(
        "/console/preview", params={"count": 5}, json=body, headers={"X-CSRF-Token": csrf}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["value"] == [
        "2030-01-07T10:00:00Z",
        "2030-01-14T10:00:00Z",
        "2030-01-21T10:00:00Z",
    ]
    assert answer.json()["words"] == "every week on Monday at 10:00, UTC, 3 times"
    bad = anonymous.post(
        "/console/preview",
        json={"recurrence": {"frequency": "Fortnight"}},
        headers={"X-CSRF-Token": csrf},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("recurrence.frequency")


# -- in the browser --------------------------------------------------------------------------


def _console_path(collection: str) -> str:
    parts = collection.split("/")
    return f"/console/c/{parts[2]}/{parts[4]}/{parts[8]}"


def _row(page: Page, name: str) -> Any:
    return page.locator(f"#jobs-table tbody tr[data-job='{name}']")


def _add_neighbours(stack: Stack, collection: str) -> None:
    """A few more jobs of other kinds, so the screenshot shows what the table can say."""
    later = "2030-01-07T10:00:00Z"
    jobs = {
        "purge-history": {
            "displayName": "Purge old history",
            "startTime": later,
            "action": {"type": "Command", "command": "PurgeHistory --older-than P60D"},
            "recurrence": {
                "frequency": "Week",
                "schedule": {
                    "weekDays": ["Monday", "Wednesday", "Friday"],
                    "hours": [10, 22],
                    "minutes": [0],
                },
                "timeZone": "Europe/Berlin",
            },
        },
        "queue-tick": {
            "displayName": "Queue tick",
            "state": "Disabled",
            "startTime": later,
            "action": {
                "type": "StorageQueue",
                "queueMessage": {
                    "storageAccount": "devstoreaccount1",
                    "queueName": "ticks",
                    "message": "tick",
                },
            },
            "recurrence": {"frequency": "Minute", "interval": 15},
        },
        "report": {
            "displayName": "Monthly report",
            "startTime": later,
            "action": {"type": "Celery", "celeryTask": {"name": "reports.tasks.monthly"}},
            "recurrence": {
                "frequency": "Month",
                "schedule": {"monthlyOccurrences": [{"day": "Friday", "Occurrence": -1}]},
            },
        },
    }
    for name, properties in jobs.items():
        put_job(stack.http, collection, name, {"properties": properties})


@pytest.mark.e2e
def test_create_from_the_http_template_start_and_read_the_details(
    stack: Stack, target: HttpTarget, page: Page, screenshots: Path
) -> None:
    # Given a signed-in administrator on an empty collection
    collection = new_collection(stack.http)
    sign_in(page, stack.api_url, stack.token)
    page.get_by_label("Collection").select_option(value=_console_path(collection))
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()

    # When they create a job from the HTTP template, scheduled far ahead, and start it
    page.get_by_role("link", name="HTTP request", exact=True).click()
    page.get_by_label("Job name (id)").fill("ping")
    page.get_by_label("Display name").fill("Ping the target")
    page.get_by_label("URI").fill(f"{target.url}/console-ping")
    page.get_by_label("Start", exact=True).fill("2030-01-07T10:00")
    page.get_by_label("Frequency").select_option("Week")
    expect(page.locator("#preview-words")).to_have_text("every week on Monday at 10:00, UTC")
    snap(page, screenshots, "new-job")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status")).to_have_text("The job was created.")
    row = _row(page, "ping")
    expect(row).to_contain_text("Ping the target")
    expect(row).to_contain_text("every week on Monday at 10:00, UTC")
    expect(row).to_contain_text(f"GET {target.url}/console-ping")
    panel = page.locator("[data-panel=ping]")
    panel.get_by_role("button", name="Start").click()
    expect(page.get_by_role("status")).to_contain_text("Started")

    # Then the target is called, and Last execution → Details shows Completed with the code
    wait_until(lambda: target.requests_to("/console-ping"), timeout=10, message="the call")
    wait_until(lambda: history(stack.http, collection, "ping"), timeout=10, message="history")
    _add_neighbours(stack, collection)
    page.reload()
    expect(row).to_contain_text("Completed")
    row.get_by_role("button", name="Actions for Ping the target").click()
    expect(page.get_by_role("menu")).to_be_visible()
    snap(page, screenshots, "jobs", docs_name="console-jobs.png")
    page.keyboard.press("Escape")
    panel.get_by_role("link", name="Details…").click()
    expect(page.locator("#result-status")).to_have_text("Completed")
    expect(page.locator("#result-message")).to_contain_text("'200'")
    snap(page, screenshots, "details")  # docs/console-details.png: test_console_live.py

    # and All results… lists it; Enter on a result opens its details too
    page.get_by_role("link", name="All results…").click()
    expect(page).to_have_url(re.compile(r"/jobs/ping/results$"))
    page.wait_for_load_state()  # the scripts that submit the filter on change have run
    page.get_by_label("Status").select_option("Failed")
    expect(page.get_by_text("No results with status Failed.")).to_be_visible()
    page.wait_for_load_state()
    page.get_by_label("Status").select_option(label="all")
    page.locator("#results-table tbody tr").first.press("Enter")
    expect(page.locator("#result-status")).to_have_text("Completed")


@pytest.mark.e2e
def test_disable_rename_and_change_owner_from_the_context_menu(stack: Stack, page: Page) -> None:
    # Given a job and a second administrator
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "nightly", http_job("http://127.0.0.1:9/", start=LATER))
    other = f"ops-{uuid.uuid4().hex[:6]}"
    stack.http.post("/principals", json={"name": other, "role": "admin"}).raise_for_status()
    try:
        sign_in(page, stack.api_url, stack.token)
        page.goto(stack.api_url + _console_path(collection))
        row = _row(page, "nightly")
        menu = page.get_by_role("menu")

        # When they untick Enabled in the row's context menu (right-click)
        row.click(button="right")
        expect(menu.get_by_role("menuitemcheckbox", name="Enabled")).to_be_checked()
        menu.get_by_role("menuitemcheckbox", name="Enabled").click()

        # Then the job is disabled and Start is unavailable, in the menu and the panel
        expect(row).to_contain_text("Disabled")
        row.click(button="right")
        expect(menu.get_by_role("menuitem", name="Start")).to_be_disabled()
        page.keyboard.press("Escape")
        expect(menu).to_be_hidden()
        expect(
            page.locator("[data-panel=nightly]").get_by_role("button", name="Start")
        ).to_be_disabled()
        # and the API refuses to run it anyway
        run = stack.http.post(f"{collection}/jobs/nightly/run", params=API_VERSION)
        assert run.status_code == 409

        # When they rename it with the keyboard-reachable menu button
        row.get_by_role("button", name="Actions for nightly").focus()
        page.keyboard.press("Enter")
        page.keyboard.press("ArrowDown")
        expect(menu.get_by_role("menuitem", name="Rename…")).to_be_focused()
        page.keyboard.press("Enter")
        page.get_by_label("New name").fill("Nightly report")
        page.get_by_role("button", name="OK").click()

        # Then the table shows the new name and the id is unchanged
        expect(row.locator("th")).to_contain_text("Nightly report")
        assert get_job(stack.http, collection, "nightly")["properties"]["displayName"] == (
            "Nightly report"
        )

        # When they change the owner to the other administrator
        row.click(button="right")
        menu.get_by_role("menuitem", name="Change owner…").click()
        page.get_by_label("New owner (an administrator)").select_option(other)
        page.get_by_role("button", name="OK").click()

        # Then the owner column says so
        expect(page.get_by_role("status")).to_have_text("The owner was changed.")
        expect(row).to_contain_text(other)
        assert get_job(stack.http, collection, "nightly")["properties"]["owner"] == other
    finally:
        stack.http.delete(f"/principals/{other}")


@pytest.mark.e2e
def test_editing_the_schedule_changes_the_preview_and_the_job(stack: Stack, page: Page) -> None:
    # Given a daily job
    collection = new_collection(stack.http)
    body = http_job("http://127.0.0.1:9/", start=LATER)
    body["properties"]["recurrence"] = {"frequency": "Day"}
    put_job(stack.http, collection, "report", body)
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection))

    # When they open Properties (double-click) and make it Monday/Wednesday/Friday 10 and 22
    _row(page, "report").dblclick()
    preview = page.locator("#preview-list li")
    expect(preview.nth(1)).to_have_text("2030-01-08 10:00:00 UTC")
    page.get_by_label("Frequency").select_option("Week")
    for day in ("Mon", "Wed", "Fri"):
        page.get_by_label(day, exact=True).check()
    page.get_by_label("Hours").fill("10, 22")

    # Then the preview follows as they type
    expect(page.locator("#preview-words")).to_have_text(
        "every Monday, Wednesday and Friday at 10:00 and 22:00, UTC"
    )
    expect(preview.nth(1)).to_have_text("2030-01-07 22:00:00 UTC")
    expect(preview.nth(2)).to_have_text("2030-01-09 10:00:00 UTC")
    expect(preview).to_have_count(10)
    # and a bad value is named, not saved
    page.get_by_label("Hours").fill("10, 25")
    expect(page.locator("#preview-error")).to_have_text("hours: 25 is out of range 0..23")
    page.get_by_label("Hours").fill("10, 22")
    expect(page.locator("#preview-error")).to_be_hidden()

    # When they save
    page.get_by_role("button", name="OK").click()

    # Then the job has the new schedule
    expect(_row(page, "report")).to_contain_text("every Monday, Wednesday and Friday")
    saved = get_job(stack.http, collection, "report")["properties"]["recurrence"]
    assert saved["schedule"] == {
        "weekDays": ["Monday", "Wednesday", "Friday"],
        "hours": [10, 22],
    }


@pytest.mark.e2e
def test_a_reader_sees_everything_and_changes_nothing(
    stack: Stack, page: Page, screenshots: Path
) -> None:
    # Given a reader and a job
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "watched", http_job("http://127.0.0.1:9/", start=LATER))
    name = f"reader-{uuid.uuid4().hex[:6]}"
    answer = stack.http.post("/principals", json={"name": name, "role": "reader"})
    answer.raise_for_status()
    try:
        # When the reader signs in
        sign_in(page, stack.api_url, answer.json()["key"])
        page.goto(stack.api_url + _console_path(collection))
        row = _row(page, "watched")

        # Then they see the job, but no Create job, and every change is unavailable
        expect(row).to_contain_text("Enabled")
        expect(page.get_by_role("heading", name="Create job")).to_have_count(0)
        row.click(button="right")
        menu = page.get_by_role("menu")
        for item in ("Rename…", "Change owner…", "Start", "Delete"):
            expect(menu.get_by_role("menuitem", name=item)).to_be_disabled()
        expect(menu.get_by_role("menuitemcheckbox", name="Enabled")).to_be_disabled()
        menu.get_by_role("menuitem", name="Properties…").click()
        expect(page.get_by_text("You are a reader")).to_be_visible()
        expect(page.get_by_label("Display name")).to_be_disabled()
        expect(page.get_by_role("button", name="OK")).to_have_count(0)
        snap(page, screenshots, "reader-properties")

        # and the server refuses a change sent anyway, with a message, not a 500
        csrf = page.locator("body").get_attribute("data-csrf")
        refused = page.request.post(
            stack.api_url + _console_path(collection) + "/jobs/watched/start",
            form={"csrf": csrf or ""},
        )
        assert refused.status == 403
        assert "is a reader and cannot change anything" in refused.text()
    finally:
        stack.http.delete(f"/principals/{name}")


@pytest.mark.e2e
def test_a_final_job_shows_as_final_and_cannot_be_edited(
    stack: Stack, target: HttpTarget, page: Page
) -> None:
    # Given a one-shot job that has run (Completed)
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "once", http_job(f"{target.url}/once"))
    wait_until(
        lambda: get_job(stack.http, collection, "once")["properties"]["state"] == "Completed",
        timeout=10,
        message="the job to complete",
    )
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection))
    row = _row(page, "once")

    # Then its menu offers Delete but no editing, and Properties is read-only
    expect(row).to_contain_text("Completed")
    row.click(button="right")
    menu = page.get_by_role("menu")
    expect(menu.get_by_role("menuitem", name="Rename…")).to_be_disabled()
    expect(menu.get_by_role("menuitem", name="Start")).to_be_disabled()
    expect(menu.get_by_role("menuitem", name="Delete")).to_be_enabled()
    menu.get_by_role("menuitem", name="Properties…").click()
    expect(page.get_by_text("it is final and can be deleted, not changed")).to_be_visible()
    expect(page.get_by_label("URI")).to_be_disabled()


@pytest.mark.e2e
def test_delete_and_manual_json_create(stack: Stack, page: Page) -> None:
    # Given an empty collection
    collection = new_collection(stack.http)
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection))

    # When they create a Command job from pasted JSON (Manual…)
    page.get_by_role("link", name="Manual…").click()
    page.get_by_label("Job name (id)").fill("verify")
    page.get_by_label("Job JSON").check()
    page.get_by_label("The job's properties").fill(
        '{"properties": {"startTime": "2030-01-01T03:00:00Z",'
        ' "action": {"type": "Command", "command": "VerifyStore"},'
        ' "recurrence": {"frequency": "Day"}}}'
    )
    page.get_by_role("button", name="Create").click()

    # Then it is listed, and Delete (confirmed) removes it
    row = _row(page, "verify")
    expect(row).to_contain_text("Command: VerifyStore")
    row.click(button="right")
    page.get_by_role("menu").get_by_role("menuitem", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text("The job was deleted.")
    expect(row).to_have_count(0)
    gone = stack.http.get(f"{collection}/jobs/verify", params=API_VERSION)
    assert gone.status_code == 404


@pytest.mark.e2e
def test_a_refused_form_shows_the_rule_and_keeps_the_input(stack: Stack, page: Page) -> None:
    collection = new_collection(stack.http)
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection) + "/new?template=purge-history")

    page.get_by_label("Job name (id)").fill("purge")
    page.get_by_label("Command line").fill("PurgeHistory --older-than yesterday")
    page.get_by_role("button", name="Create").click()

    expect(page.get_by_role("alert").first).to_contain_text("properties.action.command")
    expect(page.get_by_label("Command line")).to_have_value("PurgeHistory --older-than yesterday")


@pytest.mark.e2e
def test_the_console_fits_a_phone(stack: Stack, browser: Browser, screenshots: Path) -> None:
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "small", http_job("http://127.0.0.1:9/", start=LATER))
    context = browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    try:
        phone = context.new_page()
        sign_in(phone, stack.api_url, stack.token)
        phone.goto(stack.api_url + _console_path(collection))
        expect(_row(phone, "small")).to_be_visible()
        width = phone.evaluate("document.documentElement.scrollWidth")
        snap(phone, screenshots, "phone-jobs")
        assert width <= PHONE["width"]
    finally:
        context.close()


# -- Flower ----------------------------------------------------------------------------------


FLOWER_LOGIN = ("takt", "console-test-login")


@pytest.fixture
def flower(stack: Stack, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    login = ":".join(FLOWER_LOGIN)
    env = {**stack.env, "TAKT_FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": login}
    log = tmp_path / "flower.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "flower"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url + "/healthcheck"), timeout=30, message="Flower")
        yield url
    finally:
        stop_process(process)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.e2e
def test_a_run_shows_in_flower_from_the_console_link(
    stack: Stack, target: HttpTarget, flower: str, page: Page, screenshots: Path
) -> None:
    # Given Flower watching the stack, and a job that was started by hand
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "seen", http_job(f"{target.url}/seen", start=LATER))
    jid = "/".join(collection.split("/")[i] for i in (2, 4, 8)) + "/seen"
    run = stack.http.post(f"{collection}/jobs/seen/run", params=API_VERSION)
    assert run.status_code == 200, run.text

    # When the run is recorded and the console's details link to Flower
    wait_until(lambda: history(stack.http, collection, "seen"), timeout=10, message="history")
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection))
    page.locator("[data-panel=seen]").get_by_role("link", name="Details…").click()
    link = page.locator("#flower-link").get_attribute("href") or ""
    task_path = re.sub(r"^https?://[^/]+", "", link)
    task_id = task_path.rsplit("/", 1)[1]

    # Then Flower's API knows that task, with the job id in its arguments
    tasks = wait_until(
        lambda: httpx.get(flower + "/api/tasks", auth=FLOWER_LOGIN, timeout=5).json().get(task_id),
        timeout=15,
        message="Flower to see the task",
    )
    assert jid in str(tasks["args"])
    # and the task's page in Flower loads in the browser, behind Flower's login
    basic = base64.b64encode(":".join(FLOWER_LOGIN).encode()).decode()
    page.set_extra_http_headers({"Authorization": f"Basic {basic}"})
    page.goto(flower + task_path)
    expect(page.get_by_text(jid).first).to_be_visible()
    snap(page, screenshots, "flower-task")
