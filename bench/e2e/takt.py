"""Takt as ``make run`` runs it: the beat and the worker with the command lines ``takt up``
gives them (:func:`scheduler.cli.supervisor.roles_for`), on the embedded Valkey, calling
the sink through one-shot Http jobs."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.e2e.processes import clean_environment, server_pid, snapshot, spawn, stop, valkey, wait
from bench.e2e.runs import Run, checked, discount, measured, role_of
from bench.e2e.sink import Sink
from bench.e2e.tracing import round_trips, start_profile, stop_profile, traced_argv
from scheduler.cli.embedded import EmbeddedValkey
from scheduler.cli.supervisor import roles_for
from scheduler.clock import from_ms
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.settings import load_settings
from scheduler.store.jobs import JobStore, NewJob

__all__ = ["COLLECTION", "TaktPipeline"]

COLLECTION = "e2e/e2e/jobs"
_CHUNK = 2_000
#: The roles started, by :func:`role_of` (``takt up`` starts ``worker-1``, ``worker-2``...).
_ROLES = ("beat", "worker")


@dataclass(frozen=True)
class TaktPipeline:
    """Takt's beat and worker as ``takt up`` starts them, plus ``env`` and ``worker_args``."""

    name: str
    env: tuple[tuple[str, str], ...] = ()
    worker_args: tuple[str, ...] = ()

    @classmethod
    def tuned(cls, spec: str) -> TaktPipeline:
        """``TAKT_X=v ... worker args``: the settings, then the worker's arguments."""
        words = shlex.split(spec)
        settings = [w.partition("=") for w in words if w.startswith("TAKT_") and "=" in w]
        args = tuple(w for w in words if not (w.startswith("TAKT_") and "=" in w))
        return cls(f"Takt, tuned: {spec}", tuple((k, v) for k, _, v in settings), args)

    def run(self, sink: Sink, workdir: Path, options: argparse.Namespace) -> list[Run]:
        with valkey(workdir) as server, self._processes(server, workdir, options) as pids:
            store = JobStore.from_url(server.connection_url, load_settings({}).key_prefix)
            try:
                store.put_collection(COLLECTION, JobCollection())
                _jobs(store, sink.url, "warm", 1, int(time.time() * 1000), 0)
                if not wait(lambda: sink.count() >= 1, 60):
                    raise SystemExit(f"{self.name}: the warm-up job never arrived; see {workdir}")
                sink.take()
                scenario = _Scenario(self.name, store, sink, pids, options.cap_s)
                profile = self._profile_path(options)
                runs = [scenario.run("burst", options.jobs, 0, profile)]
                if options.seconds > 0:
                    runs.append(
                        scenario.run("steady", int(options.rate * options.seconds), options.rate)
                    )
                if options.minute_jobs > 0 and not self.env and not self.worker_args:
                    runs.append(scenario.run("minute", options.minute_jobs, 0))
            finally:
                store.close()
        if options.round_trips:
            for run in runs:  # the files are written when the processes have ended
                run.round_trips = _round_trips(workdir, run)
        return runs

    @contextmanager
    def _processes(
        self, server: EmbeddedValkey, workdir: Path, options: argparse.Namespace
    ) -> Iterator[dict[str, int]]:
        settings = load_settings({}, data_dir=workdir)
        roles = {role.name: role for role in roles_for(settings, self.worker_args, login=None)}
        env = clean_environment(
            TAKT_REDIS_URL=server.connection_url, TAKT_DATA_DIR=str(workdir), **dict(self.env)
        )
        processes = {}
        for name in _started(roles):
            argv, own = list(roles[name].argv), {**env, **roles[name].env}
            if options.round_trips:
                argv, own["E2E_ROUND_TRIPS"] = traced_argv(argv), str(workdir / f"{name}.trips")
            processes[name] = spawn(argv, own, workdir / f"{name}.log")
        try:
            yield {name: process.pid for name, process in processes.items()} | {
                "Valkey": server_pid(server)
            }
        finally:
            stop(list(processes.values()))

    def _profile_path(self, options: argparse.Namespace) -> Path | None:
        if options.profile is None:
            return None
        folder = Path(options.profile)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"worker-{re.sub(r'[^A-Za-z0-9]+', '-', self.name).strip('-')}.txt"


