"""The console's pages (GET): sign-in, collections, Jobs table, job form, results."""

from __future__ import annotations

import json
import zoneinfo
from collections import Counter
from datetime import datetime
from functools import lru_cache
from itertools import islice
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from scheduler.clock import utcnow
from scheduler.console.charts import next_runs_chart, run_history_chart
from scheduler.console.forms import ACTION_TYPES, FREQUENCIES, form_values
from scheduler.console.rendering import (
    collection_url,
    error_page,
    flower_url,
    page,
    services,
)
from scheduler.console.sessions import ConsoleSession
from scheduler.console.views import (
    collection_row,
    flower_task_id,
    job_row,
    result_row,
    run_of,
    when,
)
from scheduler.console.words import describe_schedule
from scheduler.domain.bounds import check_timestamp
from scheduler.domain.models import (
    JobExecutionStatus,
    JobProperties,
    SkuName,
    WeekDay,
    describe_validation_error,
    without_secrets,
)
from scheduler.domain.planning import upcoming
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.errors import CollectionNotFound, NotFound, TaktError, ValidationFailed
from scheduler.service.templates import TEMPLATES, JobTemplate, get_template
from scheduler.store.principals import Role

__all__ = [
    "collections_page",
    "job_form_page",
    "jobs_page",
    "next_fires",
    "preview",
    "result_page",
    "results_page",
]

PREVIEW_COUNT = 10
#: The runs the job page's history chart shows (the newest).
CHART_RUNS = 60
_NOTES = {
    "created": "The job was created.",
    "saved": "The job was saved.",
    "started": "Started. The run shows under Last execution when it has finished.",
    "enabled": "The job is enabled.",
    "disabled": "The job is disabled.",
    "renamed": "The job was renamed.",
    "owner": "The owner was changed.",
    "deleted": "The job was deleted.",
    "collection": "The collection was created. Create its first job from a template.",
}
_SCHEDULE = ("startTime", "recurrence")
#: Stands in for the action when only a schedule is checked.
_PLACEHOLDER = {"type": "Command", "command": "VerifyStore"}
#: The jobs one Jobs page shows (ARM's own page size limit).
_PAGE_SIZE = 1000


@lru_cache(maxsize=1)
def _zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


#: Where a new collection goes when there is none to copy from: the client's and CLI's
#: defaults.
DEFAULT_SUBSCRIPTION = "default"
DEFAULT_RESOURCE_GROUP = "default"


