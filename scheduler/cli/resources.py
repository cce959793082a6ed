"""The ``takt`` commands over the API (``jobs``, ``collections``, ``principals``), via the client.

Not to be confused with the built-in management commands that ``takt manage`` and
``Command`` jobs run (:mod:`scheduler.service.management`).

Each command talks to the API named by ``--url`` (else ``TAKT_API_URL``, else
``http://TAKT_API_HOST:TAKT_API_PORT``) with the key of ``--key`` (else ``TAKT_API_KEY``,
else the administrator key: ``TAKT_ADMIN_TOKEN`` or the ``admin-token`` file of
``TAKT_DATA_DIR``): the :class:`~scheduler.settings.ClientSettings`. Output is an aligned
table, or the API's JSON with ``--json``. An error prints the server's message and exits
with status 1; a bad ``TAKT_*`` variable exits with status 2 (a usage error), naming it.

Principals have one name, the API's (``/principals``), the console's and the docs':
``takt principals``. ``users`` is a hidden alias of it, kept so that scripts written
before the rename keep working.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import click

from scheduler.cli.settings_refused import client_settings
from scheduler.client import Collection, HistoryRecord, Job, SchedulerClient
from scheduler.domain.models import JobExecutionStatus, JobState, SkuName
from scheduler.errors import TaktError
from scheduler.service.templates import render_template
from scheduler.settings import ClientSettings

__all__ = ["collections", "jobs", "principals", "register"]

#: A click command's function, before :func:`_connected` gives it a client.
_Callback = Callable[..., None]


# Settings, connection and errors


def _key(flag: str | None, settings: ClientSettings) -> str:
    """The key to send: the flag, ``TAKT_API_KEY``, ``TAKT_ADMIN_TOKEN``, the key file."""
    if flag:
        return flag
    secret = settings.api_key or settings.admin_token
    if secret is not None:
        return secret.get_secret_value()
    # Read only: the file is made by the service (`takt up`), never by a client.
    path = settings.admin_token_path
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise click.ClickException(
            f"no API key: pass --key, set TAKT_API_KEY, or run where {path} exists"
        ) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read the admin key {path}: {exc}") from exc


@contextmanager
def _client(
    url: str | None, key: str | None, subscription: str | None, resource_group: str | None
) -> Iterator[SchedulerClient]:
    """A client for the flags, the settings filling what the flags leave out."""
    settings = client_settings()
    with SchedulerClient(
        url or settings.client_url,
        _key(key, settings),
        subscription=subscription or settings.subscription,
        resource_group=resource_group or settings.resource_group,
    ) as client:
        yield client


@contextmanager
def _errors_as_messages() -> Iterator[None]:
    """Takt's exceptions (the server's message) become a one-line error, exit status 1."""
    try:
        yield
    except TaktError as exc:
        raise click.ClickException(str(exc)) from exc


def _connected(*, json_output: bool = True) -> Callable[[_Callback], _Callback]:
    """Add the connection flags (and ``--json``) and pass ``client`` (and ``as_json``)."""

    def decorate(func: _Callback) -> _Callback:
        @functools.wraps(func)
        def command(
            url: str | None,
            key: str | None,
            subscription: str | None,
            resource_group: str | None,
            **params: Any,
        ) -> None:
            with _errors_as_messages(), _client(url, key, subscription, resource_group) as client:
                func(client, **params)

        options = [
            click.option("--url", metavar="URL", help="API root [TAKT_API_URL]."),
            click.option("--key", metavar="KEY", help="API key [TAKT_API_KEY, admin key]."),
            click.option("--subscription", help="Subscription id [TAKT_SUBSCRIPTION]."),
            click.option("--resource-group", help="Resource group [TAKT_RESOURCE_GROUP]."),
        ]
        if json_output:
            options.append(click.option("--json", "as_json", is_flag=True, help="Print JSON."))
        # click lists options in the reverse order they were applied: apply --url last.
        return functools.reduce(lambda wrapped, option: option(wrapped), reversed(options), command)

    return decorate


# Output


def _emit(as_json: bool, wire: Any, human: Callable[[], str]) -> None:
    click.echo(json.dumps(wire, indent=2) if as_json else human())


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain columns, two spaces apart, as wide as their widest cell."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [headers, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _fields(pairs: Sequence[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in pairs)
    return "\n".join(f"{label + ':':<{width + 1}}  {value}" for label, value in pairs)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _action(job: Job) -> str:
    action = job.properties.action
    if action.request is not None:
        return f"{action.request.method} {action.request.uri}"
    if action.queue_message is not None:
        return f"queue {action.queue_message.storage_account}/{action.queue_message.queue_name}"
    return action.type.value


def _state(job: Job) -> str:
    return job.properties.state.value if job.properties.state else "-"


def _job_row(job: Job) -> list[str]:
    status = job.properties.status
    return [
        job.name,
        _state(job),
        _when(status.next_execution_time if status else None),
        _when(status.last_execution_time if status else None),
        str(status.execution_count if status else 0),
        str(status.failure_count if status else 0),
        _action(job),
    ]


_JOB_HEADERS = ["NAME", "STATE", "NEXT RUN", "LAST RUN", "RUNS", "FAILURES", "ACTION"]


def _job_detail(job: Job) -> str:
    props = job.properties
    status = props.status
    recurrence = props.recurrence
    return _fields(
        [
            ("job", f"{job.collection}/{job.name}"),
            ("display name", props.display_name or "-"),
            ("owner", props.owner or "-"),
            ("state", _state(job)),
            ("action", _action(job)),
            ("start time", _when(props.start_time)),
            ("recurrence", json.dumps(recurrence.to_wire()) if recurrence else "once"),
            ("next run", _when(status.next_execution_time if status else None)),
            ("last run", _when(status.last_execution_time if status else None)),
            ("runs", str(status.execution_count if status else 0)),
            ("failures", str(status.failure_count if status else 0)),
            ("faults", str(status.faulted_count if status else 0)),
        ]
    )


def _emit_job(as_json: bool, job: Job) -> None:
    _emit(as_json, job.to_wire(), lambda: _job_detail(job))


def _history_row(record: HistoryRecord) -> list[str]:
    entry = record.entry
    return [
        _when(entry.start_time),
        entry.status.value,
        entry.action_name.value,
        str(entry.retry_count),
        entry.message.replace("\n", " ")[:80],
    ]


def _collection_row(collection: Collection) -> list[str]:
    props = collection.properties
    quota = props.quota
    max_jobs = quota.max_job_count if quota and quota.max_job_count is not None else None
    return [
        collection.name,
        collection.location or "-",
        props.sku.name.value if props.sku and props.sku.name else "-",
        props.state.value if props.state else "-",
        "-" if max_jobs is None else str(max_jobs),
    ]


_COLLECTION_HEADERS = ["NAME", "LOCATION", "SKU", "STATE", "MAX JOBS"]
_ARM_PLACE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/")


def _place(collection: Collection) -> list[str]:
    """The subscription and resource group a collection lives in, from its ARM id."""
    place = _ARM_PLACE.match(collection.id)
    return [place["sub"], place["rg"]] if place else ["-", "-"]


def _choice(values: Sequence[str]) -> click.Choice[str]:
    return click.Choice(list(values), case_sensitive=False)


def _read_job_file(source: TextIO) -> dict[str, Any]:
    try:
        document = json.load(source)
    except ValueError as exc:  # a JSONDecodeError, or bytes that are not UTF-8
        raise click.ClickException(f"{source.name}: not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise click.ClickException(f"{source.name}: a job is a JSON object")
    return document


# takt jobs


@click.group()
def jobs() -> None:
    """Create, inspect, run and change jobs."""


@jobs.command("list")
@click.argument("collection")
@click.option("--state", type=_choice([s.value for s in JobState]), help="Only this state.")
@click.option("--top", type=click.IntRange(min=1), help="At most this many jobs.")
@_connected()
def list_jobs(
    client: SchedulerClient, collection: str, state: str | None, top: int | None, as_json: bool
) -> None:
    """List the jobs of COLLECTION."""
    found = client.list_jobs(collection, state=state, top=top)
    _emit(
        as_json,
        [job.to_wire() for job in found],
        lambda: _table(_JOB_HEADERS, [_job_row(job) for job in found]),
    )


@jobs.command("show")
@click.argument("collection")
@click.argument("job")
@_connected()
def show_job(client: SchedulerClient, collection: str, job: str, as_json: bool) -> None:
    """Show a job: definition, state and status."""
    _emit_job(as_json, client.get_job(collection, job))


@jobs.command("create")
@click.argument("collection")
@click.argument("job")
@click.option(
    "-f",
    "--file",
    "source",
    type=click.File("r"),
    help="The job's JSON: {\"properties\": {...}} or the properties ('-': stdin).",
)
@click.option("--template", help="Make the job from a template (see GET .../templates).")
@click.option(
    "--set",
    "settings_",
    multiple=True,
    metavar="FIELD=VALUE",
    help="A template field's value (repeatable).",
)
@_connected()
def create_job(
    client: SchedulerClient,
    collection: str,
    job: str,
    source: TextIO | None,
    template: str | None,
    settings_: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create JOB in COLLECTION from a JSON file or a template, or replace it."""
    if (source is None) == (template is None):
        raise click.UsageError("give exactly one of -f/--file and --template")
    if template is not None:
        values = dict(_field_value(item) for item in settings_)
        properties = render_template(template, values)
    else:
        assert source is not None
        properties = _read_job_file(source)
    _emit_job(as_json, client.create_job(collection, job, properties))


