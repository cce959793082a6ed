"""Built-in management commands, run by ``Command`` jobs and by ``takt manage``.

A command is written as a command line, as at a prompt (MailStore's jobs run Management
API commands the same way); :mod:`scheduler.service.command_line` is its grammar, checked when a
job is written. ExportJobs and ImportJobs use files of the command folder only
(:mod:`scheduler.service.command_folder`), and ImportJobs goes through the API's rules
(:mod:`scheduler.service.exchange`).

=====================  ===============================================================
command                what it does
=====================  ===============================================================
PurgeHistory           drops history entries older than ``--older-than`` (ISO 8601)
DeleteFinishedJobs     deletes Completed/Faulted jobs finished before ``--older-than``
ExportJobs             writes a collection's jobs to a new file of the command folder,
                       mode 0600, secrets masked (``takt manage --include-secrets``
                       keeps them)
ImportJobs             checks an export file whole, then creates or replaces its jobs
VerifyStore            checks the store's invariants and reports what is wrong
=====================  ===============================================================
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import isodate

from scheduler.clock import to_ms
from scheduler.errors import ValidationFailed
from scheduler.service.command_folder import CommandFolder
from scheduler.service.command_line import NOW_FIELD, parse_command_line
from scheduler.service.exchange import export_document, find_collection, plan_import
from scheduler.service.job_collections import CollectionService
from scheduler.service.jobs import JobService
from scheduler.service.outbound import NetworkPolicy
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore
from scheduler.store.principals import PrincipalBook
from scheduler.store.verification import verify_store

__all__ = ["COMMANDS", "CommandContext", "CommandResult", "parse_command_line", "run_command_line"]

#: The largest export file ImportJobs reads (a thousand 16 KB jobs fit four times over).
MAX_IMPORT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CommandResult:
    ok: bool
    report: str


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a command runs against: the store, the command folder, the API's rules."""

    store: JobStore
    folder: CommandFolder
    jobs: JobService
    collections: CollectionService
    include_secrets: bool = False

    @classmethod
    def of(
        cls, store: JobStore, settings: TaktSettings, *, include_secrets: bool = False
    ) -> CommandContext:
        jobs = JobService(
            store,
            PrincipalBook(store),
            _never_runs,
            max_timeout=timedelta(seconds=settings.http_timeout_max_s),
            outbound=NetworkPolicy.from_settings(settings),
        )
        return cls(
            store, CommandFolder.of(settings), jobs, CollectionService(store, jobs), include_secrets
        )


def _never_runs(*_: object) -> None:
    raise RuntimeError("management commands never run jobs")


CommandRunner = Callable[[CommandContext, argparse.Namespace, datetime], CommandResult]


def _purge_history(ctx: CommandContext, args: argparse.Namespace, now: datetime) -> CommandResult:
    cutoff = to_ms(now - args.older_than)
    jobs = ctx.store.all_job_ids()
    dropped = sum(ctx.store.trim_history(jid, cutoff) for jid in jobs)
    return CommandResult(
        True,
        f"dropped {dropped} history entries older than "
        f"{isodate.duration_isoformat(args.older_than)} from {len(jobs)} jobs",
    )


def _delete_finished(ctx: CommandContext, args: argparse.Namespace, now: datetime) -> CommandResult:
    store = ctx.store
    cutoff = to_ms(now - args.older_than)
    deleted = 0
    while batch := store.finished_before(cutoff):
        for jid in batch:
            try:
                store.delete_job(jid)
            except LookupError:
                store.forget_finished(jid)
            deleted += 1
    return CommandResult(
        True, f"deleted {deleted} jobs finished before {(now - args.older_than).isoformat()}"
    )


def _export(ctx: CommandContext, args: argparse.Namespace, now: datetime) -> CommandResult:
    cid = find_collection(ctx.store, args.collection)
    document = export_document(ctx.store, cid, include_secrets=ctx.include_secrets)
    name = args.to.replace(NOW_FIELD, now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
    ctx.folder.write_new(name, json.dumps(document, indent=2).encode())
    secrets = "with secrets" if ctx.include_secrets else "secrets masked"
    return CommandResult(
        True, f"exported {len(document['jobs'])} jobs of {cid} to {name} ({secrets})"
    )


def _import(ctx: CommandContext, args: argparse.Namespace, now: datetime) -> CommandResult:
    data = ctx.folder.read(args.source, max_bytes=MAX_IMPORT_BYTES)
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, nested too deep
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        raise ValidationFailed(f"{args.source}: not JSON ({reason})", field="--from") from exc
    try:
        plan = plan_import(document, ctx.jobs, now)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{exc} (nothing was imported)", field=exc.field) from exc
    plan.apply(ctx.collections)
    return CommandResult(True, f"imported {len(plan.jobs)} jobs into {plan.ref.cid}")


def _verify(ctx: CommandContext, args: argparse.Namespace, now: datetime) -> CommandResult:
    problems = verify_store(ctx.store)
    if not problems:
        return CommandResult(True, "the store is consistent")
    shown = "; ".join(problems[:20])
    return CommandResult(False, f"{len(problems)} problem(s): {shown}")


#: Every built-in command and what it runs (its grammar: :mod:`scheduler.service.command_line`).
COMMANDS: dict[str, CommandRunner] = {
    "DeleteFinishedJobs": _delete_finished,
    "ExportJobs": _export,
    "ImportJobs": _import,
    "PurgeHistory": _purge_history,
    "VerifyStore": _verify,
}


def run_command_line(
    store: JobStore,
    line: str,
    now: datetime,
    settings: TaktSettings,
    *,
    include_secrets: bool = False,
) -> CommandResult:
    """Parse and run one command line against ``store`` at ``now``.

    ``include_secrets`` is ``takt manage --include-secrets``: an administrator's export
    with the secrets in it. A Command job never sets it.
    """
    command = parse_command_line(line)
    if include_secrets and command.name != "ExportJobs":
        raise ValidationFailed(
            f"--include-secrets applies to ExportJobs only, not {command.name}",
            field="--include-secrets",
        )
    context = CommandContext.of(store, settings, include_secrets=include_secrets)
    return COMMANDS[command.name](context, command.args, now)
