"""Takt's Celery app as far as publishing goes: the configuration every Takt process
derives from its settings (broker, queues and their exchanges, serialisation, the Redis
transport's redelivery), and :class:`TaktCelery`, a Celery app on it that defines no task.

The API publishes manual runs with a bare one; the worker's app adds its tasks to one
(registered under :data:`~scheduler.dispatch.routing.ACTION_TASKS`).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any
from urllib.parse import quote

from celery import Celery
from kombu import Exchange, Queue

from scheduler.dispatch.routing import queue_names
from scheduler.dispatch.transport import install as install_transport
from scheduler.settings import TaktSettings, load_settings
from scheduler.store.connections import is_sentinel_url, parse_sentinel_url

__all__ = ["TaktCelery", "celery_config", "kombu_broker"]


class TaktCelery(Celery):
    """A Celery app on Takt's configuration. Its settings are read when Celery first needs
    its configuration (lazily, through ``add_defaults``), from the environment if not given,
    never when the app is built."""

    def __init__(self, settings: TaktSettings | None = None) -> None:
        install_transport()  # Takt's Redis transport for redis:// brokers
        super().__init__("takt", set_as_current=False)
        self._takt_settings = settings
        self.add_defaults(lambda: celery_config(self.settings))

    @cached_property
    def settings(self) -> TaktSettings:
        return self._takt_settings or load_settings()


def _is_amqp(url: str) -> bool:
    return url.startswith(("amqp", "pyamqp"))


def _restore_interval(settings: TaktSettings) -> float:
    """Seconds between a worker's scans for expired deliveries."""
    return max(1.0, min(10.0, settings.redelivery_timeout_s / 6))


def kombu_broker(url: str) -> tuple[str, dict[str, Any]]:
    """The broker URL in kombu's terms and the transport options it needs: a Sentinel URL
    (``redis+sentinel://…/service/db``, :mod:`scheduler.store.connections`) becomes kombu's
    ``sentinel://`` list with the ``master_name`` option; any other URL stays as it is."""
    if not is_sentinel_url(url):
        return url, {}
    address = parse_sentinel_url(url)
    login = ""
    if address.password is not None:
        login = f"{quote(address.username or '', safe='')}:{quote(address.password, safe='')}@"
    hosts = (f"[{host}]" if ":" in host else host for host, _ in address.sentinels)
    urls = ";".join(
        f"sentinel://{login}{host}:{port}/{address.db}"
        for host, (_, port) in zip(hosts, address.sentinels, strict=True)
    )
    options: dict[str, Any] = {"master_name": address.service}
    if address.sentinel_kwargs():
        options["sentinel_kwargs"] = address.sentinel_kwargs()
    return urls, options


def celery_config(settings: TaktSettings) -> dict[str, Any]:
    """The Celery settings of every Takt process (worker, beat, API)."""
    queues = queue_names(settings.key_prefix)
    broker_url, sentinel_options = kombu_broker(settings.celery_broker_url)
    return {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        # Redelivery of an unacknowledged message on the Redis transport; longer than any
        # action's timeout plus any countdown, so no attempt is delivered twice.
        "broker_transport_options": {
            "visibility_timeout": settings.redelivery_timeout_s,
            # Look for expired deliveries often enough that one is redone within about
            # a sixth of the timeout after it expired (kombu scans every 100 s otherwise).
            "unacked_restore_interval": _restore_interval(settings),
            "unacked_restore_throttle": 1,
            # A worker holds a lock while it restores; one SIGKILLed meanwhile leaves it
            # held until it expires, and no worker restores anything before then (kombu's
            # default is 5 minutes). Restoring twice at once is safe (each restore is a
            # transaction that WATCHes the unacknowledged hash), so the lock only saves
            # work and may expire soon.
            "unacked_mutex_expire": max(5, round(3 * _restore_interval(settings))),
            # On AMQP a publish returns once the broker confirmed it (the Celery action's
            # success); on Redis the LPUSH's reply is that confirmation.
            **({"confirm_publish": True} if _is_amqp(settings.celery_broker_url) else {}),
            **sentinel_options,
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Each queue its own direct exchange and routing key: a message reaches one queue.
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in queues
        ],
        "task_default_queue": queues[0],
        "worker_prefetch_multiplier": 4,
        # HTTP calls wait on the network, not the CPU: threads let one process hold
        # many calls at once without a process per request.
        "worker_pool": "threads",
        "worker_concurrency": 64,
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "beat_scheduler": "beat:JobScheduler",
        "beat_max_loop_interval": settings.beat_max_interval_s,
        "enable_utc": True,
        "timezone": "UTC",
        # Celery would replace stdout/stderr with a logger that makes each write() one
        # WARNING line; Python writes a traceback in pieces (its ^ markers one by one),
        # so a crash came out one character per line. Output stays plain output.
        "worker_redirect_stdouts": False,
    }
