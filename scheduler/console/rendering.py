"""What every console page shares: the signed-in session, the page frame, error pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from scheduler.console.sessions import COOKIE, ConsoleSession, SessionBook
from scheduler.console.views import time_element
from scheduler.domain.refs import CollectionRef
from scheduler.errors import (
    AuthenticationFailed,
    Conflict,
    Forbidden,
    NotFound,
    StoreError,
    TaktError,
    ValidationFailed,
)
from scheduler.service.job_collections import CollectionService
from scheduler.service.jobs import JobService
from scheduler.settings import TaktSettings, load_settings
from scheduler.store.principals import PrincipalBook, Role

__all__ = [
    "TEMPLATES",
    "collection_url",
    "error_page",
    "error_status",
    "flower_url",
    "page",
    "require_writer",
    "services",
    "session_of",
    "sessions",
    "settings_of",
    "to_sign_in",
]

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
#: ``{{ moment|time }}``: a ``<time>`` element the browser shows in its own zone.
TEMPLATES.env.filters["time"] = time_element

_STATUS: tuple[tuple[type[TaktError], int], ...] = (
    (ValidationFailed, 400),
    (NotFound, 404),
    (Conflict, 409),
    (AuthenticationFailed, 401),
    (Forbidden, 403),
    (StoreError, 503),
)


def error_status(exc: TaktError) -> int:
    """The HTTP status a console page answers with for a refused action (as the API)."""
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


def services(request: Request) -> tuple[JobService, CollectionService, PrincipalBook]:
    state = request.app.state
    return state.jobs, state.collections, state.principals


def sessions(request: Request) -> SessionBook:
    jobs, _, principals = services(request)
    return SessionBook(jobs.store, principals)


def session_of(request: Request) -> ConsoleSession | None:
    """The signed-in session of the request's cookie (None: sign in first)."""
    return sessions(request).find(request.cookies.get(COOKIE))


def require_writer(session: ConsoleSession) -> None:
    """Readers see everything and change nothing."""
    if not session.principal.can_write:
        raise Forbidden(
            f"principal {session.principal.name!r} is a reader and cannot change anything"
        )


def to_sign_in() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


def collection_url(ref: CollectionRef) -> str:
    return f"/console/c/{ref.subscription}/{ref.resource_group}/{ref.name}"


def settings_of(request: Request) -> TaktSettings:
    """The deployment's settings: the app's if it keeps them, else read once from the
    environment (the API process was started with the same ``TAKT_*`` variables)."""
    state = request.app.state
    for name in ("settings", "console_settings"):
        found = getattr(state, name, None)
        if isinstance(found, TaktSettings):
            return found
    state.console_settings = load_settings()
    return state.console_settings  # type: ignore[no-any-return]


def flower_url(request: Request) -> str:
    settings = settings_of(request)
    host = settings.flower_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.flower_port}"


def page(
    request: Request,
    view: str,
    session: ConsoleSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render the template ``view`` inside the frame (collection picker, who is signed in)."""
    frame: dict[str, Any] = {"session": session, "can_write": False, "collections": []}
    if session is not None:
        _, collections, _ = services(request)
        frame["can_write"] = session.principal.can_write
        frame["is_reader"] = session.principal.role is Role.READER
        frame["collections"] = [
            CollectionRef.from_cid(cid) for cid in collections.store.collection_ids("")
        ]
        frame["collection_url"] = collection_url
    frame.update(context)
    response = TEMPLATES.TemplateResponse(request, view, frame, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    )
    return response


def error_page(request: Request, session: ConsoleSession | None, exc: TaktError) -> Response:
    """A refused action as a page that says why, with the API's status code."""
    return page(request, "error.html", session, error_status(exc), error=str(exc))
