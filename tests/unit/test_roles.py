"""The processes `takt up` starts: a worker per core unless told otherwise."""

from __future__ import annotations

import pytest

from scheduler.cli.supervisor import roles_for
from scheduler.errors import ConfigurationError
from scheduler.settings import cores, load_settings


def _workers(environ: dict[str, str], *worker_args: str) -> dict[str, list[str]]:
    roles = roles_for(load_settings(environ), worker_args, login=None)
    return {role.name: list(role.argv[3:]) for role in roles if role.name.startswith("worker")}


def test_a_worker_per_core_by_default_each_its_own_node_name() -> None:
    assert _workers({}) == {
        f"worker-{n}": ["worker", "-n", f"worker-{n}@%h"] for n in range(1, cores() + 1)
    }


def test_worker_processes_sets_how_many_and_arguments_reach_each() -> None:
    assert _workers({"TAKT_WORKER_PROCESSES": "3"}, "-Q", "x.http") == {
        f"worker-{n}": ["worker", "-n", f"worker-{n}@%h", "-Q", "x.http"] for n in (1, 2, 3)
    }


def test_a_node_name_in_the_arguments_means_one_worker_of_that_name() -> None:
    for named in (("-n", "a@%h"), ("--hostname", "a@%h"), ("--hostname=a@%h",)):
        assert _workers({"TAKT_WORKER_PROCESSES": "3"}, *named) == {"worker": ["worker", *named]}


def test_a_bad_worker_count_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="TAKT_WORKER_PROCESSES"):
        load_settings({"TAKT_WORKER_PROCESSES": "0"})
