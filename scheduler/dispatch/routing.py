"""Which task and queue carry each action kind, and how an occurrence is published.

Shared by the beat (scheduled occurrences) and the API (manual runs), so both publish
the same standard Celery messages: ids only, a task id derived from the occurrence.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery

from scheduler.domain.models import ActionType

__all__ = [
    "ACTION_ROUTES",
    "ActionRoute",
    "publish_occurrence",
    "queue_names",
    "route_for",
    "task_id_for",
]


@dataclass(frozen=True, slots=True)
class ActionRoute:
    task: str
    kind: str

    def queue(self, prefix: str) -> str:
        """The queue of this kind for the deployment with key prefix ``prefix``
        (``takt.http`` by default), so deployments sharing a broker stay apart."""
        return f"{prefix}.{self.kind}"


#: Task names say the action kind, so Flower's task list reads as what ran; one queue per
#: kind so each can get its own scaled pool (`takt worker -Q takt.http`).
ACTION_ROUTES = {
    ActionType.HTTP: ActionRoute("takt.action.http", "http"),
    ActionType.HTTPS: ActionRoute("takt.action.http", "http"),
    ActionType.STORAGE_QUEUE: ActionRoute("takt.action.storage_queue", "storage"),
    ActionType.CELERY: ActionRoute("takt.action.celery", "celery"),
    ActionType.COMMAND: ActionRoute("takt.action.command", "command"),
}


def queue_names(prefix: str) -> list[str]:
    """Every action queue of a deployment, sorted."""
    return sorted({route.queue(prefix) for route in ACTION_ROUTES.values()})


def route_for(action_type: ActionType) -> ActionRoute:
    return ACTION_ROUTES[action_type]


def task_id_for(
    jid: str, occurrence_ms: int, *, manual: bool = False, error: bool = False, attempt: int = 0
) -> str:
    """The Celery task id of one attempt of an occurrence: the same for every publish of it."""
    kind = ("manual" if manual else "scheduled") + (":error" if error else "")
    return _uuid5(f"takt:{kind}:{jid}@{occurrence_ms}#{attempt}")


_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(uuid.NAMESPACE_URL, name))`` without building a UUID object (a
    quarter of the time; the beat makes one per message)."""
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def publish_occurrence(
    app: Celery,
    prefix: str,
    jid: str,
    occurrence_ms: int,
    action_type: ActionType,
    *,
    manual: bool = False,
    error: bool = False,
    attempt: int = 0,
    queue: str | None = None,
    producer: Any = None,
) -> None:
    """Publish one attempt of an occurrence as a standard Celery task carrying ids only.

    ``queue`` is the job's (or its collection's) worker pool, instead of the kind's queue.
    """
    route = route_for(action_type)
    flags = {"manual": manual, "error": error, "attempt": attempt}
    app.send_task(
        route.task,
        args=[jid, occurrence_ms],
        kwargs={key: value for key, value in flags.items() if value} or None,
        task_id=task_id_for(jid, occurrence_ms, manual=manual, error=error, attempt=attempt),
        queue=queue or route.queue(prefix),
        producer=producer,
    )
