"""The ``takt`` group and the service commands: ``up``, ``api``, ``beat``, ``worker``, ``flower``.

Beside them ``manage`` runs one built-in management command against the store
(:mod:`scheduler.service.management`); the commands over the API (``jobs``,
``collections``, ``principals``) are :mod:`scheduler.cli.resources`'s. Each service command
imports what it runs inside its function, so that ``takt --help`` and the commands over the
API load none of the services (the worker's app alone doubles a command's start).
"""

from __future__ import annotations

import logging
import sys

import click

from scheduler.cli.resources import register
from scheduler.cli.settings_refused import service_settings
from scheduler.errors import ConfigurationError
from scheduler.settings import TaktSettings, export_flower_login, flower_variables

__all__ = ["main"]

_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def _settings() -> TaktSettings:
    """The settings; a bad or unknown ``TAKT_*`` variable is one line and exit status 2."""
    return service_settings()


@click.group()
@click.version_option(package_name="takt")
def cli() -> None:
    """Takt: a job scheduler that speaks the Azure Scheduler REST API, on Celery and Redis."""


@cli.command(context_settings=_PASS_THROUGH)
@click.option("--flower/--no-flower", default=True, help="Also run Flower (default: on).")
@click.option(
    "--ha",
    is_flag=True,
    help="Embedded Valkey as a primary, a replica and three Sentinels that fail over "
    "(not with TAKT_REDIS_URL).",
)
@click.argument("worker_args", nargs=-1, type=click.UNPROCESSED)
def up(flower: bool, ha: bool, worker_args: tuple[str, ...]) -> None:
    """Run everything in the foreground: embedded Valkey (unless TAKT_REDIS_URL), API and
    console, beat, worker and Flower. Extra arguments go to the Celery worker."""
    from scheduler.cli.supervisor import run_group

    sys.exit(run_group(_settings(), worker_args, flower=flower, ha=ha))


@cli.command()
def api() -> None:
    """Run the HTTP API (TAKT_API_HOST:TAKT_API_PORT)."""
    import uvicorn

    from scheduler.api import create_api
    from scheduler.api.access_log import AccessLog
    from scheduler.domain.redaction import quiet_http_logging

    settings = _settings()
    _fail_unless_ready(settings)
    logging.basicConfig(level=settings.log_level)
    quiet_http_logging()
    uvicorn.run(
        AccessLog(create_api(settings)),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        # X-Forwarded-For/-Proto only from TAKT_TRUSTED_PROXIES (uvicorn's default trusts
        # 127.0.0.1, so any local process could claim any address).
        proxy_headers=bool(settings.trusted_proxy_networks),
        forwarded_allow_ips=[str(net) for net in settings.trusted_proxy_networks] or None,
        access_log=False,  # AccessLog writes the line, more cheaply and with the duration
    )


def _fail_unless_ready(settings: TaktSettings) -> None:
    """Exit with one line (status 2) when the API's port is taken or the store does not
    answer: a setting to change, not a traceback."""
    from scheduler.cli.preflight import listen_problem, store_problem

    try:
        problem = listen_problem(
            settings.api_host,
            settings.api_port,
            host_setting="TAKT_API_HOST",
            port_setting="TAKT_API_PORT",
        ) or store_problem(settings)
    except ConfigurationError as exc:
        problem = str(exc)
    if problem is not None:
        click.echo(f"takt: {problem}", err=True)
        sys.exit(2)


@cli.command(context_settings=_PASS_THROUGH)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run a beat (any number may run). Extra arguments go to `celery beat`."""
    _celery(["beat", "--scheduler", "beat:JobScheduler", *celery_args])


@cli.command(context_settings=_PASS_THROUGH)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a worker. Extra arguments go to `celery worker` (e.g. -c 200 -Q takt.http)."""
    _celery(["worker", *celery_args])


@cli.command(context_settings=_PASS_THROUGH)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(flower_args: tuple[str, ...]) -> None:
    """Run Flower against Takt's broker (TAKT_FLOWER_HOST:TAKT_FLOWER_PORT), always behind
    a login: FLOWER_BASIC_AUTH=user:password, else one generated into
    TAKT_DATA_DIR/flower-credentials. It keeps TAKT_FLOWER_MAX_TASKS tasks in memory
    unless --max_tasks is given."""
    from scheduler.cli.flower import flower_login

    settings = _settings()
    try:
        login = flower_login(settings, flower_variables())
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    if login.path is not None:
        click.echo(f"takt: Flower login (user:password) in {login.where}")
    export_flower_login(login.credentials)
    _celery(
        [
            "flower",
            f"--address={settings.flower_host}",
            f"--port={settings.flower_port}",
            *_max_tasks(settings, flower_args),
            *flower_args,
        ],
        log_level=False,
    )


def _max_tasks(settings: TaktSettings, flower_args: tuple[str, ...]) -> list[str]:
    """Flower's cap on the tasks it holds in memory (its own default is 100,000)."""
    if any(arg.startswith(("--max_tasks", "--max-tasks")) for arg in flower_args):
        return []
    return [f"--max_tasks={settings.flower_max_tasks}"]


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--include-secrets",
    is_flag=True,
    help="ExportJobs only: keep the secrets in the file (mode 0600). No job can do this.",
)
@click.argument("command_line", nargs=-1, required=True, type=click.UNPROCESSED)
def manage(include_secrets: bool, command_line: tuple[str, ...]) -> None:
    """Run a built-in management command against the store (TAKT_REDIS_URL), e.g.
    takt manage PurgeHistory --older-than P60D, takt manage VerifyStore, or
    takt manage --include-secrets ExportJobs --collection c --to c.json. Files are
    names in the command folder, TAKT_DATA_DIR/exchange."""
    import shlex

    from scheduler.clock import utcnow
    from scheduler.errors import TaktError
    from scheduler.service.management import run_command_line
    from scheduler.store.jobs import JobStore

    # One argument is a whole line ("PurgeHistory --older-than P60D"); several are words.
    line = command_line[0] if len(command_line) == 1 else shlex.join(command_line)
    settings = _settings()
    try:
        store = JobStore.from_url(settings.store_url, settings.key_prefix)
        # Its job writes (ImportJobs, the purges) wait for replicas like the API's.
        store.require_replicas(settings.min_replicas, settings.redis_replica_timeout_ms)
        result = run_command_line(store, line, utcnow(), settings, include_secrets=include_secrets)
    except TaktError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(result.report)
    if not result.ok:
        sys.exit(1)


def _celery(argv: list[str], *, log_level: bool = True) -> None:
    # Not at the top: the worker's app (Celery, httpx, the store) would double the start
    # of every takt command, --help and the commands over the API included.
    from workers.app import create_celery_app

    settings = _settings()
    try:
        settings.store_url  # noqa: B018 - fail early with a clear message
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    app = create_celery_app(settings)
    # Celery prints its start banner before logging is set up: not a JSON line.
    quiet = ["--quiet"] if settings.log_format == "json" else []
    app.start(argv=[*quiet, *argv, *(["--loglevel", settings.log_level] if log_level else [])])


register(cli)


def main() -> None:
    cli()
