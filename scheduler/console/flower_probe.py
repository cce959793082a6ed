"""Whether Flower still holds a Celery task, asked by the API with Flower's login.

Flower keeps the tasks it saw in memory only (up to its cap), so after a restart, or once
newer tasks pushed a task out, its page of that task is a 404. The console's "Task in
Flower" links ask here first and say so instead of leading to a dead page.

The API asks, not the browser: Flower's API needs its login, which must never reach a
browser. The login is the one ``takt up`` and ``takt flower`` give Flower
(:mod:`scheduler.cli.flower`): ``FLOWER_BASIC_AUTH`` from the API's environment, else the
generated ``flower-credentials`` file in the data folder, read and never created here.
Without a login, or when Flower does not answer within a second, the answer is "unknown"
with the reason, never an error page: the console works without Flower.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from scheduler.data_folder import FLOWER_CREDENTIALS_FILE
from scheduler.settings import TaktSettings

__all__ = ["FlowerAnswer", "FlowerProbe", "known_flower_login"]

_TASK_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class FlowerAnswer:
    """``held``: True or False when Flower said, None when it could not be asked;
    ``reason``: ``held``, ``gone``, ``unreachable``, ``refused``, ``no-login`` or
    ``error``, for the page to choose how loudly to say it."""

    held: bool | None
    reason: str
    message: str

    def to_json(self) -> dict[str, bool | str | None]:
        return {"held": self.held, "reason": self.reason, "message": self.message}


def known_flower_login(settings: TaktSettings, variables: Mapping[str, str]) -> str | None:
    """Flower's ``user:password`` as Takt gave it to Flower, or None when there is none yet;
    ``variables`` are Flower's (:func:`scheduler.settings.flower_variables`)."""
    given = variables.get("FLOWER_BASIC_AUTH")
    if given:
        return given
    path = settings.data_dir / FLOWER_CREDENTIALS_FILE
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class FlowerProbe:
    """Asks one Flower (``base_url``) about tasks, with its login (None: not known)."""

    def __init__(self, base_url: str, login: str | None, timeout_s: float = _TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = tuple(login.split(":", 1)) if login and ":" in login else None
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"FlowerProbe({self.base_url!r})"  # never the login

    @property
    def knows_login(self) -> bool:
        return self._auth is not None

    def ask(self, task_id: str) -> FlowerAnswer:
        """Whether Flower holds ``task_id`` (a Celery task id, a UUID).

        Raises:
            ValueError: ``task_id`` is not a task id.
        """
        if not _TASK_ID.match(task_id):
            raise ValueError(f"task id: {task_id[:64]!r} is not a Celery task id (a UUID)")
        if self._auth is None:
            return FlowerAnswer(
                None,
                "no-login",
                "The console does not know Flower's login, so it cannot ask Flower.",
            )
        try:
            answer = httpx.get(
                f"{self.base_url}/api/task/info/{task_id}",
                auth=(self._auth[0], self._auth[1]),
                timeout=self.timeout_s,
                follow_redirects=False,
            )
        except httpx.HTTPError:
            return FlowerAnswer(None, "unreachable", f"Flower does not answer at {self.base_url}.")
        return _answer(answer.status_code)


def _answer(status: int) -> FlowerAnswer:
    if status == 200:
        return FlowerAnswer(True, "held", "Flower holds this task.")
    if status == 404:
        return FlowerAnswer(
            False,
            "gone",
            "Flower no longer holds this task: it keeps tasks in memory only, so a restart "
            "or its cap on tasks dropped it. Takt's results keep the run.",
        )
    if status in (401, 403):
        return FlowerAnswer(None, "refused", "Flower refused the console's login.")
    return FlowerAnswer(None, "error", f"Flower answered {status}.")
