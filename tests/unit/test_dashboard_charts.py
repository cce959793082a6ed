"""The collection dashboard's pictures and page (issue 16), pure: bars per hour stacked and
titled, lateness as a median dot over a 95th-percentile bar, the next runs of several jobs,
hostile names escaped in SVG titles and in the page, and a partial view said on the page."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from scheduler.console.dashboard import LIMITS, size_text
from scheduler.console.dashboard_charts import lateness_chart, runs_chart, timeline_chart
from scheduler.console.rendering import TEMPLATES
from scheduler.domain.refs import CollectionRef
from scheduler.service.dashboard import CollectionDashboard, HourBucket, NextRun

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
NOW = START + timedelta(hours=23, minutes=30)
HOSTILE = "<script>alert('x')</script> & \"co\""


def _hours() -> list[HourBucket]:
    return [HourBucket(START + timedelta(hours=i)) for i in range(24)]


def test_a_bar_per_hour_with_runs_stacked_by_status_and_titled() -> None:
    # Given three hours with runs: 4 completed; 2 completed and 1 failed; 3 postponed
    hours = _hours()
    hours[2].completed = 4
    hours[10].completed, hours[10].failed = 2, 1
    hours[23].postponed = 3

    # When the chart is drawn
    svg = ET.fromstring(runs_chart(hours))

    # Then there is a bar (a group) per hour with runs, its parts coloured by status
    groups = svg.findall(f"{SVG}g")
    assert len(groups) == 3
    classes = [[r.get("class") for r in g.findall(f"{SVG}rect")] for g in groups]
    assert classes == [
        ["run run-completed"],
        ["run run-completed", "run run-failed"],
        ["run run-postponed"],
    ]
    # and heights are proportional to the counts, the failed part on top of the completed
    completed, failed = groups[1].findall(f"{SVG}rect")
    assert float(completed.get("height", 0)) == 2 * float(failed.get("height", 0))
    assert float(failed.get("y", 0)) < float(completed.get("y", 0))
    # and each part says its hour and counts on hover; the picture has a label in words
    assert failed.findtext(f"{SVG}title") == (
        "2026-11-29 23:00 UTC–00:00 UTC: 3 runs, 2 Completed, 1 Failed"
    )
    assert svg.get("aria-label") == "Runs per hour over the last 24 hours: 10 runs, 1 failed"
    # and the hour labels carry their instant for the browser's zone
    labels = [t for t in svg.findall(f"{SVG}text") if t.get("data-datetime")]
    assert [t.get("data-datetime") for t in labels][:2] == [
        "2026-11-29T13:00:00Z",
        "2026-11-29T19:00:00Z",
    ]


def test_no_runs_draw_no_bars() -> None:
    assert runs_chart(_hours()) == ""
    assert lateness_chart(_hours()) == ""
    assert timeline_chart(NOW, []) == ""


def test_lateness_is_a_median_dot_over_a_95th_percentile_bar() -> None:
    # Given an hour whose scheduled runs were 1..10 s late and one 20 s late
    hours = _hours()
    hours[5].lateness_s = [float(s) for s in range(1, 11)]
    hours[6].lateness_s = [20.0]

    # When the chart is drawn (the axis ends at 20 s)
    svg = ET.fromstring(lateness_chart(hours))

    # Then each such hour has a bar up to its 95th percentile and a dot at its median
    groups = svg.findall(f"{SVG}g")
    assert len(groups) == 2
    bar, dot = groups[0].find(f"{SVG}rect"), groups[0].find(f"{SVG}circle")
    assert bar is not None
    assert dot is not None
    tall = groups[1].find(f"{SVG}rect")
    assert tall is not None
    assert float(bar.get("height", 0)) == float(tall.get("height", 0)) / 2
    base = float(bar.get("y", 0)) + float(bar.get("height", 0))
    assert base - float(dot.get("cy", 0)) == float(bar.get("height", 0)) / 2  # 5 s of 10 s
    assert groups[0].findtext(f"{SVG}title") == (
        "2026-11-29 18:00 UTC–19:00 UTC: 10 scheduled runs, late by 5 s (median), "
        "10 s (95th percentile), 10 s at most"
    )


def test_the_next_runs_stack_runs_at_the_same_time_and_name_their_job() -> None:
    # Given three runs, two of them at the same instant
    runs = [
        NextRun("a", "Alpha", NOW + timedelta(minutes=10)),
        NextRun("b", "Beta", NOW + timedelta(minutes=30)),
        NextRun("c", "Gamma", NOW + timedelta(minutes=30)),
    ]

    # When the timeline is drawn
    svg = ET.fromstring(timeline_chart(NOW, runs))

    # Then there is a dot per run, the two at one instant one above the other
    dots = svg.findall(f"{SVG}circle")
    assert len(dots) == 3
    assert dots[1].get("cx") == dots[2].get("cx")
    assert float(dots[2].get("cy", 0)) < float(dots[1].get("cy", 0))
    assert dots[0].findtext(f"{SVG}title") == "Alpha · 2026-11-30 12:40 UTC (in 10 min)"
    assert "of 3 jobs" in (svg.get("aria-label") or "")


def test_a_hostile_job_name_is_escaped_in_the_svg() -> None:
    # Given a run of a job whose display name is markup
    svg_text = str(timeline_chart(NOW, [NextRun("evil", HOSTILE, NOW + timedelta(hours=1))]))

    # Then the markup is text: the SVG parses, holds no script, and the title reads it back
    assert "<script>" not in svg_text
    svg = ET.fromstring(svg_text)
    assert svg.find(f".//{SVG}script") is None
    assert svg.findtext(f".//{SVG}title", "").startswith(HOSTILE)


def _board(**changes: object) -> CollectionDashboard:
    hours = _hours()
    hours[-1].completed, hours[-1].failed = 3, 1
    values: dict[str, object] = {
        "ref": CollectionRef("sub", "rg", "coll"),
        "now": NOW,
        "hours": hours,
        "next_runs": [NextRun("evil", HOSTILE, NOW + timedelta(hours=1))],
        "jobs_total": 1,
        "jobs_read": 1,
        "entries_per_job": 1000,
        "cut_short": [],
    }
    values.update(changes)
    return CollectionDashboard(**values)  # type: ignore[arg-type]


def _render(board: CollectionDashboard) -> str:
    return TEMPLATES.env.get_template("dashboard.html").render(
        session=None,
        ref=board.ref,
        base="/console/c/sub/rg/coll",
        board=board,
        health=None,
        limits=LIMITS,
        runs_chart=runs_chart(board.hours),
        lateness_chart=lateness_chart(board.hours),
        timeline_chart=timeline_chart(NOW, board.next_runs),
        late_text=lambda s: "—" if s is None else f"{s:g} s",
    )


def test_the_page_gives_the_totals_in_numbers_and_escapes_names() -> None:
    html = _render(_board())

    assert 'data-total="runs">4<' in html
    assert 'data-total="failed" class="bad">1<' in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(" in html
    assert "data-partial" not in html


def test_a_partial_view_says_what_was_left_out() -> None:
    # Given a board that read 200 of 1,500 jobs, and six whose counts are a floor
    cut = [f"job-{i}" for i in range(6)]
    board = _board(jobs_total=1500, jobs_read=200, entries_per_job=50, cut_short=cut)

    # When the page is rendered
    html = " ".join(_render(board).split())

    # Then it says so: how many jobs were read, and which ran more than was read
    assert "data-partial" in html
    assert "the first 200 of 1500 jobs (by name)" in html
    assert "6 jobs ran more than the newest 50 results read in 24 hours" in html
    assert "job-4, …" in html


def test_sizes_read_in_binary_units_as_redis_counts() -> None:
    assert size_text(512) == "512 B"
    assert size_text(2_082_632) == "2.0 MiB"
    assert size_text(3 * 1024**3) == "3.0 GiB"
    assert size_text(5000 * 1024**3) == "5000.0 GiB"
