"""Built-in management commands, run by ``Command`` jobs and by ``takt manage``.

A command is written as a command line, as at a prompt (MailStore's jobs run Management
API commands the same way). Unknown commands and bad arguments are refused when the job
is created, with the command's usage.

=====================  ===============================================================
command                what it does
=====================  ===============================================================
PurgeHistory           drops history entries older than ``--older-than`` (ISO 8601)
DeleteFinishedJobs     deletes Completed/Faulted jobs finished before ``--older-than``
ExportJobs             writes a collection's jobs (secrets included, file mode 0600)
ImportJobs             creates or replaces the jobs of an export file
VerifyStore            checks the store's invariants and reports what is wrong
=====================  ===============================================================
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import isodate

from scheduler.clock import to_ms
from scheduler.errors import ValidationFailed
from scheduler.models import JobCollection, JobProperties, JobState
from scheduler.planning import first_fire
from scheduler.store import JobStore

__all__ = ["COMMANDS", "CommandResult", "parse_command_line", "run_command_line"]


@dataclass(frozen=True, slots=True)
class CommandResult:
    ok: bool
    report: str


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValidationFailed(f"{message}\n{self.format_usage().strip()}", field="command")


def _duration(text: str) -> timedelta:
    try:
        value = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 duration") from exc
    if isinstance(value, isodate.Duration):
        value = value.totimedelta(start=datetime(2000, 1, 1))
    span = timedelta(seconds=float(value.total_seconds()))
    if span <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return span


Runner = Callable[[JobStore, argparse.Namespace, datetime], CommandResult]


def _purge_history(store: JobStore, args: argparse.Namespace, now: datetime) -> CommandResult:
    cutoff = to_ms(now - args.older_than)
    jobs = store.all_job_ids()
    dropped = sum(store.trim_history(jid, cutoff) for jid in jobs)
    return CommandResult(
        True,
        f"dropped {dropped} history entries older than "
        f"{isodate.duration_isoformat(args.older_than)} from {len(jobs)} jobs",
    )


def _delete_finished(store: JobStore, args: argparse.Namespace, now: datetime) -> CommandResult:
    cutoff = to_ms(now - args.older_than)
    deleted = 0
    while batch := store.finished_before(cutoff):
        for jid in batch:
            try:
                store.delete_job(jid)
            except LookupError:
                store.redis.zrem(store.keys.finished, jid)
            deleted += 1
    return CommandResult(
        True, f"deleted {deleted} jobs finished before {(now - args.older_than).isoformat()}"
    )


def _collection_id(store: JobStore, name: str) -> str:
    if name.count("/") == 2:
        return name
    matches = [cid for cid in store.collection_ids("") if cid.rsplit("/", 1)[1] == name]
    if len(matches) != 1:
        found = "no" if not matches else f"{len(matches)}"
        raise ValidationFailed(
            f"{found} collection(s) named {name!r}; give subscription/group/name"
        )
    return matches[0]


def _export(store: JobStore, args: argparse.Namespace, now: datetime) -> CommandResult:
    cid = _collection_id(store, args.collection)
    collection = store.get_collection(cid).collection.to_wire()
    jobs = [
        {"name": jid.rsplit("/", 1)[1], "properties": _exportable(record.properties)}
        for jid, record in (
            (f"{cid}/{n}", store.get_job(f"{cid}/{n}")) for n in store.job_names(cid)
        )
    ]
    path = Path(args.to)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"collection": cid, "definition": collection, "jobs": jobs}, handle, indent=2)
    return CommandResult(True, f"exported {len(jobs)} jobs of {cid} to {path}")


def _exportable(properties: JobProperties) -> dict[str, object]:
    wire = properties.to_wire()
    wire.pop("status", None)
    if properties.state is not None and properties.state.is_final:
        wire["state"] = JobState.DISABLED.value
    return wire


def _import(store: JobStore, args: argparse.Namespace, now: datetime) -> CommandResult:
    document = json.loads(Path(args.source).read_text())
    cid = document["collection"]
    store.put_collection(cid, JobCollection.model_validate(document.get("definition", {})))
    for job in document["jobs"]:
        properties = JobProperties.model_validate(job["properties"])
        enabled = (properties.state or JobState.ENABLED) is JobState.ENABLED
        fire = first_fire(properties, now) if enabled else None
        store.put_job(
            f"{cid}/{job['name']}",
            properties,
            owner=properties.owner or "admin",
            next_fire_ms=None if fire is None else to_ms(fire),
        )
    return CommandResult(True, f"imported {len(document['jobs'])} jobs into {cid}")


def _verify(store: JobStore, args: argparse.Namespace, now: datetime) -> CommandResult:
    from scheduler.verification import verify_store

    problems = verify_store(store)
    if not problems:
        return CommandResult(True, "the store is consistent")
    shown = "; ".join(problems[:20])
    return CommandResult(False, f"{len(problems)} problem(s): {shown}")


def _command(
    name: str, runner: Runner, *arguments: tuple[str, dict[str, object]]
) -> tuple[_Parser, Runner]:
    parser = _Parser(prog=name, add_help=False)
    for flag, options in arguments:
        parser.add_argument(flag, **options)  # type: ignore[arg-type]
    return parser, runner


_OLDER_THAN = (
    "--older-than",
    {"type": _duration, "default": _duration("P60D"), "dest": "older_than", "metavar": "DURATION"},
)

#: Every built-in command: its parser (usage) and what it runs.
COMMANDS: dict[str, tuple[_Parser, Runner]] = {
    "PurgeHistory": _command("PurgeHistory", _purge_history, _OLDER_THAN),
    "DeleteFinishedJobs": _command("DeleteFinishedJobs", _delete_finished, _OLDER_THAN),
    "ExportJobs": _command(
        "ExportJobs",
        _export,
        ("--collection", {"required": True, "metavar": "NAME"}),
        ("--to", {"required": True, "metavar": "PATH"}),
    ),
    "ImportJobs": _command(
        "ImportJobs", _import, ("--from", {"required": True, "dest": "source", "metavar": "PATH"})
    ),
    "VerifyStore": _command("VerifyStore", _verify),
}


def parse_command_line(line: str) -> tuple[Runner, argparse.Namespace]:
    """The command and its arguments; a 400 with the usage when either is wrong."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ValidationFailed(f"command line {line!r}: {exc}", field="command") from exc
    if not words or words[0] not in COMMANDS:
        known = ", ".join(sorted(COMMANDS))
        raise ValidationFailed(
            f"unknown command {words[0] if words else ''!r}; the commands are {known}",
            field="command",
        )
    parser, runner = COMMANDS[words[0]]
    return runner, parser.parse_args(words[1:])


def run_command_line(store: JobStore, line: str, now: datetime) -> CommandResult:
    """Parse and run one command line against ``store`` at ``now``."""
    runner, args = parse_command_line(line)
    return runner(store, args, now)
