"""The Redis broker transport: kombu's, with one client per connection pool."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from kombu import Consumer, Exchange, Message, Producer, Queue

from scheduler.dispatch import TaktCelery
from scheduler.dispatch.transport import Channel, Transport
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
    server = redis.Redis.from_url(broker)
    brpops_before = _calls(server, "brpop")
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
    # ... and took them in batches: one BRPOP, then the rest of the prefetch in one script
    assert _calls(server, "brpop") - brpops_before <= MESSAGES // 5
    server.close()


def _calls(server: redis.Redis, command: str) -> int:
    """How many times the server has run ``command`` (all clients; the suite runs one
    test at a time)."""
    stats = server.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def test_a_redis_broker_url_keeps_its_scheme_and_amqp_keeps_kombu_s_transport(
    settings: TaktSettings, broker: str
) -> None:
    # A Redis broker's connection is Takt's transport, under kombu's own "redis" name:
    # Flower's broker page chooses its view of the queues by that URL's scheme
    with _app(settings, broker).connection_for_write() as connection:
        assert isinstance(connection.default_channel, Channel)
        assert connection.as_uri().startswith("redis://")
    # RabbitMQ's is kombu's own (no connection is opened)
    amqp = _app(settings, "amqp://guest:guest@127.0.0.1:5672//").connection_for_write()
    assert amqp.transport_cls == "amqp"
    assert not issubclass(amqp.transport.__class__, Transport)


def test_messages_taken_in_a_batch_and_never_acknowledged_come_back_whole(
    settings: TaktSettings, broker: str
) -> None:
    # Given messages with headers and properties in a queue
    queue = Queue("takt-test-restore", Exchange("takt-test-restore"), "takt-test-restore")
    app = _app(settings, broker)
    sent = [{"n": n, "text": 'é/"\\ </script>'} for n in range(20)]
    with app.connection_for_write() as connection:
        producer = Producer(connection.default_channel)
        for body in sent:
            producer.publish(
                body,
                exchange=queue.exchange,
                routing_key="takt-test-restore",
                declare=[queue],
                headers={"task": "x", "timelimit": [None, None], "empty": {}},
                priority=0,
            )

    # When a consumer takes them all (one by BRPOP, the rest in a batch), acknowledges
    # none, and its channel closes (as a worker that stops gives its messages back)
    def take_all() -> list[Message]:
        taken: list[Message] = []
        with (
            app.connection_for_read() as connection,
            Consumer(connection, [queue], callbacks=[lambda _, m: taken.append(m)]),
        ):
            while len(taken) < len(sent):
                connection.drain_events(timeout=5)
            client = redis.Redis.from_url(broker)
            # (booked, every one, as kombu books: [message, exchange, routing key])
            booked = {k.decode(): json.loads(v) for k, v in client.hgetall("unacked").items()}
            assert set(booked) == {m.delivery_tag for m in taken}
            assert all(v[1:] == ["takt-test-restore", "takt-test-restore"] for v in booked.values())
            client.close()
        return taken

    first = take_all()

    # Then they are back in the queue, whole: a second consumer gets the same messages
    again = take_all()
    assert sorted(m.payload["n"] for m in again) == list(range(20))
    by_n = {m.payload["n"]: m for m in first}
    for message in again:
        before = by_n[message.payload["n"]]
        assert message.payload == before.payload
        assert message.headers == {**before.headers, "redelivered": True}  # kombu's mark
        assert message.properties["delivery_tag"] == before.properties["delivery_tag"]
