"""The console's live answers (JSON, GET): a job's status while the page is open, and
whether Flower still holds a run's task. ``static/job.js`` polls them; readers may too."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from scheduler.console.flower_probe import FlowerAnswer, FlowerProbe, known_flower_login
from scheduler.console.rendering import (
    collection_url,
    error_status,
    flower_url,
    services,
    settings_of,
)
from scheduler.console.views import job_status
from scheduler.domain.refs import JobRef
from scheduler.errors import TaktError, ValidationFailed
from scheduler.settings import flower_variables

__all__ = ["flower_task_status", "live_job_status"]

_CODES = {
    400: "BadRequest",
    401: "AuthenticationFailed",
    404: "NotFound",
    409: "Conflict",
    503: "ServiceUnavailable",
}


def _refused(exc: TaktError) -> JSONResponse:
    status = error_status(exc)
    body = {"error": {"code": _CODES.get(status, "Error"), "message": str(exc)}}
    return JSONResponse(body, status, headers={"Cache-Control": "no-store"})


def live_job_status(request: Request, ref: JobRef) -> JSONResponse:
    """What the job is doing now and its last result (:func:`views.job_status`)."""
    jobs, _, _ = services(request)
    try:
        activity = jobs.in_progress([ref]).get(ref.jid)
        answer = job_status(jobs, ref, collection_url(ref.collection), activity)
    except TaktError as exc:
        return _refused(exc)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


def _probe(request: Request) -> FlowerProbe:
    """The API's one probe, made at the first question (the login may appear later:
    Flower's generated login is written when ``takt up`` starts it)."""
    state = request.app.state
    probe = getattr(state, "flower_probe", None)
    if isinstance(probe, FlowerProbe) and probe.knows_login:
        return probe
    settings = settings_of(request)
    probe = FlowerProbe(flower_url(request), known_flower_login(settings, flower_variables()))
    state.flower_probe = probe
    return probe


def flower_task_status(request: Request, task_id: str) -> JSONResponse:
    """``{"held": true|false|null, "message": ...}``: whether Flower still holds the task."""
    try:
        answer: FlowerAnswer = _probe(request).ask(task_id)
    except ValueError as exc:
        return _refused(ValidationFailed(str(exc)))
    return JSONResponse(answer.to_json(), headers={"Cache-Control": "no-store"})
