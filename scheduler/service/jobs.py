"""Jobs with Azure Scheduler's rules: one service behind the ARM and the classic routes."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from pydantic import ValidationError

from scheduler.clock import to_ms
from scheduler.domain.credentials import MASK, keep_stored, redact, secret_values
from scheduler.domain.credentials import mask as mask_credentials
from scheduler.domain.merge_patch import merge_patch
from scheduler.domain.models import (
    ActionType,
    JobExecutionStatus,
    JobProperties,
    JobState,
    describe_validation_error,
)
from scheduler.domain.planning import first_fire, upcoming
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.errors import JobDisabled, JobFinished, ValidationFailed
from scheduler.service.command_line import parse_command_line
from scheduler.service.limits import check_limits
from scheduler.service.outbound import NetworkPolicy
from scheduler.service.quotas import check_job_quota, effective_quota
from scheduler.service.retries import check_retry_policy
from scheduler.service.service_bus import check_service_bus
from scheduler.store.activity import Activity, in_progress
from scheduler.store.async_jobs import AsyncJobStore
from scheduler.store.jobs import JobRecord, JobStore, NewJob, SaveContext, StoredHistoryEntry
from scheduler.store.principals import Principal, PrincipalBook, require_admin_role

__all__ = ["JobPage", "JobService", "ManualRunner", "parse_filter"]

#: Publishes a manual run of a job now: (job id, action type, occurrence ms, worker pool).
ManualRunner = Callable[[str, ActionType, int, str | None], None]

_E = TypeVar("_E", JobState, JobExecutionStatus)
_FILTER = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_SCHEDULE_FIELDS = ("startTime", "recurrence")


def parse_filter(expression: str | None, field: str, kind: type[_E]) -> _E | None:
    """The value of an OData ``$filter`` of the one form Azure documents: ``field eq 'x'``."""
    if expression is None:
        return None
    match = _FILTER.match(expression)
    if match is None or match.group(1).lower() != field.lower():
        raise ValidationFailed(
            f"$filter {expression!r} is not supported; use {field} eq '<value>'", field="$filter"
        )
    try:
        return kind(match.group(2))
    except ValueError as exc:
        known = ", ".join(member.value for member in kind)
        raise ValidationFailed(
            f"$filter: {match.group(2)!r} is not a {field} (one of {known})", field="$filter"
        ) from exc


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[JobRecord]
    more: bool


def _refuse_server_fields(properties: JobProperties) -> None:
    if properties.status is not None:
        raise ValidationFailed("properties.status is read-only", field="properties.status")
    if properties.state is not None and properties.state.is_final:
        raise ValidationFailed(
            "properties.state may only be set to Enabled or Disabled, "
            f"not {properties.state.value}",
            field="properties.state",
        )


def _refuse_finished(ref: JobRef, record: JobRecord | None) -> None:
    if record is not None and record.state.is_final:
        raise JobFinished(
            f"job {ref.name!r} is {record.state.value}; a finished job can be deleted, "
            "not updated or run"
        )


def _check_commands(properties: JobProperties) -> None:
    """A Command action's line must parse now, not fail at 3 a.m."""
    for action, where in (
        (properties.action, "properties.action"),
        (properties.action.error_action, "properties.action.errorAction"),
    ):
        if action is not None and action.command is not None:
            try:
                parse_command_line(action.command)
            except ValidationFailed as exc:
                raise ValidationFailed(f"{where}.command: {exc}", field=f"{where}.command") from exc


def _with_stored_credentials(
    properties: JobProperties, existing: JobRecord | None
) -> JobProperties:
    """``properties`` with each credential sent back as read (the mask) replaced by the
    stored one (the secret rule, :mod:`scheduler.domain.credentials`)."""
    if existing is None and MASK not in properties.action.model_dump_json(exclude_none=True):
        return properties  # a new job without a mask: nothing to look for (the hot path)
    wire = properties.to_wire()
    if not keep_stored(wire, existing.properties.to_wire() if existing else None):
        return properties
    try:
        return JobProperties.model_validate(wire)
    except ValidationError as exc:
        # The writer sent the mask: a message that quotes a value must not show the
        # credential put back in its place.
        message = describe_validation_error(exc, ("properties",))
        raise ValidationFailed(redact(message, secret_values(wire))) from None


