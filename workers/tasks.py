"""The Celery tasks of the action kinds; each carries ids only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workers.execution import RunRequest, execute

if TYPE_CHECKING:
    from workers.app import TaktCelery

__all__ = ["HTTP_TASK", "register_tasks"]

#: Task names say the action kind, so Flower's task list reads as what ran.
HTTP_TASK = "takt.action.http"


def register_tasks(app: TaktCelery) -> None:
    """Define Takt's tasks on ``app`` (every app instance gets its own)."""

    @app.task(
        name=HTTP_TASK, shared=False, acks_late=True, reject_on_worker_lost=True, ignore_result=True
    )
    def run_http(jid: str, occurrence_ms: int, attempt: int = 0, manual: bool = False) -> Any:
        return execute(app.context, RunRequest(jid, occurrence_ms, attempt, manual))
