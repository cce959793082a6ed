"""The console shows what is happening (issue 13, items 12 and 15): a job's live status
after Start without a reload, a running state from the execution ledger, flash messages
that go away, the run history and next runs drawn as inline SVG, and Flower links that say
when Flower no longer holds the task."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from scheduler.console.charts import (
    Run,
    duration_text,
    in_words,
    next_runs_chart,
    nice_ceiling,
    run_history_chart,
)
from scheduler.console.flower_probe import FlowerProbe
from scheduler.store.activity import Activity, in_progress
from scheduler.store.jobs import JobStore
from scheduler.store.ledger import Ledger, LedgerEntry
from tests.support.arm import API_VERSION, history, http_job, new_collection, put_job
from tests.support.browser import sign_in, snap
from tests.support.helpers import HttpTarget, free_port, wait_until
from tests.support.processes import stop_process
from tests.support.stack import Stack
from tests.support.swagger import validating_client

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LATER = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)  # a Monday the tests never reach
SVG = "{http://www.w3.org/2000/svg}"
FLOWER_LOGIN = ("takt", "live-test-flower-password")


# -- the pictures (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "top"),
    [
        pytest.param(0.016, 0.02, id="milliseconds"),
        pytest.param(0.2, 0.2, id="exact"),
        pytest.param(3.0, 5.0, id="to-five"),
        pytest.param(11.0, 20.0, id="to-twenty"),
        pytest.param(1000.0, 1000.0, id="power-of-ten"),
        pytest.param(0.0, 1.0, id="zero"),
    ],
)
def test_the_duration_axis_ends_at_a_round_number(value: float, top: float) -> None:
    assert nice_ceiling(value) == pytest.approx(top)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0 s"), (0.266, "0.266 s"), (2.5, "2.5 s"), (42.0, "42 s"), (200.0, "3 min 20 s")],
)
def test_a_duration_reads_for_people(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_how_far_off_a_run_is_reads_for_people() -> None:
    assert in_words(timedelta(seconds=40)) == "in 40 s"
    assert in_words(timedelta(minutes=5)) == "in 5 min"
    assert in_words(timedelta(hours=3, minutes=10)) == "in 3 h 10 min"
    assert in_words(timedelta(days=3)) == "in 3 days"


def _svg(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def test_the_run_history_draws_a_bar_per_run_scaled_and_coloured_by_status() -> None:
    # Given three runs, oldest first: 0.1 s completed, 0.4 s failed, 0.2 s postponed
    runs = [
        Run("Completed", NOW, 0.1, "/r/1"),
        Run("Failed", NOW + timedelta(minutes=1), 0.4, "/r/2"),
        Run("Postponed", NOW + timedelta(minutes=2), 0.2, "/r/3"),
    ]

    # When the chart is drawn
    svg = _svg(run_history_chart(runs))

    # Then each run is a bar linked to its details, coloured by its status, in order
    bars = svg.findall(f".//{SVG}rect")
    assert [b.get("class") for b in bars] == [
        "run run-completed",
        "run run-failed",
        "run run-postponed",
    ]
    assert [a.get("href") for a in svg.findall(f".//{SVG}a")] == ["/r/1", "/r/2", "/r/3"]
    xs = [float(b.get("x", "0")) for b in bars]
    assert xs == sorted(xs)
    # and bar heights are proportional to the durations (the axis ends at 0.5 s)
    heights = [float(b.get("height", "0")) for b in bars]
    assert heights[1] == pytest.approx(4 * heights[0], rel=0.02)
    assert heights[2] == pytest.approx(2 * heights[0], rel=0.02)
    labels = [t.text for t in svg.findall(f"{SVG}text")]
    assert "0.5 s" in labels
    # and each bar says what it was, in words, on hover
    assert bars[1].findtext(f"{SVG}title") == "Failed · 0.4 s · 2026-11-30 12:01:00 UTC"
    assert svg.get("role") == "img"
    assert "3 runs" in (svg.get("aria-label") or "")


def test_a_run_of_no_time_still_shows_and_no_runs_draw_nothing() -> None:
    svg = _svg(run_history_chart([Run("Completed", NOW, 0.0, "/r/1")]))

    assert float(svg.findall(f".//{SVG}rect")[0].get("height", "0")) >= 2
    assert run_history_chart([]) == ""


def test_the_charts_escape_what_they_are_given() -> None:
    hostile = '"><script>alert(1)</script>'

    markup = str(run_history_chart([Run(hostile, NOW, 1.0, hostile)]))

    assert "<script>" not in markup
    _svg(markup)  # still well-formed


def test_the_next_runs_lie_on_a_line_from_now_in_proportion() -> None:
    # Given runs in 1 h, 2 h and 4 h
    fires = [NOW + timedelta(hours=h) for h in (1, 2, 4)]

    # When the timeline is drawn
    svg = _svg(next_runs_chart(NOW, fires))

    # Then a dot per run, in time order, spaced as the times are
    dots = svg.findall(f"{SVG}circle")
    xs = [float(d.get("cx", "0")) for d in dots]
    now_x = float(svg.findall(f"{SVG}line")[1].get("x1", "0"))
    assert len(dots) == 3
    assert xs[1] - now_x == pytest.approx(2 * (xs[0] - now_x), rel=0.01)
    assert xs[2] - now_x == pytest.approx(4 * (xs[0] - now_x), rel=0.01)
    assert dots[0].findtext(f"{SVG}title") == "2026-11-30 13:00:00 UTC (in 1 h)"
    assert next_runs_chart(NOW, []) == ""


def test_runs_far_off_are_spread_over_the_line_with_the_wait_labelled() -> None:
    # Given a weekly job whose first run is a year away
    first = NOW + timedelta(days=365)
    fires = [first + timedelta(weeks=w) for w in range(4)]

    # When the timeline is drawn
    svg = _svg(next_runs_chart(NOW, fires))

    # Then the runs are spread over the whole line, evenly, not piled at its end
    xs = [float(d.get("cx", "0")) for d in svg.findall(f"{SVG}circle")]
    assert xs[3] - xs[0] > 400
    assert xs[2] - xs[1] == pytest.approx(xs[1] - xs[0], rel=0.01)
    # and the wait before the first one is a dashed stretch that says how long it is
    assert svg.findall(f"{SVG}line[@class='wait']")
    assert "first in 365 days" in [t.text for t in svg.findall(f"{SVG}text")]


# -- a job in progress: the execution ledger and the leases (real Valkey) -------------------


def _enter(store: JobStore, entry: LedgerEntry) -> None:
    Ledger(store, 3_600_000).expect(entry, 0)


def test_a_job_is_in_progress_while_the_ledger_owes_an_attempt(store: JobStore) -> None:
    # Given jobs: idle, queued (a manual run handed to the broker), running (a worker holds
    # the lease), waiting for its retry, and one whose id starts like another's
    cid = "sub/rg/coll"
    queued, running, retrying = f"{cid}/queued", f"{cid}/running", f"{cid}/retrying"
    idle, lookalike = f"{cid}/idle", f"{cid}/queued-too"
    _enter(store, LedgerEntry(queued, 1_000, manual=True))
    run = LedgerEntry(running, 2_000)
    _enter(store, run)
    assert store.acquire_lease(running, 2_000, "m0", 60_000, run.member).taken
    _enter(store, LedgerEntry(retrying, 3_000, attempt=1))
    _enter(store, LedgerEntry(lookalike, 4_000))
    _enter(store, LedgerEntry("sub/rg/other/queued", 5_000))

    # When the console asks about the list at once, and about each job alone
    listed = in_progress(store, [idle, queued, running, retrying])

    # Then only the jobs with an attempt in progress are named, with what they are doing
    assert listed == {
        queued: Activity.QUEUED,
        running: Activity.RUNNING,
        retrying: Activity.RETRYING,
    }
    assert in_progress(store, [queued]) == {queued: Activity.QUEUED}
    assert in_progress(store, [running]) == {running: Activity.RUNNING}
    assert in_progress(store, [idle]) == {}
    assert in_progress(store, []) == {}


def test_a_recorded_attempt_is_no_longer_in_progress(store: JobStore) -> None:
    # Given a running attempt
    jid = "sub/rg/coll/done"
    entry = LedgerEntry(jid, 1_000)
    _enter(store, entry)
    store.acquire_lease(jid, 1_000, "m0", 60_000, entry.member)

    # When the worker records it (the ledger forgets it in the recording script)
    Ledger(store, 3_600_000).forget([entry])

    # Then the job is idle
    assert in_progress(store, [jid]) == {}


# -- Flower, asked by the API (no browser involved) -----------------------------------------


def test_the_flower_probe_is_graceful_without_flower_or_login() -> None:
    task = str(uuid.uuid4())
    nobody = f"http://127.0.0.1:{free_port()}"

    unreachable = FlowerProbe(nobody, ":".join(FLOWER_LOGIN)).ask(task)
    no_login = FlowerProbe(nobody, None).ask(task)

    assert unreachable.held is None
    assert unreachable.message == f"Flower does not answer at {nobody}."
    assert no_login.held is None
    assert "login" in no_login.message
    assert FLOWER_LOGIN[1] not in repr(FlowerProbe(nobody, ":".join(FLOWER_LOGIN)))
    with pytest.raises(ValueError, match="task id"):
        FlowerProbe(nobody, None).ask("../../api/workers")


# -- in the browser ----------------------------------------------------------------------------


def _run_and_wait(stack: Stack, collection: str, name: str, count: int) -> None:
    """Start the job by hand and wait until its history holds ``count`` runs."""
    run = stack.http.post(f"{collection}/jobs/{name}/run", params=API_VERSION)
    assert run.status_code == 200, run.text
    wait_until(
        lambda: len(history(stack.http, collection, name)) == count,
        timeout=15,
        message=f"run {count} recorded",
    )


def _console_path(collection: str) -> str:
    parts = collection.split("/")
    return f"/console/c/{parts[2]}/{parts[4]}/{parts[8]}"


@pytest.mark.e2e
def test_after_start_the_job_shows_running_then_its_result_without_a_reload(
    stack: Stack, target: HttpTarget, page: Page
) -> None:
    # Given a job whose target holds the call until the test lets it go
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "slow", http_job(f"{target.url}/slow", start=LATER))
    release = target.hold("/slow")
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection) + "?job=slow")
    panel = page.locator("[data-panel=slow]")
    expect(panel.get_by_text("It has not run yet.")).to_be_visible()

    # When they press Start
    panel.get_by_role("button", name="Start").click()
    expect(page.get_by_role("status")).to_contain_text("Started")
    page.evaluate("window.stillTheSamePage = true")

    # Then the panel says the job is running while the call is held
    wait_until(lambda: target.requests_to("/slow"), timeout=10, message="the call")
    expect(panel.locator("[data-activity-badge]")).to_have_text("Running")
    # and once the call answers, the result shows, with no reload
    release.set()
    expect(panel.locator("[data-last-status]")).to_have_text("Completed", timeout=15_000)
    expect(panel.locator("[data-live-activity]")).to_be_hidden()
    expect(panel.get_by_text("It has not run yet.")).to_be_hidden()
    expect(panel.locator("[data-count=executions]")).to_have_text("1")
    assert page.evaluate("window.stillTheSamePage") is True
    details = panel.get_by_role("link", name="Details…")
    expect(details).to_have_attribute("href", re.compile(r"/jobs/slow/results/\d+-m0-manual$"))


@pytest.mark.e2e
def test_the_started_banner_goes_away_and_does_not_come_back_on_reload(
    stack: Stack, page: Page
) -> None:
    # Given a job
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "once", http_job("http://127.0.0.1:9/", start=LATER))
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection) + "?job=once")

    # When they start it
    page.locator("[data-panel=once]").get_by_role("button", name="Start").click()
    banner = page.get_by_role("status")
    expect(banner).to_contain_text("Started")

    # Then the address no longer asks for the banner, which goes away by itself
    expect(page).not_to_have_url(re.compile(r"done="))
    assert "job=once" in page.url
    expect(banner).to_be_hidden(timeout=10_000)
    # and a reload does not bring it back
    page.reload()
    expect(page.locator("[data-panel=once]")).to_be_visible()
    expect(page.get_by_role("status")).to_have_count(0)


@pytest.fixture
def console(stack: Stack) -> Iterator[httpx.Client]:
    with validating_client(base_url=stack.api_url, timeout=10) as client:
        yield client


@pytest.mark.e2e
def test_the_status_endpoint_names_a_running_job_to_any_signed_in_reader(
    stack: Stack, target: HttpTarget, console: httpx.Client
) -> None:
    # Given a job whose call is held, started through the API, and a reader
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "held", http_job(f"{target.url}/held", start=LATER))
    status = _console_path(collection) + "/jobs/held/status"
    release = target.hold("/held")
    name = f"reader-{uuid.uuid4().hex[:6]}"
    key = stack.http.post("/principals", json={"name": name, "role": "reader"}).json()["key"]
    try:
        assert console.get(status).status_code == 401  # not signed in
        assert console.post("/console/signin", data={"key": key}).status_code == 303
        assert console.get(status).json()["activity"] is None
        run = stack.http.post(f"{collection}/jobs/held/run", params=API_VERSION)
        assert run.status_code == 200, run.text

        # When the reader asks while the worker holds the call
        wait_until(lambda: target.requests_to("/held"), timeout=10, message="the call")
        answer = console.get(status)

        # Then the job is Running, with no result yet; then idle with its result
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert answer.json()["activity"] == "Running"
        assert answer.json()["last"] is None
        release.set()
        done = wait_until(
            lambda: (s := console.get(status).json())["activity"] is None and s["last"] and s,
            timeout=15,
            message="the run to be recorded",
        )
        assert done["last"]["status"] == "Completed"
        assert done["last"]["flowerTask"]
        missing = console.get(_console_path(collection) + "/jobs/nope/status")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "NotFound"
    finally:
        release.set()
        stack.http.delete(f"/principals/{name}")


@pytest.mark.e2e
def test_the_job_page_draws_its_run_history_and_next_runs(
    stack: Stack, target: HttpTarget, page: Page, screenshots: Path
) -> None:
    # Given a weekly job that ran three times by hand: completed, failed, completed
    collection = new_collection(stack.http)
    body = http_job(
        f"{target.url}/charted",
        start=LATER,
        displayName="Ping the target",
        recurrence={"frequency": "Week"},
    )
    put_job(stack.http, collection, "charted", body)
    target.script("/charted", [200, 500, 200])
    for count in (1, 2, 3):
        _run_and_wait(stack, collection, "charted", count)

    # When they open the job's page (All results… from the panel)
    sign_in(page, stack.api_url, stack.token)
    page.goto(stack.api_url + _console_path(collection) + "?job=charted")
    page.locator("[data-panel=charted]").get_by_role("link", name="All results…").click()

    # Then the run history is a bar per run, coloured by status
    chart = page.locator("svg.run-history")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.run")).to_have_count(3)
    expect(chart.locator("rect.run-completed")).to_have_count(2)
    expect(chart.locator("rect.run-failed")).to_have_count(1)
    fill = chart.locator("rect.run-failed").evaluate("bar => getComputedStyle(bar).fill")
    assert fill == "rgb(179, 38, 30)"  # --bad: the stylesheet colours it, under the CSP
    # and the next runs are ten dots on a timeline, the first at the job's start
    timeline = page.locator("svg.next-runs")
    expect(timeline.locator("circle.fire")).to_have_count(10)
    expect(timeline.locator("circle.fire").first.locator("title")).to_contain_text(
        "2030-01-07 10:00:00 UTC"
    )
    # and the job's status is there too, with the results below
    expect(page.locator(".job-now [data-last-status]")).to_have_text("Completed")
    expect(page.locator("#results-table tbody tr")).to_have_count(3)
    snap(page, screenshots, "job-page", docs_name="console-details.png")

    # and a bar opens that run's details
    chart.locator("a").nth(1).click()
    expect(page.locator("#result-status")).to_have_text("Failed")


# -- Flower ----------------------------------------------------------------------------------


@dataclass
class FlowerSide:
    """An API that knows Flower's address and login, and a Flower to start on that port."""

    api_url: str
    flower_url: str
    env: dict[str, str]