@dataclass
class _Scenario:
    pipeline: str
    store: JobStore
    sink: Sink
    pids: dict[str, int]
    cap_s: float

    def run(self, scenario: str, n: int, rate: float, profile: Path | None = None) -> Run:
        """``n`` one-shot jobs due at one instant (``rate`` 0) or ``1/rate`` apart."""
        due_ms = int((time.time() + 2.0 + n / 4_000) * 1000)
        spacing_ms = 1000 / rate if rate else 0
        jids = _jobs(self.store, self.sink.url, scenario, n, due_ms, spacing_ms)
        late_s = time.time() - (due_ms / 1000 - 0.2)
        if late_s < 0:
            time.sleep(-late_s)
        before = snapshot(self.store.redis, self.pids)
        worker = next(pid for name, pid in self.pids.items() if name.startswith("worker"))
        spy = start_profile(worker, profile) if profile else None  # the first worker
        cap_s = due_ms / 1000 + spacing_ms * n / 1000 - time.time() + self.cap_s
        complete, polls = self._wait_recorded(n, cap_s)
        if spy is not None:
            stop_profile(spy)
        run = measured(
            self.pipeline,
            scenario,
            n,
            due_ms / 1000,
            self.sink,
            self.store.redis,
            self.pids,
            before,
        )
        discount(run.commands, "zcard", polls)
        if late_s > 0:
            run.notes.append(f"the jobs were written {late_s:.1f} s too late for the due time")
        run.done_at, run.recorded_once = _history(self.store, jids)
        if run.recorded_once != n:
            run.notes.append(f"{n - run.recorded_once:,} jobs without exactly one Completed entry")
        return checked(run, complete, cap_s)

    def _wait_recorded(self, n: int, cap_s: float) -> tuple[bool, int]:
        """Until the sink has ``n`` calls and the execution ledger owes nothing (every
        attempt recorded); and how many ZCARDs that took (they are the benchmark's)."""
        polls = 0

        def recorded() -> bool:
            nonlocal polls
            if self.sink.count() < n:
                return False
            polls += 1
            return int(self.store.redis.zcard(self.store.keys.ledger)) == 0

        return wait(recorded, cap_s), polls


def _jobs(
    store: JobStore, sink_url: str, scenario: str, n: int, due_ms: int, spacing_ms: float
) -> list[str]:
    """``n`` one-shot Http jobs calling the sink, job i due at ``due_ms + i·spacing_ms``
    (its start time), each URI naming the scenario, the job and its due time."""
    jids = []
    for start in range(0, n, _CHUNK):
        batch = []
        for i in range(start, min(n, start + _CHUNK)):
            due = due_ms + int(i * spacing_ms)
            uri = f"{sink_url}/{scenario}/{i}/{due}"
            properties = JobProperties.model_validate(
                {
                    "startTime": from_ms(due).isoformat(),
                    "action": {"type": "Http", "request": {"uri": uri, "method": "GET"}},
                }
            )
            batch.append(NewJob(f"{COLLECTION}/{scenario}-{i}", properties, "admin", due))
        store.put_jobs(batch)
        jids += [job.jid for job in batch]
    return jids


def _history(store: JobStore, jids: list[str]) -> tuple[float | None, int]:
    """The last recorded entry's endTime, and how many jobs have exactly one Completed
    entry; every job's history is read, not a sample."""
    last, once = None, 0
    for start in range(0, len(jids), _CHUNK):
        pipe = store.redis.pipeline(transaction=False)
        for jid in jids[start : start + _CHUNK]:
            pipe.lrange(store.keys.history(jid), 0, -1)
        for entries in pipe.execute():
            if len(entries) != 1:
                continue
            entry = json.loads(entries[0])
            once += entry["status"] == "Completed"
            ended = datetime.fromisoformat(entry["endTime"]).timestamp()
            last = ended if last is None else max(last, ended)
    return last, once


def _round_trips(workdir: Path, run: Run) -> list[tuple[str, str, str, float]]:
    """(process, commands, sent by, per job) over the run, from the first due time to the
    last job recorded."""
    until = (run.done_at or run.due_at) + 0.5
    rows = []
    per_role: Counter[tuple[str, str, str]] = Counter()
    for path in workdir.glob("*.trips"):
        role = role_of(path.stem)
        for (cmds, site), n in round_trips(path, run.due_at - 0.2, until).items():
            per_role[role, cmds, site] += n
    rows = [(*key, n / max(run.executed, 1)) for key, n in per_role.items()]
    return sorted(rows, key=lambda row: -row[3])


def _started(roles: dict[str, Any]) -> list[str]:
    """The roles the benchmark starts: the beat and every worker (not the API)."""
    return [name for name in roles if role_of(name) in _ROLES]
