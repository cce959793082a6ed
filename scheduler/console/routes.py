"""The console's routes: ``/`` (sign-in or collections) and everything under ``/console``.

Handlers that read a form body are ``async``; the work (Redis, rendering) runs in the
thread pool, as FastAPI runs plain ``def`` handlers. They look the session up before they
read the body: a post without a live session is refused unread. The sign-in form, which
has no session yet, is checked for its origin and its address's failures first
(:mod:`scheduler.console.sign_in`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from scheduler.clock import utcnow
from scheduler.console.actions import JOB_OPERATIONS, create_job, job_operation, save_job
from scheduler.console.collection_form import create_collection
from scheduler.console.dashboard import dashboard_page, store_unreachable_page
from scheduler.console.forms import FormData, schedule_from_form
from scheduler.console.live import flower_task_status, live_job_status
from scheduler.console.pages import (
    PREVIEW_COUNT,
    collections_page,
    job_form_page,
    jobs_page,
    preview,
    result_page,
    results_page,
)
from scheduler.console.rendering import (
    error_page,
    error_status,
    page,
    services,
    session_of,
    sessions,
    settings_of,
    to_sign_in,
)
from scheduler.console.sessions import COOKIE, SESSION_TTL, ConsoleSession
from scheduler.console.sign_in import SIGN_IN_FORM_MAX_BYTES, SignInThrottle, posted_from
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.errors import AuthenticationFailed, StoreError, TaktError, ValidationFailed

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_STATIC = Path(__file__).parent / "static"
_MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
_COLLECTION = "/console/c/{sub}/{rg}/{coll}"
_JOB = _COLLECTION + "/jobs/{job}"


def _signed_in(request: Request, render: Callable[[ConsoleSession], Response]) -> Response:
    """``render`` for the signed-in session; the sign-in page otherwise; a refusal as a page."""
    session = session_of(request)
    if session is None:
        return to_sign_in()
    return _rendered(request, session, render)


def _rendered(
    request: Request, session: ConsoleSession, render: Callable[[ConsoleSession], Response]
) -> Response:
    try:
        return render(session)
    except TaktError as exc:
        return error_page(request, session, exc)


async def _signed_in_form(
    request: Request, render: Callable[[ConsoleSession, FormData], Response]
) -> Response:
    """``render`` with the posted form, read only once the session is known to be live."""
    session = await run_in_threadpool(session_of, request)
    if session is None:
        return to_sign_in()
    body = await request.body()
    return await run_in_threadpool(
        _rendered, request, session, lambda s: render(s, FormData.parse(body))
    )


async def _form(request: Request) -> FormData:
    return FormData.parse(await request.body())


async def _small_form(request: Request, limit: int) -> FormData | None:
    """The form, or None if its body is over ``limit`` bytes (the rest is left unread)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return FormData.parse(bytes(body))


# -- signing in and out --------------------------------------------------------------------


@router.get("/")
def home(request: Request) -> Response:
    session = session_of(request)
    if session is None:
        return page(request, "signin.html", None)
    return collections_page(request, session)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _sign_in_refusal(request: Request) -> Response | None:
    """Why this sign-in is refused before its key is read (None: it is not)."""
    own_url = settings_of(request).public_url or str(request.base_url)
    if not posted_from(request.headers, own_url):
        error = "This sign-in form was sent from another site."
        return page(request, "signin.html", None, 403, error=error)
    jobs, _, _ = services(request)
    wait_s = SignInThrottle(jobs.store).wait_s(_client_address(request))
    if wait_s:
        error = f"Too many failed sign-ins from your address: try again in {wait_s} s."
        refusal = page(request, "signin.html", None, 429, error=error)
        refusal.headers["Retry-After"] = str(wait_s)
        return refusal
    return None


