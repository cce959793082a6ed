"""The Celery tasks of the action kinds; each carries ids only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workers.execution import RunRequest, execute
from workers.routing import ACTION_ROUTES

if TYPE_CHECKING:
    from workers.app import TaktCelery

__all__ = ["register_tasks"]


def register_tasks(app: TaktCelery) -> None:
    """Define one task per action kind on ``app`` (every app instance gets its own)."""
    for name in sorted({route.task for route in ACTION_ROUTES.values()}):
        _register(app, name)


def _register(app: TaktCelery, name: str) -> None:
    @app.task(
        name=name, shared=False, acks_late=True, reject_on_worker_lost=True, ignore_result=True
    )
    def run_action(jid: str, occurrence_ms: int, attempt: int = 0, manual: bool = False) -> Any:
        return execute(app.context, RunRequest(jid, occurrence_ms, attempt, manual))
