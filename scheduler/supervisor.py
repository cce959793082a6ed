"""``takt up``: the embedded server, the API, a beat and a worker as one foreground group.

The data folder is made private first (0700); the embedded server gets its password and
Flower its login from there, and only their paths are printed (docs/security.md).

Each role runs as a child process in its own session, so Ctrl-C reaches only this
supervisor, which stops the children in order (SIGTERM, then SIGKILL after a grace
period) and the embedded server last. Children also get SIGTERM from the kernel if the
supervisor itself dies (PR_SET_PDEATHSIG), so no process is left behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

import click

from scheduler.data_folder import private_folder
from scheduler.embedded import start_embedded_server
from scheduler.errors import ConfigurationError
from scheduler.flower import FlowerLogin, flower_login
from scheduler.principals import ensure_admin_token
from scheduler.settings import TaktSettings

__all__ = ["Role", "roles_for", "run_group"]

_GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    argv: Sequence[str]


def roles_for(worker_args: Sequence[str] = (), *, flower: bool = True) -> list[Role]:
    """The processes of a single-machine deployment."""
    takt = [sys.executable, "-m", "scheduler"]
    roles = [
        Role("api", [*takt, "api"]),
        Role("beat", [*takt, "beat"]),
        Role("worker", [*takt, "worker", *worker_args]),
    ]
    if flower:
        roles.append(Role("flower", [*takt, "flower"]))
    return roles


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


def _start(role: Role, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        role.argv, env=env, start_new_session=True, preexec_fn=_die_with_parent()
    )


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + _GRACE_S
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"takt: {name} did not stop in {_GRACE_S:.0f} s; killing it", err=True)
            child.kill()
            child.wait()


class _Stop(Exception):
    pass


def _raise_stop(signum: int, _: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def run_group(
    settings: TaktSettings, worker_args: Sequence[str] = (), *, flower: bool = True
) -> int:
    """Run every role until Ctrl-C/SIGTERM or until one of them exits; returns an exit code."""
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    server = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    env = dict(os.environ)
    try:
        private_folder(settings.data_dir)
        login = flower_login(settings, os.environ) if flower else None
        if settings.redis_url is None:
            server = start_embedded_server(settings.data_dir, maxmemory=settings.valkey_maxmemory)
            env["TAKT_REDIS_URL"] = server.connection_url  # with the password: never printed
            click.echo(
                f"takt: embedded Valkey at {server.address} (password in "
                f"{server.password_path.resolve()}, data in {server.data_dir})"
            )
        _, token_path = ensure_admin_token(settings)
        for role in roles_for(worker_args, flower=login is not None):
            children[role.name] = _start(role, env | _login_of(role, login))
        click.echo(f"takt: API and console at http://{settings.api_host}:{settings.api_port}/")
        if login is not None:
            click.echo(
                f"takt: Flower at http://{settings.flower_host}:{settings.flower_port}/ "
                f"(login user:password in {login.where})"
            )
        where = token_path.resolve() if token_path else "TAKT_ADMIN_TOKEN"
        click.echo(f"takt: administrator key in {where}")
        click.echo("takt: Ctrl-C stops everything")
        return _watch(children)
    except _Stop as stop:
        click.echo(f"takt: {stop}, stopping")
        return 0
    except ConfigurationError as exc:
        click.echo(f"takt: {exc}", err=True)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(children)
        if server is not None:
            server.stop()
        click.echo("takt: stopped")


def _login_of(role: Role, login: FlowerLogin | None) -> dict[str, str]:
    """Flower's login goes to Flower's environment alone."""
    if role.name == "flower" and login is not None:
        return {"FLOWER_BASIC_AUTH": login.credentials}
    return {}


def _watch(children: dict[str, subprocess.Popen[bytes]]) -> int:
    while True:
        for name, child in children.items():
            code = child.poll()
            if code is not None:
                click.echo(f"takt: {name} exited with {code}; stopping the others", err=True)
                return code or 1
        time.sleep(0.5)