def collections_page(
    request: Request,
    session: ConsoleSession,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    """Every collection with its job count, and the New collection form (``values``: a
    refused form's, shown again as they were entered)."""
    _, collections, _ = services(request)
    rows = []
    for cid in collections.store.collection_ids(""):
        try:
            record = collections.store.get_collection(cid)
        except CollectionNotFound:
            continue  # deleted while the page was built
        rows.append(collection_row(record, collections.store.count_jobs(cid)))
    return page(
        request,
        "collections.html",
        session,
        status_code,
        rows=rows,
        error=error,
        values=values or _new_collection_defaults([row.ref for row in rows]),
        skus=[sku.value for sku in SkuName],
    )


def _new_collection_defaults(refs: list[CollectionRef]) -> dict[str, str]:
    """The subscription and resource group most collections use (Takt's own left out)."""
    places = Counter((r.subscription, r.resource_group) for r in refs if r.subscription != "takt")
    subscription, group = (
        places.most_common(1)[0][0] if places else (DEFAULT_SUBSCRIPTION, DEFAULT_RESOURCE_GROUP)
    )
    return {"subscriptionId": subscription, "resourceGroupName": group}


def jobs_page(
    request: Request,
    session: ConsoleSession,
    ref: CollectionRef,
    *,
    selected: str | None = None,
    note: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    """The Jobs table of one collection, the side panel and the menu's dialogs."""
    jobs, collections, principals = services(request)
    try:
        collections.get(ref)
        records = jobs.list_page(ref, skip=0, top=_PAGE_SIZE).jobs
        busy = jobs.in_progress(JobRef(ref, r.jid.rsplit("/", 1)[1]) for r in records)
    except TaktError as exc:
        return error_page(request, session, exc)
    rows = [job_row(jobs, ref, record, busy.get(record.jid)) for record in records]
    names = {row.name for row in rows}
    return page(
        request,
        "jobs.html",
        session,
        status_code,
        ref=ref,
        base=collection_url(ref),
        rows=rows,
        selected=selected if selected in names else (rows[0].name if rows else None),
        note=_NOTES.get(note or ""),
        error=error,
        templates=TEMPLATES,
        admins=[p.name for p in principals.list() if p.role is Role.ADMIN],
        flower=flower_url(request),
        task_id=lambda job, entry: flower_task_id(f"{ref.cid}/{job}", entry),
    )


def next_fires(schedule: dict[str, Any], now: datetime, count: int) -> list[datetime]:
    """The next occurrences of an unsaved ``startTime``/``recurrence``, from ``now`` on, as
    the beat would fire a job saved now (``first_fire``, then the rule).

    Raises:
        ValidationFailed: a schedule the engine refuses (the message names the field).
    """
    try:
        properties = JobProperties.model_validate({"action": _PLACEHOLDER, **schedule})
    except ValidationError as exc:
        raise ValidationFailed(describe_validation_error(exc)) from exc
    return list(islice(upcoming(properties, None, now), count))


def preview(schedule: dict[str, Any], now: datetime, count: int) -> dict[str, Any]:
    """The preview's JSON: instants (ISO), the same for people, and the rule in words."""
    fires = next_fires(schedule, now, count)
    start_time = JobProperties.model_validate(
        {"action": _PLACEHOLDER, "startTime": schedule.get("startTime")}
    ).start_time
    return {
        "value": [moment.isoformat().replace("+00:00", "Z") for moment in fires],
        "text": [when(moment) for moment in fires],
        "words": describe_schedule(schedule.get("recurrence"), start_time),
    }


def _form_context(request: Request, values: dict[str, Any]) -> dict[str, Any]:
    _, _, principals = services(request)
    return {
        "values": values,
        "action_types": ACTION_TYPES,
        "frequencies": FREQUENCIES,
        "week_days": [day.value for day in WeekDay],
        "zones": _zones(),
        "admins": [p.name for p in principals.list() if p.role is Role.ADMIN],
        "statuses": [s.value for s in JobExecutionStatus],
    }


def job_form_page(
    request: Request,
    session: ConsoleSession,
    ref: CollectionRef,
    *,
    job: str | None = None,
    template: str | None = None,
    values: dict[str, Any] | None = None,
    schedule: dict[str, Any] | None = None,
    json_text: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    """New job (from a template or manual) when ``job`` is None, else its Properties.

    ``values`` and ``schedule`` are a refused form's, shown again as they were entered.
    """
    jobs, collections, _ = services(request)
    now = utcnow()
    chosen: JobTemplate | None = None
    reason = None if session.principal.can_write else "You are a reader: you can look, not change."
    try:
        collections.get(ref)
        if job is None:
            chosen = get_template(template) if template else None
            properties: dict[str, Any] = chosen.render() if chosen else {"action": {"type": "Http"}}
            properties["owner"] = session.principal.name if session.principal.can_write else ""
            fires = _safe_preview(properties, now)
        else:
            record = jobs.get(JobRef(ref, job))
            properties = without_secrets(record.properties.to_wire())
            properties.pop("status", None)
            fires = jobs.occurrences(JobRef(ref, job), PREVIEW_COUNT, now)
            if record.state.is_final:
                reason = (
                    f"This job is {record.state.value}: it is final and can be deleted, "
                    "not changed."
                )
    except TaktError as exc:
        return error_page(request, session, exc)
    shown = values if values is not None else form_values(properties)
    if schedule is not None:  # the form as submitted: preview what was entered
        properties = {k: v for k, v in properties.items() if k not in _SCHEDULE}
        properties.update(schedule)
        fires = _safe_preview(properties, now)
    return page(
        request,
        "job_form.html",
        session,
        status_code,
        ref=ref,
        base=collection_url(ref),
        job=job,
        template=chosen,
        error=error,
        read_only=reason,
        json_text=json_text or json.dumps(properties, indent=2),
        preview=fires,
        words=_schedule_words(properties),
        **_form_context(request, shown),
    )


def _schedule_words(properties: dict[str, Any]) -> str:
    """The schedule in words, or nothing when the form as submitted holds values the
    service refused (the page shows why): what was typed is shown, never trusted."""
    try:
        return describe_schedule(properties.get("recurrence"), _start(properties))
    except (ValueError, TypeError, OverflowError, AttributeError):
        return ""


def _start(properties: dict[str, Any]) -> datetime | None:
    text = properties.get("startTime")
    if not text:
        return None
    return check_timestamp(datetime.fromisoformat(str(text).replace("Z", "+00:00")))


def _safe_preview(properties: dict[str, Any], now: datetime) -> list[datetime]:
    schedule: dict[str, Any] = {
        k: properties[k] for k in ("startTime", "recurrence") if k in properties
    }
    try:
        return next_fires(schedule, now, PREVIEW_COUNT)
    except ValidationFailed:
        return []


def results_page(
    request: Request, session: ConsoleSession, ref: JobRef, status: str | None
) -> Response:
    """The job's page: what it is doing now (kept live by ``job.js``), its run history
    and next runs as pictures, and all its results, newest first, optionally of one
    status."""
    jobs, _, _ = services(request)
    base = collection_url(ref.collection)
    now = utcnow()
    try:
        wanted = JobExecutionStatus(status) if status else None
        entries, more = jobs.history(ref, skip=0, top=_PAGE_SIZE, status=wanted)
        recent, _ = jobs.history(ref, skip=0, top=CHART_RUNS)
        row = job_row(jobs, ref.collection, jobs.get(ref), jobs.in_progress([ref]).get(ref.jid))
        fires = jobs.occurrences(ref, PREVIEW_COUNT, now)
    except ValueError:
        return error_page(
            request, session, ValidationFailed(f"status: {status!r} is not a result status")
        )
    except TaktError as exc:
        return error_page(request, session, exc)
    results = f"{base}/jobs/{ref.name}/results"
    runs = [run_of(entry, f"{results}/{entry.entry_id}") for entry in reversed(recent)]
    return page(
        request,
        "results.html",
        session,
        ref=ref.collection,
        base=base,
        job=ref.name,
        title=row.title,
        job_row=row,
        last_task=flower_task_id(ref.jid, row.last.entry_id) if row.last else None,
        flower=flower_url(request),
        history_chart=run_history_chart(runs),
        runs_shown=len(runs),
        next_runs_chart=next_runs_chart(now, fires),
        next_runs=fires,
        rows=[result_row(entry) for entry in entries],
        more=more,
        status=wanted.value if wanted else "",
        statuses=[s.value for s in JobExecutionStatus],
    )


def result_page(request: Request, session: ConsoleSession, ref: JobRef, entry_id: str) -> Response:
    """One result: status, times, retries, the message with the response excerpt."""
    jobs, _, _ = services(request)
    try:
        entries, _ = jobs.history(ref, skip=0, top=_PAGE_SIZE)
        record = jobs.get(ref)
    except TaktError as exc:
        return error_page(request, session, exc)
    found = next((e for e in entries if e.entry_id == entry_id), None)
    if found is None:
        return error_page(request, session, NotFound(f"result {entry_id!r} not found"))
    task_id = flower_task_id(ref.jid, entry_id)
    return page(
        request,
        "result.html",
        session,
        ref=ref.collection,
        base=collection_url(ref.collection),
        job=ref.name,
        title=record.properties.display_name or ref.name,
        row=result_row(found),
        flower=flower_url(request) + f"/task/{task_id}" if task_id else None,
        task_id=task_id,
    )
