"""The Redis broker transport: kombu's, with one client per connection pool."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from kombu import Consumer, Exchange, Message, Producer, Queue

from scheduler.dispatch import TaktCelery
from scheduler.dispatch.transport import Channel
from scheduler.settings import TaktSettings, load_settings

MESSAGES = 200


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    url = f"{redis_url}/4"
    yield url
    redis.Redis.from_url(url).flushdb()


def _app(settings: TaktSettings, broker_url: str) -> TaktCelery:
    return TaktCelery(
        load_settings(
            {},
            redis_url=settings.redis_url,
            broker_url=broker_url,
            key_prefix=settings.key_prefix,
        )
    )


def test_taking_and_acknowledging_messages_builds_no_redis_client_per_message(
    settings: TaktSettings, broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Takt's Celery app on a Redis broker, and messages in a queue
    queue = Queue("takt-test-transport", Exchange("takt-test-transport"), "takt-test-transport")
    with _app(settings, broker).connection_for_write() as connection:
        assert isinstance(connection.default_channel, Channel)
        producer = Producer(connection.default_channel)
        for n in range(MESSAGES):
            producer.publish(
                {"n": n},
                exchange=queue.exchange,
                routing_key="takt-test-transport",
                declare=[queue],
            )

    # When a consumer takes each one (booked as unacknowledged) and acknowledges it
    built = 0
    init = redis.Redis.__init__

    def counting_init(self: redis.Redis, *args: object, **kwargs: object) -> None:
        nonlocal built
        built += 1
        init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(redis.Redis, "__init__", counting_init)
    taken: list[int] = []

    def on_message(body: dict[str, int], message: Message) -> None:
        taken.append(body["n"])
        message.ack()

    app = _app(settings, broker)
    with (
        app.connection_for_read() as connection,
        Consumer(connection, [queue], callbacks=[on_message], prefetch_count=10),
    ):
        while len(taken) < MESSAGES:
            connection.drain_events(timeout=5)

    # Then every message came once, none is left unacknowledged, and the channel built a
    # handful of clients, not one or more per message as kombu's own does
    assert sorted(taken) == list(range(MESSAGES))
    client = redis.Redis.from_url(broker)
    assert client.hlen("unacked") == 0
    assert built <= 5, built


def test_an_amqp_broker_keeps_kombu_s_own_transport(settings: TaktSettings) -> None:
    app = _app(settings, "amqp://guest:guest@127.0.0.1:5672//")
    assert "broker_transport" not in app.conf or app.conf.broker_transport is None
