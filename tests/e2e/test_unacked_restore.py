"""A worker SIGKILLed while it restores expired deliveries does not stop the others from
restoring them for minutes.

kombu's Redis transport books every message a worker took in a hash until the worker
acknowledges it; a message booked longer than the visibility timeout
(``TAKT_REDELIVERY_TIMEOUT_S``) is put back on its queue by whichever worker scans first.
A scanning worker holds a lock (``unacked_mutex``), and one killed while it holds it leaves
the lock behind until it expires: with kombu's default (300 s) nothing taken by a dead
worker came back for five minutes. The fault test met it: SIGKILLed workers' messages
stayed taken for its whole drain bound.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import redis
from kombu.transport import redis as kombu_redis

from scheduler.dispatch.celery_app import TaktCelery
from scheduler.settings import load_settings
from tests.support.deployments import KOMBU_RESTORE_LOCK, KOMBU_UNACKED, Deployment
from tests.support.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

#: kombu's index of taken messages.
UNACKED_INDEX = "unacked_index"
#: A queue no worker of the test consumes: a restored message stays there to be seen.
PARKED = "takt-test-parked"
#: Well under kombu's default lock of 300 s, and above a worker's start under load plus
#: the lock's expiry plus a scan interval with the test's 9 s redelivery timeout.
RESTORED_WITHIN_S = 60


def _lock_expiry_s(deployment: Deployment) -> float:
    """How long the lock of a worker of ``deployment`` lives, read off its own channel."""
    settings = load_settings({k: v for k, v in deployment.env.items() if k.startswith("TAKT_")})
    with TaktCelery(settings).connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, kombu_redis.Channel)
        return float(channel.unacked_mutex_expire)


def test_a_lock_left_by_a_killed_worker_delays_restoring_by_seconds_not_minutes(
    redis_url: str, tmp_path: Path
) -> None:
    broker_url = f"{redis_url}/9"
    broker = redis.Redis.from_url(broker_url)
    broker.delete(KOMBU_UNACKED, UNACKED_INDEX, KOMBU_RESTORE_LOCK, PARKED)
    try:
        with Deployment(redis_url, tmp_path, broker_url=broker_url) as deployment:
            # Given a message taken long ago by a worker that died, and the scanning lock
            # that worker held when it was SIGKILLed (taken as kombu takes it, with the
            # expiry its channel is configured with)
            tag = uuid.uuid4().hex
            message = {"body": "", "headers": {}, "properties": {"delivery_tag": tag}}
            broker.hset(KOMBU_UNACKED, tag, json.dumps([message, "", PARKED]))
            broker.zadd(UNACKED_INDEX, {tag: time.time() - 3600})
            expiry_s = _lock_expiry_s(deployment)
            assert broker.set(KOMBU_RESTORE_LOCK, "dead-worker", nx=True, px=int(expiry_s * 1000))

            # When a worker runs
            began = time.monotonic()
            deployment.spawn("worker", "-c", "1", "--without-mingle", "--without-gossip")

            # Then the message is back on its queue within seconds
            wait_until(
                lambda: broker.llen(PARKED),
                timeout=RESTORED_WITHIN_S,
                interval=0.5,
                message=f"the message restored (the lock lives {expiry_s:g} s)",
            )
            assert not broker.hexists(KOMBU_UNACKED, tag)
            assert time.monotonic() - began < RESTORED_WITHIN_S
    finally:
        broker.delete(KOMBU_UNACKED, UNACKED_INDEX, KOMBU_RESTORE_LOCK, PARKED)
        broker.close()