def _sign_in(request: Request, form: FormData) -> Response:
    try:
        session = sessions(request).sign_in(form.get("key"))
    except AuthenticationFailed:
        jobs, _, _ = services(request)
        SignInThrottle(jobs.store).failed(_client_address(request))
        return page(request, "signin.html", None, 401, error="That API key is not valid.")
    response = to_sign_in()
    response.set_cookie(
        COOKIE,
        session.sid,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/console/signin")
async def sign_in(request: Request) -> Response:
    refusal = await run_in_threadpool(_sign_in_refusal, request)
    if refusal is not None:
        return refusal
    form = await _small_form(request, SIGN_IN_FORM_MAX_BYTES)
    if form is None:
        error = "The sign-in form holds an API key and nothing else."
        return await run_in_threadpool(page, request, "signin.html", None, 413, error=error)
    return await run_in_threadpool(_sign_in, request, form)


def _sign_out(request: Request, session: ConsoleSession, form: FormData) -> Response:
    if session.csrf_matches(form.get("csrf")):
        sessions(request).sign_out(session.sid)
    return _signed_out()


def _signed_out() -> Response:
    response = to_sign_in()
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/console/signout")
async def sign_out(request: Request) -> Response:
    session = await run_in_threadpool(session_of, request)
    if session is None:
        return _signed_out()
    return await run_in_threadpool(_sign_out, request, session, await _form(request))


@router.get("/console/static/{name}")
def static(name: str) -> Response:
    """The console's CSS and JavaScript (shipped in the package; no CDN)."""
    path = _STATIC / name
    if name not in {p.name for p in _STATIC.iterdir()} or path.suffix not in _MEDIA_TYPES:
        return JSONResponse({"error": {"code": "NotFound", "message": "no such file"}}, 404)
    return FileResponse(
        path, media_type=_MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"}
    )


# -- pages ---------------------------------------------------------------------------------


@router.get("/console/go")
def go(to: str = "") -> Response:
    """The collection picker without JavaScript: only console pages are destinations."""
    safe = to.startswith("/console/c/") and "//" not in to and "\\" not in to
    return RedirectResponse(to if safe else "/", status_code=303)


@router.get(_COLLECTION)
def jobs(
    request: Request,
    sub: str,
    rg: str,
    coll: str,
    job: str | None = None,
    done: str | None = None,
) -> Response:
    return _signed_in(
        request,
        lambda s: jobs_page(request, s, CollectionRef(sub, rg, coll), selected=job, note=done),
    )


@router.get(_COLLECTION + "/dashboard")
def dashboard(request: Request, sub: str, rg: str, coll: str) -> Response:
    """The collection's last 24 hours, next runs and the deployment's health; a store
    that does not answer, even for the session, is the page's unreachable state (503)."""
    try:
        session = session_of(request)
    except StoreError as exc:
        return store_unreachable_page(request, None, _valid_ref(sub, rg, coll), exc)
    if session is None:
        return to_sign_in()
    return _rendered(
        request, session, lambda s: dashboard_page(request, s, CollectionRef(sub, rg, coll))
    )


def _valid_ref(sub: str, rg: str, coll: str) -> CollectionRef | None:
    try:
        return CollectionRef(sub, rg, coll)
    except ValidationFailed:
        return None


@router.get(_COLLECTION + "/new")
def new_job(
    request: Request, sub: str, rg: str, coll: str, template: str | None = None
) -> Response:
    return _signed_in(
        request,
        lambda s: job_form_page(request, s, CollectionRef(sub, rg, coll), template=template),
    )


@router.get(_JOB)
def job_properties(request: Request, sub: str, rg: str, coll: str, job: str) -> Response:
    return _signed_in(
        request, lambda s: job_form_page(request, s, CollectionRef(sub, rg, coll), job=job)
    )


@router.get(_JOB + "/results")
def job_results(
    request: Request, sub: str, rg: str, coll: str, job: str, status: str | None = None
) -> Response:
    return _signed_in(
        request,
        lambda s: results_page(request, s, JobRef(CollectionRef(sub, rg, coll), job), status),
    )


@router.get(_JOB + "/results/{entry}")
def job_result(request: Request, sub: str, rg: str, coll: str, job: str, entry: str) -> Response:
    return _signed_in(
        request,
        lambda s: result_page(request, s, JobRef(CollectionRef(sub, rg, coll), job), entry),
    )


# -- live status (JSON, polled by static/job.js) ---------------------------------------------


@router.get(_JOB + "/status")
def job_live_status(request: Request, sub: str, rg: str, coll: str, job: str) -> Response:
    """What the job is doing now (Queued, Running, Retrying or null) and its last result."""
    if session_of(request) is None:
        return _json_error(AuthenticationFailed("sign in to the console first"))
    return live_job_status(request, JobRef(CollectionRef(sub, rg, coll), job))


@router.get("/console/flower/tasks/{task_id}")
def flower_task(request: Request, task_id: str) -> Response:
    """Whether Flower still holds a run's Celery task (asked with Flower's login, here)."""
    if session_of(request) is None:
        return _json_error(AuthenticationFailed("sign in to the console first"))
    return flower_task_status(request, task_id)


# -- actions -------------------------------------------------------------------------------


@router.post("/console/collections")
async def new_collection(request: Request) -> Response:
    return await _signed_in_form(request, lambda s, form: create_collection(request, s, form))


@router.post(_COLLECTION + "/new")
async def create(request: Request, sub: str, rg: str, coll: str) -> Response:
    return await _signed_in_form(
        request, lambda s, form: create_job(request, s, CollectionRef(sub, rg, coll), form)
    )


@router.post(_JOB)
async def save(request: Request, sub: str, rg: str, coll: str, job: str) -> Response:
    return await _signed_in_form(
        request,
        lambda s, form: save_job(request, s, JobRef(CollectionRef(sub, rg, coll), job), form),
    )


@router.post(_JOB + "/{operation}")
async def operate(
    request: Request, sub: str, rg: str, coll: str, job: str, operation: str
) -> Response:
    if operation not in JOB_OPERATIONS:
        return JSONResponse({"error": {"code": "NotFound", "message": "no such action"}}, 404)
    return await _signed_in_form(
        request,
        lambda s, form: job_operation(
            request, s, JobRef(CollectionRef(sub, rg, coll), job), operation, form
        ),
    )


# -- schedule preview ----------------------------------------------------------------------


def _preview_refusal(request: Request) -> JSONResponse | None:
    """Why a preview is refused before its body is read (None: it is not)."""
    session = session_of(request)
    if session is None:
        return _json_error(AuthenticationFailed("sign in to the console first"))
    if not session.csrf_matches(request.headers.get("x-csrf-token")):
        return JSONResponse(
            {"error": {"code": "AuthorizationFailed", "message": "missing or stale CSRF token"}},
            403,
        )
    return None


def _preview(body: bytes, content_type: str, count: int) -> JSONResponse:
    try:
        schedule = _schedule_of(body, content_type)
        return JSONResponse(preview(schedule, utcnow(), count))
    except TaktError as exc:
        return _json_error(exc)


def _schedule_of(body: bytes, content_type: str) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        try:
            document = json.loads(body or b"{}")
        except ValueError as exc:
            raise ValidationFailed(f"body: not JSON ({exc})") from exc
        if not isinstance(document, dict):
            raise ValidationFailed("body: a JSON object with startTime and recurrence")
        return {k: document[k] for k in ("startTime", "recurrence") if document.get(k)}
    return schedule_from_form(FormData.parse(body))


def _json_error(exc: TaktError) -> JSONResponse:
    code = {400: "BadRequest", 401: "AuthenticationFailed", 404: "NotFound"}
    status = error_status(exc)
    return JSONResponse({"error": {"code": code.get(status, "Error"), "message": str(exc)}}, status)


@router.post("/console/preview")
async def schedule_preview(
    request: Request, count: Annotated[int, Query(ge=1, le=100)] = PREVIEW_COUNT
) -> JSONResponse:
    """The next ``count`` occurrences of an unsaved schedule, from now on.

    Body: JSON ``{"startTime": ..., "recurrence": ...}`` (wire form), or the job form's
    fields (urlencoded). Needs the console session and its CSRF token in ``X-CSRF-Token``.
    """
    refusal = await run_in_threadpool(_preview_refusal, request)
    if refusal is not None:
        return refusal
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    return await run_in_threadpool(_preview, body, content_type, count)
