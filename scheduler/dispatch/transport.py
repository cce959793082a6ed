"""kombu's Redis transport, with a worker's broker round trips shared between messages.

kombu's Redis transport costs a consuming worker three round trips per message, each in
a freshly built client: ``BRPOP`` to take it, a ``MULTI ZADD HSET EXEC`` to book it as
unacknowledged, a ``MULTI ZREM HDEL EXEC`` to acknowledge it. In Takt's worker those and
the client construction were a third of its CPU (docs/benchmarks.md, "Where an attempt's
CPU goes"). This transport keeps kombu's protocol, keys and guarantees, and:

- keeps **one client per connection pool**: a ``redis.Redis`` holds no connection of its
  own (it checks one out of its pool for each command) and may be shared by threads, so
  building one per command only copied redis-py's table of response callbacks;
- **takes the messages waiting behind the one ``BRPOP`` returned in the same go**: as
  many as the channel's prefetch allows (at most :data:`TAKE_BATCH`), taken off the queue
  and booked as unacknowledged by one script (``lua/take_messages.lua``), so a message is
  never off its queue unbooked (kombu's own ``BRPOP`` then booking can lose one to a
  SIGKILL in between);
- in a consumer run by an event loop (a Celery worker), **acknowledges in batches**: an
  acknowledged message leaves the channel's prefetch count at once, and its booking is
  removed with the others of the last :data:`ACK_FLUSH_S` in one pipeline. A worker
  killed meanwhile leaves those bookings behind: the messages are delivered again after
  the redelivery timeout and dropped by their attempt's lease, as recorded already.

Nothing changes for publishers (the beat, the API) or consumers without an event loop.

:func:`install` makes it the transport of ``redis://`` and ``rediss://`` URLs in the
process (kombu's alias table), so URLs and what Flower shows of them stay kombu's.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from time import time
from typing import Any, cast

from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.json import loads

__all__ = [
    "ACK_FLUSH_S",
    "REDIS_SCHEMES",
    "SENTINEL_SCHEME",
    "TAKE_BATCH",
    "SentinelTransport",
    "Transport",
    "install",
]

log = logging.getLogger(__name__)

#: The broker URL schemes this transport serves (kombu's Redis transport's own).
REDIS_SCHEMES = ("redis", "rediss")
#: ... and kombu's scheme for Redis through Sentinel.
SENTINEL_SCHEME = "sentinel"
#: Most messages taken off a queue in one go, after the one BRPOP returned.
TAKE_BATCH = 64
#: How long a consumer's acknowledgements wait to be sent together (seconds)...
ACK_FLUSH_S = 0.02
#: ... unless this many are waiting.
ACK_BATCH = 256

_TAKE_MESSAGES = (files("scheduler.dispatch") / "lua" / "take_messages.lua").read_text("utf-8")


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS: messages booked by the take script are not booked again, and
    acknowledgements are sent in batches when the transport is on an event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.booked: set[str] = set()
        self._acks: list[str] = []

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self.booked:
            self.booked.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)  # in memory only
        else:
            super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if not cast(Transport, self.channel.connection).batches_acks:
            super().ack(delivery_tag)
            return
        virtual.QoS.ack(self, delivery_tag)  # frees its prefetch slot now
        self._acks.append(delivery_tag)
        if len(self._acks) >= ACK_BATCH:
            self.flush_acks()

    def flush_acks(self) -> None:
        """Remove the bookings of the messages acknowledged since the last flush."""
        tags, self._acks = self._acks, []
        if not tags:
            return
        with cast(Channel, self.channel).conn_or_acquire() as client:
            pipe = client.pipeline()
            pipe.zrem(self.unacked_index_key, *tags)
            pipe.hdel(self.unacked_key, *tags)
            pipe.execute()

    def restore_unacked_once(self, stderr: Any = None) -> Any:
        try:
            self.flush_acks()
        except Exception:  # the broker is gone: the bookings are restored later
            log.warning("could not send %d acknowledgement(s) on close", len(self._acks))
        return super().restore_unacked_once(stderr)


class Channel(kombu_redis.Channel):
    """kombu's Redis channel with a shared client, batched takes and batched acks."""

    QoS = QoS
    _shared: tuple[Any, Any] | None = None  # (the pool, its client)
    _take: Any = None  # the take script, registered on the shared client
    _takes_batches = True  # off if the server cannot (RPOP with a count: Redis >= 6.2)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the consumer's own connection (BRPOP): kombu builds it once
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        shared = self._shared
        if shared is None or shared[0] is not pool:
            shared = self._shared = (pool, super()._create_client())  # type: ignore[misc]
            self._take = shared[1].register_script(_TAKE_MESSAGES)
        return shared[1]

    def _brpop_read(self, **options: Any) -> Any:
        connection = cast(Transport, self.connection)
        connection.delivered_from = None
        delivered = super()._brpop_read(**options)  # type: ignore[misc]
        queue = connection.delivered_from
        if queue is not None and self._takes_batches and not self.global_keyprefix:
            self._take_more(queue)
        return delivered

    def _take_more(self, queue: str) -> None:
        """Take and deliver what waits in ``queue``, as far as the prefetch allows."""
        qos = cast(QoS, self.qos)
        room = qos.can_consume_max_estimate()
        count = TAKE_BATCH if room is None else min(room, TAKE_BATCH)
        if count <= 0:
            return
        self._create_client()  # the shared client and its script
        try:
            items = self._take(
                keys=[queue, self.unacked_key, self.unacked_index_key], args=[count, time()]
            )
        except self.ResponseError as exc:  # an older server: one message per BRPOP
            self._takes_batches = False
            log.warning("broker cannot take messages in batches (%s); taking one at a time", exc)
            return
        for item in items:
            payload = loads(item)
            tag = payload.get("properties", {}).get("delivery_tag")
            if isinstance(tag, str):
                qos.booked.add(tag)
            self.connection._deliver(payload, queue)