def _field_value(item: str) -> tuple[str, str]:
    field, sep, value = item.partition("=")
    if not sep or not field:
        raise click.BadParameter(f"{item!r} is not FIELD=VALUE", param_hint="--set")
    return field, value


@jobs.command("run")
@click.argument("collection")
@click.argument("job")
@_connected(json_output=False)
def run_job(client: SchedulerClient, collection: str, job: str) -> None:
    """Run a job once now, whatever its schedule."""
    client.run_job(collection, job)
    click.echo(f"job {collection}/{job}: run requested")


@jobs.command("enable")
@click.argument("collection")
@click.argument("job")
@_connected()
def enable_job(client: SchedulerClient, collection: str, job: str, as_json: bool) -> None:
    """Enable a job: it runs on its schedule again."""
    _emit_job(as_json, client.enable_job(collection, job))


@jobs.command("disable")
@click.argument("collection")
@click.argument("job")
@_connected()
def disable_job(client: SchedulerClient, collection: str, job: str, as_json: bool) -> None:
    """Disable a job: it does not run until enabled."""
    _emit_job(as_json, client.disable_job(collection, job))


@jobs.command("rename")
@click.argument("collection")
@click.argument("job")
@click.argument("new_name")
@_connected()
def rename_job(
    client: SchedulerClient, collection: str, job: str, new_name: str, as_json: bool
) -> None:
    """Set a job's display name to NEW_NAME (its path never changes)."""
    _emit_job(as_json, client.rename_job(collection, job, new_name))


