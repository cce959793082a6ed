"""How ``make test`` shares the suite between its two pytest-xdist processes.

Tests that use something fixed on the machine run in one process, one after the other:

- the tests over the one RabbitMQ (its queues are the same names for every stack, so two
  stacks on it at once would take each other's tasks);
- the docs' blocks, whose ``takt up`` listens on the docs' own port, 8000.

Every other test is a unit of its own, handed to whichever process is free. pytest-xdist's
``--dist loadgroup`` would do this from ``xdist_group`` marks, but with pytest 9 it hands
a group's tests to both processes (pytest-xdist 3.8): the groups are named by file here.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

__all__ = ["SHARED", "SharedResourceScheduling"]

#: The test files that use one fixed resource, by the resource's name.
SHARED = {
    "tests/e2e/test_e2e.py": "rabbitmq",
    "tests/e2e/test_retries.py": "rabbitmq",
    "tests/e2e/test_rabbitmq.py": "rabbitmq",
    "tests/e2e/test_docs.py": "docs",
}


class SharedResourceScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """pytest-xdist's scope scheduling, a scope being a shared resource's tests, else one
    test."""

    def _split_scope(self, nodeid: str) -> str:
        return SHARED.get(nodeid.split("::", 1)[0], nodeid)
