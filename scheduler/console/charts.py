"""The job page's pictures, drawn by Takt as inline SVG: no CDN, no chart library, no script.

Pure functions from records to markup. Colours come from CSS classes (``run-completed``,
``run-failed``...) in the console's stylesheet: the console's Content-Security-Policy
refuses inline styles, and presentation attributes would hide the colours from the
stylesheet. Every mark has a ``<title>`` (a tooltip, read by screen readers) and the
``<svg>`` a ``role="img"`` with a label that says what the picture shows in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape

__all__ = [
    "Run",
    "duration_text",
    "in_words",
    "next_runs_chart",
    "nice_ceiling",
    "run_history_chart",
]

_WIDTH = 640
_HISTORY_HEIGHT = 150
_TIMELINE_HEIGHT = 70
_LEFT = 56  # room for the duration axis' labels
_RIGHT = 8
_TOP = 10
_BOTTOM = 22  # room for the time labels
_MAX_BAR = 28
_MIN_BAR_HEIGHT = 2  # a run of 0 ms still shows


@dataclass(frozen=True, slots=True)
class Run:
    """One run as the history chart draws it: a bar, a colour, a tooltip and a link."""

    status: str
    started: datetime
    duration_s: float
    href: str


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10ⁿ at least ``value`` (the top of the duration axis)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        top = step * 10.0**exponent
        if top >= value * (1 - 1e-9):
            return top
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop's 10 always answers


def duration_text(seconds: float) -> str:
    """A duration for people: ``0.016 s``, ``2.5 s``, ``42 s``, ``3 min 20 s``."""
    if seconds < 10:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + " s" if seconds else "0 s"
    if seconds < 60:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def in_words(delta: timedelta) -> str:
    """How far off a moment is: ``in 40 s``, ``in 5 min``, ``in 3 h 10 min``, ``in 2 days``."""
    seconds = max(0, round(delta.total_seconds()))
    if seconds < 60:
        return f"in {seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"in {hours} h {minutes} min" if minutes else f"in {hours} h"
    return f"in {hours // 24} days"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%m-%d %H:%M")


def _svg(kind: str, height: int, label: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart {kind}" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", kind: str = "label") -> str:
    return (
        f'<text class="{kind}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def run_history_chart(runs: Sequence[Run]) -> Markup:
    """Duration per run, oldest on the left, a bar per run coloured by its status and
    linked to its details. Empty markup when there is no run."""
    if not runs:
        return Markup("")
    top = nice_ceiling(max(run.duration_s for run in runs))
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HISTORY_HEIGHT - _TOP - _BOTTOM
    base_y = _TOP + plot_h
    slot = plot_w / len(runs)
    bar = min(_MAX_BAR, max(1.0, slot * 0.7))
    body = [
        f'<line class="grid" x1="{_LEFT}" y1="{_TOP}" x2="{_WIDTH - _RIGHT}" y2="{_TOP}"/>',
        f'<line class="axis" x1="{_LEFT}" y1="{base_y}" x2="{_WIDTH - _RIGHT}" y2="{base_y}"/>',
        _text(_LEFT - 6, _TOP + 4, duration_text(top), "end"),
        _text(_LEFT - 6, base_y, "0 s", "end"),
        _text(_LEFT, _HISTORY_HEIGHT - 6, _short(runs[0].started)),
        _text(_WIDTH - _RIGHT, _HISTORY_HEIGHT - 6, _short(runs[-1].started), "end"),
    ]
    for index, run in enumerate(runs):
        height = max(_MIN_BAR_HEIGHT, min(1.0, run.duration_s / top) * plot_h)
        x = _LEFT + slot * index + (slot - bar) / 2
        tip = f"{run.status} · {duration_text(run.duration_s)} · {_utc(run.started)}"
        body.append(
            f'<a href="{escape(run.href)}"><rect class="run run-{escape(run.status.lower())}" '
            f'x="{x:.1f}" y="{base_y - height:.1f}" width="{bar:.1f}" height="{height:.1f}">'
            f"<title>{escape(tip)}</title></rect></a>"
        )
    label = (
        f"Duration of the last {len(runs)} runs, oldest first, longest "
        f"{duration_text(max(run.duration_s for run in runs))}"
    )
    return _svg("run-history", _HISTORY_HEIGHT, label, body)


def next_runs_chart(now: datetime, fires: Sequence[datetime]) -> Markup:
    """The next runs on a line, a dot per run, spaced as their times are. Empty markup
    when the job will not run again.

    The line starts at now, unless the first run is further off than the runs are spread
    (a weekly job that starts in a year): then it starts at the first run, and a dashed
    stretch from now, labelled with how far off the first run is, stands for the wait.
    """
    if not fires:
        return Markup("")
    wait = (fires[0] - now).total_seconds()
    from_now = wait <= max((fires[-1] - fires[0]).total_seconds(), 60.0)
    start = now if from_now else fires[0]
    span = max((fires[-1] - start).total_seconds(), 60.0)
    plot_w = _WIDTH - 2 * _LEFT
    line_y = 30
    below = line_y + 28
    body = [
        f'<line class="axis" x1="{_LEFT}" y1="{line_y}" x2="{_WIDTH - _LEFT}" y2="{line_y}"/>',
        _text(_WIDTH - _RIGHT, below, _utc(fires[-1]), "end"),
    ]
    if from_now:
        body += [
            f'<line class="now" x1="{_LEFT}" y1="{line_y - 10}" x2="{_LEFT}" y2="{line_y + 10}"/>',
            _text(_LEFT, below, "now", "middle"),
        ]
    else:
        now_x = _RIGHT + 8
        body += [
            f'<line class="wait" x1="{now_x}" y1="{line_y}" x2="{_LEFT}" y2="{line_y}"/>',
            f'<line class="now" x1="{now_x}" y1="{line_y - 10}" x2="{now_x}" y2="{line_y + 10}"/>',
            _text(now_x, below, "now", "middle"),
            _text(_LEFT, below, f"first {in_words(fires[0] - now)}"),
        ]
    for fire in fires:
        offset = min(max((fire - start).total_seconds(), 0.0), span)
        x = _LEFT + offset / span * plot_w
        tip = f"{_utc(fire)} ({in_words(fire - now)})"
        body.append(
            f'<circle class="fire" cx="{x:.1f}" cy="{line_y}" r="5">'
            f"<title>{escape(tip)}</title></circle>"
        )
    label = (
        f"The next {len(fires)} runs, the first {in_words(fires[0] - now)}, "
        f"the last at {_utc(fires[-1])}"
    )
    return _svg("next-runs", _TIMELINE_HEIGHT, label, body)