@jobs.command("chown")
@click.argument("collection")
@click.argument("job")
@click.argument("owner")
@_connected()
def change_owner(
    client: SchedulerClient, collection: str, job: str, owner: str, as_json: bool
) -> None:
    """Hand a job to OWNER, an administrator principal."""
    _emit_job(as_json, client.change_owner(collection, job, owner))


@jobs.command("delete")
@click.argument("collection")
@click.argument("job")
@_connected(json_output=False)
def delete_job(client: SchedulerClient, collection: str, job: str) -> None:
    """Delete a job and its history."""
    client.delete_job(collection, job)
    click.echo(f"job {collection}/{job}: deleted")


@jobs.command("history")
@click.argument("collection")
@click.argument("job")
@click.option(
    "--status",
    type=_choice([s.value for s in JobExecutionStatus]),
    help="Only entries with this status.",
)
@click.option("--top", type=click.IntRange(min=1), help="At most this many entries.")
@_connected()
def job_history(
    client: SchedulerClient,
    collection: str,
    job: str,
    status: str | None,
    top: int | None,
    as_json: bool,
) -> None:
    """Show a job's history, newest first."""
    records = client.history(collection, job, status=status, top=top)
    headers = ["START", "STATUS", "ACTION", "RETRY", "MESSAGE"]
    _emit(
        as_json,
        [record.to_wire() for record in records],
        lambda: _table(headers, [_history_row(record) for record in records]),
    )


@jobs.command("occurrences")
@click.argument("collection")
@click.argument("job")
@click.option("--count", type=click.IntRange(1, 1000), default=10, show_default=True)
@_connected()
def job_occurrences(
    client: SchedulerClient, collection: str, job: str, count: int, as_json: bool
) -> None:
    """Show when a job will run next."""
    moments = client.occurrences(collection, job, count)
    _emit(
        as_json,
        [_iso(moment) for moment in moments],
        lambda: "\n".join(_when(moment) for moment in moments),
    )


