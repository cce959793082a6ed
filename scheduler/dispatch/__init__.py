"""The one contract between whoever hands out an attempt (the beat, the API's manual runs,
the workers' follow-ups) and the workers: task names, routing, the message, publishing.

- :mod:`.routing`: the task and queue of each action kind (the task names the workers
  register), and the task id of each attempt.
- :mod:`.messages`: Celery protocol-2 messages, written without kombu.
- :mod:`.publisher`: every way Takt publishes a task (one attempt, a beat's batch, a
  user's own Celery task).
- :mod:`.celery_app`: the Celery configuration every Takt process uses, and
  :class:`TaktCelery`, a Celery app on it that defines no task.

It imports neither :mod:`beat` nor :mod:`workers`.
"""

from scheduler.dispatch.celery_app import TaktCelery, celery_config
from scheduler.dispatch.publisher import (
    BatchPublisher,
    CeleryPublisher,
    Outgoing,
    PipelinePublisher,
    UserTaskSender,
    batch_publisher_for,
    publish_occurrence,
)
from scheduler.dispatch.routing import (
    ACTION_ROUTES,
    ACTION_TASKS,
    ActionRoute,
    queue_names,
    route_for,
    task_id_for,
)

__all__ = [
    "ACTION_ROUTES",
    "ACTION_TASKS",
    "ActionRoute",
    "BatchPublisher",
    "CeleryPublisher",
    "Outgoing",
    "PipelinePublisher",
    "TaktCelery",
    "UserTaskSender",
    "batch_publisher_for",
    "celery_config",
    "publish_occurrence",
    "queue_names",
    "route_for",
    "task_id_for",
]
