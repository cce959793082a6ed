"""The three beats under test: how to put N jobs in place for each, and how to start it.

Each beat runs as its own process, started the way its documentation says, logging at
WARNING (the peers log one INFO line per firing otherwise), against the benchmark's Valkey.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.beat.peer_app import QUEUE, make_app, peer_config
from bench.beat.populate import celery_shelve, peer_every, redbeat_entries, takt_jobs
from scheduler.dispatch.routing import route_for
from scheduler.domain.models import ActionType
from scheduler.store.jobs import JobStore

__all__ = ["CeleryBeat", "Contender", "RedBeat", "Takt", "spawn"]

ROOT = Path(__file__).resolve().parents[2]
TAKT_PREFIX = "bench"


class Contender(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def queue(self) -> str: ...

    def populate(self, url: str, n: int, t0_ms: int, recurring: bool, workdir: Path) -> None: ...

    def command(
        self, url: str, n: int, recurring: bool, workdir: Path
    ) -> tuple[list[str], dict[str, str]]: ...


def _environment(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TAKT_", "BENCH_"))}
    return {**base, "PYTHONPATH": str(ROOT), **extra}


@dataclass(frozen=True)
class Takt:
    """``python -m scheduler beat`` (``celery beat -S beat:JobScheduler``)."""

    name: str = "Takt"
    #: Settings of its own, as environment variables (``TAKT_BEAT_CLAIM_AHEAD``...).
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def queue(self) -> str:
        return route_for(ActionType.HTTP).queue(TAKT_PREFIX)

    def populate(self, url: str, n: int, t0_ms: int, recurring: bool, workdir: Path) -> None:
        store = JobStore.from_url(url, TAKT_PREFIX)
        try:
            takt_jobs(store, n, t0_ms, recurring=recurring)
        finally:
            store.close()

    def command(
        self, url: str, n: int, recurring: bool, workdir: Path
    ) -> tuple[list[str], dict[str, str]]:
        env = _environment(
            TAKT_REDIS_URL=url,
            TAKT_KEY_PREFIX=TAKT_PREFIX,
            TAKT_LOG_LEVEL="WARNING",
            **dict(self.settings),
        )
        return [sys.executable, "-m", "scheduler", "beat"], env


@dataclass(frozen=True)
class RedBeat:
    """``celery beat -S redbeat.RedBeatScheduler``, entries saved with ``.save()``."""

    name: str = "redbeat 2.4.2"

    @property
    def queue(self) -> str:
        return QUEUE

    def populate(self, url: str, n: int, t0_ms: int, recurring: bool, workdir: Path) -> None:
        redbeat_entries(make_app(peer_config(url)), n, t0_ms, recurring=recurring)

    def command(
        self, url: str, n: int, recurring: bool, workdir: Path
    ) -> tuple[list[str], dict[str, str]]:
        argv = [*_celery_beat(), "-S", "redbeat.RedBeatScheduler"]
        return argv, _environment(BENCH_BROKER_URL=url)


@dataclass(frozen=True)
class CeleryBeat:
    """``celery beat`` with its default PersistentScheduler: N ``beat_schedule`` entries,
    their last run times in its shelve file."""

    name: str = "Celery beat"

    @property
    def queue(self) -> str:
        return QUEUE

    def populate(self, url: str, n: int, t0_ms: int, recurring: bool, workdir: Path) -> None:
        app = make_app(peer_config(url, n, peer_every(recurring)))
        celery_shelve(app, workdir / "celerybeat-schedule", n, t0_ms, recurring=recurring)

    def command(
        self, url: str, n: int, recurring: bool, workdir: Path
    ) -> tuple[list[str], dict[str, str]]:
        argv = [
            *_celery_beat(),
            "-S",
            "celery.beat:PersistentScheduler",
            "-s",
            str(workdir / "celerybeat-schedule"),
        ]
        env = _environment(
            BENCH_BROKER_URL=url,
            BENCH_CELERY_ENTRIES=str(n),
            BENCH_EVERY_S=str(peer_every(recurring).total_seconds()),
        )
        return argv, env


def _celery_beat() -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "bench.beat.peer_app", "beat", "-l", "WARNING"]


def spawn(argv: list[str], env: dict[str, str], workdir: Path, log: str) -> subprocess.Popen[bytes]:
    """Start a beat with ``workdir`` as its working directory and its output in ``log``."""
    with (workdir / log).open("ab") as out:
        return subprocess.Popen(argv, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
