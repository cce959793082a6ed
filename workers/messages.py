"""Celery protocol-2 task messages, written straight into a Redis broker's queue lists.

The exact JSON kombu's Redis transport stores (headers, properties, base64 body), so any
unmodified Celery worker consumes them; building them here saves kombu's per-publish
Python where Takt publishes many messages (the beat) or often (the Celery action).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

__all__ = ["is_redis_url", "protocol2_message"]


def protocol2_message(
    task: str,
    task_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    queue: str,
    *,
    origin: str,
    reply_to: str,
) -> bytes:
    """A Celery protocol-2 task message, as kombu's Redis transport stores it in a queue."""
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    body = json.dumps([args, kwargs, embed], separators=(", ", ": ")).encode()
    message = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(args),
            "kwargsrepr": repr(kwargs),
            "origin": origin,
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": reply_to,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message, separators=(",", ":")).encode()


def is_redis_url(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://", "valkey://"))