def _redacted(entries: list[StoredHistoryEntry], record: JobRecord) -> list[StoredHistoryEntry]:
    """History as read: a credential of the job echoed into a message (by the target's
    answer, by an error) shows as the mask."""
    secrets = secret_values(record.properties.to_wire())
    if not secrets:
        return entries
    return [
        StoredHistoryEntry(
            e.entry_id,
            e.entry.model_copy(update={"message": redact(e.entry.message, secrets)}),
        )
        for e in entries
    ]


def _owner(
    properties: JobProperties, existing: JobRecord | None, principal: Principal, role: str | None
) -> str:
    """The job's owner; a named one must be an administrator (``role`` is its role)."""
    if properties.owner is not None:
        return require_admin_role(properties.owner, role, "properties.owner")
    if existing is not None and existing.properties.owner:
        return existing.properties.owner
    return principal.name


class JobService:
    """Create, change, run, list and delete jobs; every rule of Azure's lives here."""

    def __init__(
        self,
        store: JobStore,
        principals: PrincipalBook,
        runner: ManualRunner,
        *,
        max_timeout: timedelta = timedelta(minutes=10),
        async_store: AsyncJobStore | None = None,
        outbound: NetworkPolicy | None = None,
        dispatchable: Collection[ActionType] | None = None,
    ) -> None:
        """``dispatchable``: the action kinds this deployment can hand to a worker (the
        routes of :mod:`scheduler.dispatch`); a job of another kind is refused, since no
        beat could publish it. None: every kind."""
        self.store = store
        self.async_store = async_store
        self.principals = principals
        self.runner = runner
        self.max_timeout = max_timeout
        self.outbound = outbound or NetworkPolicy.default()
        self.dispatchable = frozenset(ActionType if dispatchable is None else dispatchable)

    def put(
        self, ref: JobRef, properties: JobProperties, principal: Principal, now: datetime
    ) -> tuple[JobRecord, bool]:
        """Create or replace a job; returns the stored job and whether it was created."""
        _refuse_server_fields(properties)
        context = self.store.save_context(ref.jid, properties.owner)
        return self.store.put_job_and_get(self._new_job(ref, properties, principal, now, context))

    async def put_async(
        self, ref: JobRef, properties: JobProperties, principal: Principal, now: datetime
    ) -> tuple[JobRecord, bool]:
        """:meth:`put` on the event loop, over the asyncio store (the API's hot path)."""
        if self.async_store is None:
            raise RuntimeError("this JobService was made without an async_store")
        _refuse_server_fields(properties)
        context = await self.async_store.save_context(ref.jid, properties.owner)
        job = self._new_job(ref, properties, principal, now, context)
        return await self.async_store.put_job_and_get(job)

    def checked_job(
        self,
        ref: JobRef,
        properties: JobProperties,
        principal: Principal,
        now: datetime,
        context: SaveContext,
    ) -> NewJob:
        """The job :meth:`put` would write in ``context``, every rule applied, nothing
        written: ImportJobs checks a whole document this way before it writes any of it."""
        _refuse_server_fields(properties)
        return self._new_job(ref, properties, principal, now, context)

    def _new_job(
        self,
        ref: JobRef,
        properties: JobProperties,
        principal: Principal,
        now: datetime,
        context: SaveContext,
    ) -> NewJob:
        _refuse_finished(ref, context.existing)
        if properties.start_time is None:
            # Azure's default: a job starts when it is created; recurrences anchor there.
            start = now.replace(microsecond=now.microsecond // 1000 * 1000)
            properties = properties.model_copy(update={"start_time": start})
        return self._checked(
            ref, properties, context.existing, principal, now, context, keep_next=False
        )

    def patch(
        self, ref: JobRef, patch: dict[str, Any], principal: Principal, now: datetime
    ) -> JobRecord:
        """Merge ``patch`` (RFC 7396) into the job; schedule changes apply from now on."""
        existing = self.get(ref)
        _refuse_finished(ref, existing)
        if "status" in patch:
            raise ValidationFailed("properties.status is read-only", field="properties.status")
        # Merged over the job as read (credentials masked), so a credential the patch does
        # not name is kept like one sent back masked: only while it goes to the same place.
        current = mask_credentials(existing.properties.to_wire())
        current.pop("status", None)
        merged = merge_patch(current, patch)
        try:
            properties = JobProperties.model_validate(merged)
        except ValidationError as exc:
            raise ValidationFailed(describe_validation_error(exc, ("properties",))) from exc
        _refuse_server_fields(properties)
        same_schedule = all(current.get(f) == merged.get(f) for f in _SCHEDULE_FIELDS)
        same_state = properties.state in (None, existing.state)
        record, _ = self._save(
            ref, properties, existing, principal, now, keep_next=same_schedule and same_state
        )
        return record

    def _save(
        self,
        ref: JobRef,
        properties: JobProperties,
        existing: JobRecord | None,
        principal: Principal,
        now: datetime,
        *,
        keep_next: bool,
    ) -> tuple[JobRecord, bool]:
        context = self.store.save_context(ref.jid, properties.owner)
        job = self._checked(ref, properties, existing, principal, now, context, keep_next=keep_next)
        return self.store.put_job_and_get(job)

    def _checked(
        self,
        ref: JobRef,
        properties: JobProperties,
        existing: JobRecord | None,
        principal: Principal,
        now: datetime,
        context: SaveContext,
        *,
        keep_next: bool,
    ) -> NewJob:
        """The job to write, once every rule has passed (the rules need no I/O: what they
        look at was read in ``context``)."""
        collection = context.require_collection()
        properties = _with_stored_credentials(properties, existing)
        check_service_bus(properties)
        self._check_dispatchable(properties)
        _check_commands(properties)
        check_limits(properties)
        quota = effective_quota(collection.collection)
        check_job_quota(quota, properties, context.job_count - (existing is not None))
        check_retry_policy(properties.action, allow_short=quota.allows_short_retries)
        self._check_timeouts(properties)
        self._check_targets(properties)
        owner = _owner(properties, existing, principal, context.owner_role)
        state = properties.state or (existing.state if existing else JobState.ENABLED)
        next_ms = self._next_fire_ms(properties, existing, state, now, keep_next=keep_next)
        pool = collection.collection.properties.queue if collection.collection.properties else None
        return NewJob(
            ref.jid,
            properties.model_copy(update={"state": state}),
            owner=owner,
            next_fire_ms=next_ms,
            queue=properties.queue or pool,
        )

    def _check_dispatchable(self, properties: JobProperties) -> None:
        actions = (
            (properties.action, "properties.action"),
            (properties.action.error_action, "properties.action.errorAction"),
        )
        for action, where in actions:
            if action is not None and action.type not in self.dispatchable:
                raise ValidationFailed(
                    f"{where}.type: {action.type.value} actions are not supported by this "
                    "server (no worker queue carries them)",
                    field=f"{where}.type",
                )

    def _check_targets(self, properties: JobProperties) -> None:
        """A URI aimed at a literal address the outbound policy refuses is refused now;
        names are checked when a worker connects (:mod:`scheduler.service.outbound`)."""
        actions = (
            (properties.action, "properties.action"),
            (properties.action.error_action, "properties.action.errorAction"),
        )
        for action, where in actions:
            if action is not None and action.request is not None:
                self.outbound.check_uri(action.request.uri, f"{where}.request.uri")

    def _check_timeouts(self, properties: JobProperties) -> None:
        actions = (
            (properties.action, "properties.action"),
            (properties.action.error_action, "properties.action.errorAction"),
        )
        for action, where in actions:
            timeout = action.request.timeout if action and action.request else None
            if timeout is not None and not timedelta(0) < timeout <= self.max_timeout:
                field = f"{where}.request.timeout"
                raise ValidationFailed(
                    f"{field}: must be positive and at most {self.max_timeout.total_seconds():g} s"
                    " (TAKT_HTTP_TIMEOUT_MAX_S)",
                    field=field,
                )

    @staticmethod
    def _next_fire_ms(
        properties: JobProperties,
        existing: JobRecord | None,
        state: JobState,
        now: datetime,
        *,
        keep_next: bool,
    ) -> int | None:
        if state is not JobState.ENABLED:
            return None
        if keep_next and existing is not None and existing.properties.status is not None:
            kept = existing.properties.status.next_execution_time
            return None if kept is None else to_ms(kept)
        fire = first_fire(properties, now)
        return None if fire is None else to_ms(fire)

    def get(self, ref: JobRef) -> JobRecord:
        self.store.get_collection(ref.collection.cid)
        return self.store.get_job(ref.jid)

    def delete(self, ref: JobRef) -> None:
        self.store.get_collection(ref.collection.cid)
        self.store.delete_job(ref.jid)

    def run(self, ref: JobRef, now: datetime) -> None:
        """Run an enabled job now, outside its schedule (MailStore's "Start")."""
        collection = self.store.get_collection(ref.collection.cid).collection
        record = self.store.get_job(ref.jid)
        state = (
            collection.properties.state.value
            if collection.properties and collection.properties.state
            else None
        )
        if state != "Enabled":
            raise JobDisabled(
                f"job collection {ref.collection.name!r} is {state}; its jobs cannot run"
            )
        _refuse_finished(ref, record)
        if record.state is not JobState.ENABLED:
            raise JobDisabled(
                f"job {ref.name!r} is disabled; a disabled job cannot run, not even by hand"
            )
        self.runner(ref.jid, record.properties.action.type, to_ms(now), record.queue)

    def set_state(self, ref: JobRef, state: JobState, now: datetime) -> None:
        """Enable or disable one job (finished jobs keep their final state)."""
        record = self.store.get_job(ref.jid)
        if record.state.is_final or record.state is state:
            return
        fire = first_fire(record.properties, now) if state is JobState.ENABLED else None
        self.store.set_job_state(ref.jid, state, None if fire is None else to_ms(fire))

    def list_page(
        self, collection: CollectionRef, *, skip: int, top: int, state: JobState | None = None
    ) -> JobPage:
        """One page of the collection's jobs, optionally only those in ``state``."""
        self.store.get_collection(collection.cid)
        if state is None:
            names = self.store.job_names(collection.cid, skip=skip, top=top + 1)
            jobs = self.store.get_jobs([f"{collection.cid}/{n}" for n in names])
            return JobPage(jobs[:top], len(jobs) > top)
        names = self.store.job_names(collection.cid)
        matching = [
            job
            for job in self.store.get_jobs([f"{collection.cid}/{n}" for n in names])
            if job.state is state
        ]
        return JobPage(matching[skip : skip + top], len(matching) > skip + top)

    def history(
        self, ref: JobRef, *, skip: int, top: int, status: JobExecutionStatus | None = None
    ) -> tuple[list[StoredHistoryEntry], bool]:
        """One page of the job's history, newest first, optionally only one status."""
        record = self.get(ref)
        if status is None:
            entries = self.store.history(ref.jid, skip=skip, top=top + 1)
            return _redacted(entries[:top], record), len(entries) > top
        entries = [
            e for e in self.store.history(ref.jid, skip=0, top=10_000) if e.entry.status is status
        ]
        return _redacted(entries[skip : skip + top], record), len(entries) > skip + top

    def occurrences(self, ref: JobRef, count: int, now: datetime) -> list[datetime]:
        """The next ``count`` instants the job fires at (none for a finished job)."""
        record = self.get(ref)
        if record.state.is_final:
            return []
        status = record.properties.status
        next_fire = status.next_execution_time if status else None
        return list(islice(upcoming(record.properties, next_fire, now), count))

    def in_progress(self, refs: Iterable[JobRef]) -> dict[str, Activity]:
        """The jobs among ``refs`` with an attempt in progress, by job id, and what each is
        doing (queued, running, waiting to retry); idle jobs are left out. One ledger scan
        for the whole list (:mod:`scheduler.store.activity`)."""
        return in_progress(self.store, [ref.jid for ref in refs])