@pytest.fixture
def flower_side(stack: Stack, tmp_path: Path) -> Iterator[FlowerSide]:
    flower_port, api_port = free_port(), free_port()
    env = {
        **stack.env,
        "TAKT_API_PORT": str(api_port),
        "TAKT_FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": ":".join(FLOWER_LOGIN),
    }
    api = _spawn(["api"], env, tmp_path / "api.log")
    side = FlowerSide(f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{flower_port}", env)
    try:
        wait_until(lambda: _answers(side.api_url + "/healthz"), timeout=60, message="the API")
        yield side
    finally:
        stop_process(api)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler", *args],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.e2e
def test_task_in_flower_says_when_flower_does_not_hold_the_task(
    stack: Stack, target: HttpTarget, flower_side: FlowerSide, page: Page, tmp_path: Path
) -> None:
    # Given a job that ran while Flower was down
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "f", http_job(f"{target.url}/f", start=LATER))
    _run_and_wait(stack, collection, "f", 1)
    sign_in(page, flower_side.api_url, stack.token)
    jobs_page = flower_side.api_url + _console_path(collection) + "?job=f"
    page.goto(jobs_page)
    panel = page.locator("[data-panel=f]")

    # Then its Flower link says that Flower does not answer (and the console works on)
    note = panel.locator("[data-flower-note]")
    expect(note).to_have_text(f"Flower does not answer at {flower_side.flower_url}.")

    # When Flower starts (as after a restart, it holds nothing from before)
    flower = _spawn(["flower"], flower_side.env, tmp_path / "flower.log")
    try:
        wait_until(lambda: _answers(flower_side.flower_url + "/healthcheck"), timeout=30)
        page.reload()
        # Then the old run's link says Flower no longer holds its task
        expect(note).to_contain_text("Flower no longer holds this task")
        expect(panel.locator("[data-flower-link]")).to_have_attribute("data-flower-held", "false")
        expect(panel.locator("a.flower-gone")).to_have_count(1)
        old_task = panel.locator("[data-flower-link]").get_attribute("data-flower-task")

        # When the job runs again while Flower watches
        _run_and_wait(stack, collection, "f", 2)
        new_task = wait_until(
            lambda: (
                (t := panel.locator("[data-flower-link]").get_attribute("data-flower-task"))
                != old_task
                and t
            ),
            timeout=15,
            message="the panel to show the new run",
        )
        wait_until(
            lambda: (
                httpx.get(
                    f"{flower_side.flower_url}/api/task/info/{new_task}",
                    auth=FLOWER_LOGIN,
                    timeout=5,
                ).status_code
                == 200
            ),
            timeout=15,
            message="Flower to see the task",
        )
        page.reload()

        # Then its link goes to Flower with no warning
        link = panel.locator("[data-flower-link]")
        expect(link).to_have_attribute("data-flower-held", "true")
        expect(link).not_to_have_class(re.compile("flower-gone"))
        expect(note).to_be_hidden()
        # and the details page says the same
        panel.get_by_role("link", name="Details…").click()
        expect(page.locator("#flower-link")).to_have_attribute("data-flower-held", "true")
        expect(page.locator("#flower-link")).not_to_have_class(re.compile("flower-gone"))
        # and Flower's password never reached the browser
        answer = page.request.get(f"{flower_side.api_url}/console/flower/tasks/{old_task}")
        assert answer.json()["held"] is False
        assert FLOWER_LOGIN[1] not in answer.text()
        assert FLOWER_LOGIN[1] not in page.content()
    finally:
        stop_process(flower, signal.SIGTERM)