# takt collections


@click.group()
def collections() -> None:
    """Create, inspect and delete job collections."""


@collections.command("list")
@click.option(
    "--all",
    "everywhere",
    is_flag=True,
    help="Every collection, in every subscription and resource group.",
)
@_connected()
def list_collections(client: SchedulerClient, everywhere: bool, as_json: bool) -> None:
    """List the job collections of the resource group (--all: every one Takt holds)."""
    if everywhere:
        found = client.list_all_collections()
        headers = ["SUBSCRIPTION", "RESOURCE GROUP", *_COLLECTION_HEADERS]
        rows = [[*_place(c), *_collection_row(c)] for c in found]
    else:
        found = client.list_collections()
        headers, rows = _COLLECTION_HEADERS, [_collection_row(c) for c in found]
    _emit(as_json, [collection.to_wire() for collection in found], lambda: _table(headers, rows))


@collections.command("show")
@click.argument("name")
@_connected()
def show_collection(client: SchedulerClient, name: str, as_json: bool) -> None:
    """Show a job collection."""
    found = client.get_collection(name)
    _emit(as_json, found.to_wire(), lambda: _table(_COLLECTION_HEADERS, [_collection_row(found)]))


@collections.command("create")
@click.argument("name")
@click.option("--sku", type=_choice([s.value for s in SkuName]), help="Azure's SKU name.")
@click.option("--location", default="local", show_default=True)
@_connected()
def create_collection(
    client: SchedulerClient, name: str, sku: str | None, location: str, as_json: bool
) -> None:
    """Create a job collection, or replace the one of that NAME."""
    made = client.create_collection(name, location=location, sku=sku)
    _emit(as_json, made.to_wire(), lambda: _table(_COLLECTION_HEADERS, [_collection_row(made)]))


@collections.command("delete")
@click.argument("name")
@_connected(json_output=False)
def delete_collection(client: SchedulerClient, name: str) -> None:
    """Delete a job collection and every job in it."""
    client.delete_collection(name)
    click.echo(f"collection {name}: deleted")


@collections.command("enable")
@click.argument("name")
@_connected(json_output=False)
def enable_collection(client: SchedulerClient, name: str) -> None:
    """Enable a job collection."""
    client.enable_collection(name)
    click.echo(f"collection {name}: enabled")


@collections.command("disable")
@click.argument("name")
@_connected(json_output=False)
def disable_collection(client: SchedulerClient, name: str) -> None:
    """Disable a job collection: none of its jobs runs."""
    client.disable_collection(name)
    click.echo(f"collection {name}: disabled")


# takt principals (and its hidden alias, users)


@click.group()
def principals() -> None:
    """Manage principals: named API keys with a role (administrators only)."""


@principals.command("add")
@click.argument("name")
@click.option("--role", type=_choice(["admin", "reader"]), required=True)
@_connected()
def add_principal(client: SchedulerClient, name: str, role: str, as_json: bool) -> None:
    """Make principal NAME and print its key (shown this once; keep it)."""
    key = client.add_principal(name, role)
    if not as_json:
        click.echo(f"principal {name} ({role}); its key, shown this once:", err=True)
    _emit(as_json, {"name": name, "role": role, "key": key}, lambda: key)


@principals.command("list")
@_connected()
def list_principals(client: SchedulerClient, as_json: bool) -> None:
    """List the principals and their roles."""
    found = client.list_principals()
    _emit(
        as_json,
        [principal.to_wire() for principal in found],
        lambda: _table(["NAME", "ROLE"], [[p.name, p.role] for p in found]),
    )


@principals.command("revoke")
@click.argument("name")
@_connected(json_output=False)
def revoke_principal(client: SchedulerClient, name: str) -> None:
    """Delete principal NAME: its key stops working at once."""
    client.revoke_principal(name)
    click.echo(f"principal {name}: revoked")


#: The name the CLI had before it took the API's; hidden from help, same commands.
_users_alias = click.Group(
    "users",
    commands=principals.commands,
    help="Alias of `takt principals`.",
    hidden=True,
)


def register(cli: click.Group) -> None:
    """Add ``collections``, ``jobs`` and ``principals`` (and its hidden alias ``users``) to
    the ``takt`` group."""
    for group in (collections, jobs, principals, _users_alias):
        cli.add_command(group)
