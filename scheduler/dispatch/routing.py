"""Which task and queue carry each action kind, and the task id of each attempt.

The task names are the contract with the workers, which register their tasks under them
(:data:`ACTION_TASKS`); whoever publishes an attempt (:mod:`scheduler.dispatch.publisher`)
routes it here, so every publisher writes the same standard Celery messages: ids only, a
task id derived from the occurrence.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from scheduler.domain.models import ActionType

__all__ = [
    "ACTION_ROUTES",
    "ACTION_TASKS",
    "ActionRoute",
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
    ActionType.SERVICE_BUS_QUEUE: ActionRoute("takt.action.service_bus", "servicebus"),
    ActionType.SERVICE_BUS_TOPIC: ActionRoute("takt.action.service_bus", "servicebus"),
    ActionType.CELERY: ActionRoute("takt.action.celery", "celery"),
    ActionType.COMMAND: ActionRoute("takt.action.command", "command"),
}

#: Every task name a worker registers, sorted: the names Flower shows.
ACTION_TASKS = tuple(sorted({route.task for route in ACTION_ROUTES.values()}))


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
