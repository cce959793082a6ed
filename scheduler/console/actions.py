"""What the console's forms do (POST), each through the same services as the API.

Every action checks the session's CSRF token, then lets the service apply the rules; a
refusal (:class:`~scheduler.errors.TaktError`) comes back as the page with the message
and the API's status code, never as a 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from scheduler.clock import utcnow
from scheduler.console.forms import (
    FormData,
    diff_patch,
    job_from_json,
    properties_from_form,
    schedule_from_form,
)
from scheduler.console.pages import job_form_page, jobs_page
from scheduler.console.rendering import (
    collection_url,
    error_status,
    require_writer,
    services,
    settings_of,
)
from scheduler.console.sessions import ConsoleSession
from scheduler.domain.models import JobProperties, JobState, describe_validation_error
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.errors import Conflict, Forbidden, JobNotFound, TaktError, ValidationFailed

__all__ = ["JOB_OPERATIONS", "check_csrf", "create_job", "job_operation", "save_job"]


def check_csrf(session: ConsoleSession, form: FormData) -> None:
    if not session.csrf_matches(form.get("csrf") or None):
        raise Forbidden("the form is stale or not from this console; reload the page")


def _done(ref: CollectionRef, job: str | None, note: str) -> RedirectResponse:
    selected = f"&job={job}" if job else ""
    return RedirectResponse(f"{collection_url(ref)}?done={note}{selected}", status_code=303)


def _validated(properties: dict[str, Any]) -> JobProperties:
    try:
        return JobProperties.model_validate(properties)
    except ValidationError as exc:
        raise ValidationFailed(describe_validation_error(exc, ("properties",))) from exc


def _wanted(request: Request, form: FormData, current: dict[str, Any] | None) -> dict[str, Any]:
    if form.get("mode") == "json":
        return job_from_json(form.raw("jobJson"), settings_of(request).max_json_depth)
    return properties_from_form(form, current)


def _submitted_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {name: form.raw(name) for name in form.fields}
    values["weekDays"] = form.getall("weekDays")
    return values


def create_job(
    request: Request, session: ConsoleSession, ref: CollectionRef, form: FormData
) -> Response:
    """New job: from the form's fields or its pasted JSON."""
    jobs, _, _ = services(request)
    name = form.get("name")
    try:
        check_csrf(session, form)
        require_writer(session)
        job = JobRef(ref, name)
        properties = _validated(_wanted(request, form, None))
        try:
            jobs.get(job)
        except JobNotFound:
            pass
        else:
            raise Conflict(f"a job named {name!r} exists; pick another name")
        jobs.put(job, properties, session.principal, utcnow())
    except TaktError as exc:
        return _form_again(request, session, ref, None, form, exc)
    return _done(ref, name, "created")


def save_job(request: Request, session: ConsoleSession, job: JobRef, form: FormData) -> Response:
    """Properties…: the change as a merge patch, so the service keeps what is unchanged."""
    jobs, _, _ = services(request)
    try:
        check_csrf(session, form)
        require_writer(session)
        current = jobs.get(job).properties.to_wire()
        current.pop("status", None)
        wanted = _wanted(request, form, current)
        _validated(wanted)
        jobs.patch(job, diff_patch(current, wanted), session.principal, utcnow())
    except TaktError as exc:
        return _form_again(request, session, job.collection, job.name, form, exc)
    return _done(job.collection, job.name, "saved")


def _form_again(
    request: Request,
    session: ConsoleSession,
    ref: CollectionRef,
    job: str | None,
    form: FormData,
    exc: TaktError,
) -> Response:
    try:
        schedule: dict[str, Any] | None = schedule_from_form(form)
    except ValidationFailed:
        schedule = None
    return job_form_page(
        request,
        session,
        ref,
        job=job,
        template=form.get("template") or None,
        values=_submitted_values(form),
        schedule=schedule,
        json_text=form.raw("jobJson"),
        error=str(exc),
        status_code=error_status(exc),
    )


def _set_enabled(request: Request, session: ConsoleSession, job: JobRef, form: FormData) -> str:
    jobs, _, _ = services(request)
    state = JobState.ENABLED if form.get("enabled") == "1" else JobState.DISABLED
    jobs.patch(job, {"state": state.value}, session.principal, utcnow())
    return "enabled" if state is JobState.ENABLED else "disabled"


def _rename(request: Request, session: ConsoleSession, job: JobRef, form: FormData) -> str:
    jobs, _, _ = services(request)
    jobs.patch(job, {"displayName": form.get("displayName") or None}, session.principal, utcnow())
    return "renamed"


def _change_owner(request: Request, session: ConsoleSession, job: JobRef, form: FormData) -> str:
    jobs, _, _ = services(request)
    jobs.patch(job, {"owner": form.get("owner")}, session.principal, utcnow())
    return "owner"


def _start(request: Request, session: ConsoleSession, job: JobRef, form: FormData) -> str:
    jobs, _, _ = services(request)
    jobs.run(job, utcnow())
    return "started"


def _delete(request: Request, session: ConsoleSession, job: JobRef, form: FormData) -> str:
    jobs, _, _ = services(request)
    jobs.delete(job)
    return "deleted"


JOB_OPERATIONS = {
    "state": _set_enabled,
    "rename": _rename,
    "owner": _change_owner,
    "start": _start,
    "delete": _delete,
}


def job_operation(
    request: Request, session: ConsoleSession, job: JobRef, operation: str, form: FormData
) -> Response:
    """One item of a job's menu; the Jobs page again, with the outcome or the refusal."""
    try:
        check_csrf(session, form)
        require_writer(session)
        note = JOB_OPERATIONS[operation](request, session, job, form)
    except TaktError as exc:
        return jobs_page(
            request,
            session,
            job.collection,
            selected=job.name,
            error=str(exc),
            status_code=error_status(exc),
        )
    return _done(job.collection, None if note == "deleted" else job.name, note)
