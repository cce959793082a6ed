"""The collection dashboard (GET): the last 24 hours' runs, failures and lateness, the next
runs, and the deployment's health, from the bounded reads of
:mod:`scheduler.service.dashboard`.

The store going away is a state of this page, not an error: a store that does not answer
while the page is built gives the page with its health panel saying "Store unreachable"
(503); one that does not answer even for the session gives the same page without the
frame's collection picker, since nobody can be told apart without the store.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from scheduler.clock import utcnow
from scheduler.console.charts import duration_text
from scheduler.console.dashboard_charts import lateness_chart, runs_chart, timeline_chart
from scheduler.console.rendering import collection_url, error_page, page, services
from scheduler.console.sessions import ConsoleSession
from scheduler.domain.refs import CollectionRef
from scheduler.errors import StoreError, TaktError
from scheduler.service.dashboard import (
    DashboardLimits,
    StoreHealth,
    collection_dashboard,
    store_health,
)

__all__ = ["LIMITS", "dashboard_page", "size_text", "store_unreachable_page"]

#: What one dashboard reads at most (the service's defaults; see its docstring).
LIMITS = DashboardLimits()
_VIEW = "dashboard.html"


def dashboard_page(request: Request, session: ConsoleSession, ref: CollectionRef) -> Response:
    """The dashboard of ``ref``; the store-unreachable state if the store fails meanwhile."""
    jobs, _, _ = services(request)
    now = utcnow()
    try:
        board = collection_dashboard(jobs.store, ref, now, LIMITS)
        health: StoreHealth | None = store_health(jobs.store)
    except StoreError as exc:
        return store_unreachable_page(request, session, ref, exc)
    except TaktError as exc:
        return error_page(request, session, exc)
    context: dict[str, Any] = {
        "ref": ref,
        "base": collection_url(ref),
        "board": board,
        "health": health,
        "limits": LIMITS,
        "runs_chart": runs_chart(board.hours),
        "lateness_chart": lateness_chart(board.hours),
        "timeline_chart": timeline_chart(now, board.next_runs),
        "late_text": _late_text,
        "size_text": size_text,
    }
    try:
        return page(request, _VIEW, session, **context)
    except StoreError as exc:  # the frame's collection picker reads the store too
        return store_unreachable_page(request, None, ref, exc)


def store_unreachable_page(
    request: Request, session: ConsoleSession | None, ref: CollectionRef | None, exc: StoreError
) -> Response:
    """The dashboard's frame with the health panel saying the store does not answer (503).

    Without a session the frame shows no collection picker and no data: nothing of the
    deployment is read without the store."""
    context: dict[str, Any] = {
        "ref": ref,
        "base": collection_url(ref) if ref else "/",
        "board": None,
        "health": None,
        "unreachable": str(exc),
    }
    try:
        return page(request, _VIEW, session, 503, **context)
    except StoreError:
        return page(request, _VIEW, None, 503, **context)


def _late_text(seconds: float | None) -> str:
    return "—" if seconds is None else duration_text(seconds)


def size_text(size: int) -> str:
    """A number of bytes for people, in binary units as Redis counts: ``1.9 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop answers at GiB
