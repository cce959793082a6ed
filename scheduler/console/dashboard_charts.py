"""The collection dashboard's pictures, drawn as the job page's are
(:mod:`scheduler.console.charts`): inline SVG from pure functions, colours from the
stylesheet's classes, a ``<title>`` on every mark and a label on every ``<svg>``.

Hour labels carry their instant (``data-datetime``): ``static/times.js`` rewrites them to
the browser's zone, as it does ``<time>`` elements, and puts the UTC text in a tooltip.

Lateness is drawn per hour as a bar up to the hour's 95th percentile with a dot at its
median, not as a dot per run: 24 pairs of marks read at a glance whatever the number of
runs (a scatter of thousands of dots hides the typical run under the outliers and makes
the page heavy), and the bar shows how bad the tail got while the dot shows the usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape

from scheduler.console.charts import duration_text, in_words, nice_ceiling
from scheduler.service.dashboard import HourBucket, NextRun

__all__ = ["lateness_chart", "runs_chart", "timeline_chart"]

_WIDTH = 640
_BARS_HEIGHT = 160
_TIMELINE_HEIGHT = 84
_LEFT = 56
_RIGHT = 8
_TOP = 10
_BOTTOM = 22
_LABEL_EVERY_HOURS = 6
_STACK = (("completed", "Completed"), ("failed", "Failed"), ("postponed", "Postponed"))


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _hour_span(hour: HourBucket) -> str:
    end = hour.start + timedelta(hours=1)
    return f"{_utc(hour.start)}–{end.astimezone(UTC):%H:%M} UTC"


def _svg(kind: str, height: int, label: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart {kind}" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start") -> str:
    return (
        f'<text class="label" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def _time_text(x: float, y: float, moment: datetime, anchor: str = "middle") -> str:
    """An hour's label: UTC ``HH:MM`` from the server, the browser's zone from times.js."""
    return (
        f'<text class="label" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
        f'data-datetime="{_iso(moment)}">{moment.astimezone(UTC):%H:%M}</text>'
    )


def _frame(hours: Sequence[HourBucket], top_text: str) -> tuple[list[str], float, float]:
    """Axis, grid and hour labels; returns them with the slot width and the base line."""
    plot_h = _BARS_HEIGHT - _TOP - _BOTTOM
    base_y = _TOP + plot_h
    slot = (_WIDTH - _LEFT - _RIGHT) / len(hours)
    body = [
        f'<line class="grid" x1="{_LEFT}" y1="{_TOP}" x2="{_WIDTH - _RIGHT}" y2="{_TOP}"/>',
        f'<line class="axis" x1="{_LEFT}" y1="{base_y}" x2="{_WIDTH - _RIGHT}" y2="{base_y}"/>',
        _text(_LEFT - 6, _TOP + 4, top_text, "end"),
        _text(_LEFT - 6, base_y, "0", "end"),
    ]
    for index, hour in enumerate(hours):
        if index % _LABEL_EVERY_HOURS == 0:
            body.append(_time_text(_LEFT + slot * index, _BARS_HEIGHT - 6, hour.start, "start"))
    return body, slot, base_y


def runs_chart(hours: Sequence[HourBucket]) -> Markup:
    """Runs per hour, a bar per hour stacked by status (Completed at the bottom, then
    Failed, then Postponed). Empty markup when no hour has a run."""
    if not any(hour.runs for hour in hours):
        return Markup("")
    top = max(1.0, nice_ceiling(max(hour.runs for hour in hours)))
    body, slot, base_y = _frame(hours, f"{top:g}")
    plot_h = base_y - _TOP
    bar = max(1.0, slot * 0.7)
    for index, hour in enumerate(hours):
        if not hour.runs:
            continue
        x = _LEFT + slot * index + (slot - bar) / 2
        y = base_y
        tip = f"{_hour_span(hour)}: {hour.runs} runs, " + ", ".join(
            f"{getattr(hour, attr)} {name}" for attr, name in _STACK if getattr(hour, attr)
        )
        marks = []
        for attr, name in _STACK:
            count = getattr(hour, attr)
            if not count:
                continue
            height = count / top * plot_h
            y -= height
            marks.append(
                f'<rect class="run run-{name.lower()}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar:.1f}" height="{height:.1f}"><title>{escape(tip)}</title></rect>'
            )
        body.append(f'<g class="hour">{"".join(marks)}</g>')
    runs = sum(hour.runs for hour in hours)
    failed = sum(hour.failed for hour in hours)
    label = f"Runs per hour over the last {len(hours)} hours: {runs} runs, {failed} failed"
    return _svg("runs-per-hour", _BARS_HEIGHT, label, body)


def lateness_chart(hours: Sequence[HourBucket]) -> Markup:
    """How late scheduled runs started, per hour: a bar up to the 95th percentile and a
    dot at the median. Empty markup when no scheduled run started in the window."""
    late = [(hour, hour.late(0.5), hour.late(0.95)) for hour in hours]
    tails = [p95 for _, _, p95 in late if p95 is not None]
    if not tails:
        return Markup("")
    top = nice_ceiling(max(tails)) if max(tails) > 0 else 1.0
    body, slot, base_y = _frame(hours, duration_text(top))
    plot_h = base_y - _TOP
    bar = max(1.0, slot * 0.5)
    for index, (hour, p50, p95) in enumerate(late):
        if p50 is None or p95 is None:
            continue
        centre = _LEFT + slot * index + slot / 2
        tip = (
            f"{_hour_span(hour)}: {len(hour.lateness_s)} scheduled runs, late by "
            f"{duration_text(p50)} (median), {duration_text(p95)} (95th percentile), "
            f"{duration_text(max(hour.lateness_s))} at most"
        )
        height = max(1.0, p95 / top * plot_h)
        body.append(
            f'<g class="hour"><title>{escape(tip)}</title>'
            f'<rect class="late-p95" x="{centre - bar / 2:.1f}" y="{base_y - height:.1f}" '
            f'width="{bar:.1f}" height="{height:.1f}"/>'
            f'<circle class="late-p50" cx="{centre:.1f}" cy="{base_y - p50 / top * plot_h:.1f}" '
            f'r="3.5"/></g>'
        )
    label = (
        f"How late scheduled runs started, per hour over the last {len(hours)} hours: "
        f"at most {duration_text(max(tails))} (95th percentile of an hour)"
    )
    return _svg("lateness", _BARS_HEIGHT, label, body)


def timeline_chart(now: datetime, runs: Sequence[NextRun]) -> Markup:
    """The collection's next runs on one line from now, a dot per run (runs at the same
    place stack upwards), each titled with its job and time. Empty markup for none."""
    if not runs:
        return Markup("")
    span = max((runs[-1].at - now).total_seconds(), 60.0)
    plot_w = _WIDTH - 2 * _LEFT
    line_y = 56
    below = line_y + 22
    body = [
        f'<line class="axis" x1="{_LEFT}" y1="{line_y}" x2="{_WIDTH - _LEFT}" y2="{line_y}"/>',
        f'<line class="now" x1="{_LEFT}" y1="{line_y - 10}" x2="{_LEFT}" y2="{line_y + 10}"/>',
        _text(_LEFT, below, "now", "middle"),
        _time_text(_WIDTH - _LEFT, below, runs[-1].at, "end"),
    ]
    taken: Counter[int] = Counter()
    for run in runs:
        offset = min(max((run.at - now).total_seconds(), 0.0), span)
        x = _LEFT + offset / span * plot_w
        level = taken[round(x / 6)]
        taken[round(x / 6)] += 1
        tip = f"{run.title} · {_utc(run.at)} ({in_words(run.at - now)})"
        body.append(
            f'<circle class="fire" cx="{x:.1f}" cy="{line_y - min(level, 4) * 9}" r="4.5">'
            f"<title>{escape(tip)}</title></circle>"
        )
    jobs = len({run.job for run in runs})
    label = (
        f"The next {len(runs)} runs of {jobs} jobs, the first {in_words(runs[0].at - now)}, "
        f"the last at {_utc(runs[-1].at)}"
    )
    return _svg("collection-next-runs", _TIMELINE_HEIGHT, label, body)