class Transport(kombu_redis.Transport):
    """kombu's Redis transport on :class:`Channel`."""

    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Acknowledgements are batched once an event loop flushes them.
        self.batches_acks = False
        #: The queue of the message the last BRPOP delivered (see Channel._brpop_read).
        self.delivered_from: str | None = None
        self._flush_timer: Any = None

    def _deliver(self, message: Any, queue: str | None) -> None:
        self.delivered_from = queue
        super()._deliver(message, queue)

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._flush_timer = loop.call_repeatedly(ACK_FLUSH_S, self._flush_acks)
        self.batches_acks = True

    def _flush_acks(self) -> None:
        for channel in list(self.channels or ()):
            qos = cast(QoS | None, channel._qos)  # only channels that consumed have one
            if qos is None:
                continue
            try:
                qos.flush_acks()
            except self.connection_errors:
                # The connection is lost; the consumer reconnects. Those messages are
                # delivered again after the redelivery timeout and dropped by their lease.
                log.warning("could not send acknowledgements: the broker connection is lost")


class SentinelChannel(kombu_redis.SentinelChannel, Channel):
    """:class:`Channel` on the primary kombu's Sentinel channel finds (its pool asks the
    Sentinels for the primary on each new connection)."""


class SentinelTransport(Transport):
    """:class:`Transport` through Redis Sentinel (kombu's ``sentinel://`` URLs, with the
    ``master_name`` transport option)."""

    default_port = kombu_redis.SentinelTransport.default_port
    Channel = SentinelChannel


def install() -> None:
    """Serve ``redis://`` and ``rediss://`` brokers with :class:`Transport`, and
    ``sentinel://`` ones with :class:`SentinelTransport`, in this process. By kombu's own
    alias rather than Celery's ``broker_transport``: a connection's URL keeps its scheme,
    which Flower's broker page reads to know the broker."""
    for scheme in REDIS_SCHEMES:
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
    TRANSPORT_ALIASES[SENTINEL_SCHEME] = f"{__name__}:SentinelTransport"
