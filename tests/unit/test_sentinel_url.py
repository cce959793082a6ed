"""Sentinel URLs (scheduler.store.connections) and what the broker makes of them
(scheduler.dispatch.celery_app.kombu_broker)."""

from __future__ import annotations

import pytest

from scheduler.dispatch.celery_app import kombu_broker
from scheduler.dispatch.messages import is_redis_url
from scheduler.store.connections import SentinelAddress, is_sentinel_url, parse_sentinel_url

URL = "redis+sentinel://:s3cr%40t@10.0.0.1:26379,10.0.0.2:26380,[::1]/takt/2?sentinel_password=sp"


def test_a_sentinel_url_names_its_sentinels_service_database_and_passwords() -> None:
    address = parse_sentinel_url(URL)
    assert address == SentinelAddress(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380), ("::1", 26379)),
        service="takt",
        db=2,
        password="s3cr@t",
        sentinel_password="sp",
    )
    assert address.node_kwargs() == {"db": 2, "password": "s3cr@t"}
    assert address.sentinel_kwargs() == {"password": "sp"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://h1/mymaster", SentinelAddress((("h1", 26379),), "mymaster")),
        (
            "valkey+sentinel://user:pw@h1:1,h2:2/svc/0",
            SentinelAddress((("h1", 1), ("h2", 2)), "svc", 0, "user", "pw"),
        ),
        (
            "redis+sentinel://h1:5000/svc?sentinel_username=u&sentinel_password=p",
            SentinelAddress((("h1", 5000),), "svc", sentinel_username="u", sentinel_password="p"),
        ),
    ],
)
def test_the_forms_a_sentinel_url_takes(url: str, expected: SentinelAddress) -> None:
    assert is_sentinel_url(url)
    assert parse_sentinel_url(url) == expected


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("redis+sentinel://:pw@/svc", "at least one Sentinel"),
        ("redis+sentinel://:pw@h1:26379", "service"),
        ("redis+sentinel://:pw@h1:26379/", "service"),
        ("redis+sentinel://:pw@h1:port/svc", "port is a number"),
        ("redis+sentinel://:pw@h1/svc/zero", "database"),
        ("redis://:pw@h1/0", "scheme"),
    ],
)
def test_a_bad_sentinel_url_is_refused_naming_the_part_and_never_the_password(
    url: str, names: str
) -> None:
    with pytest.raises(ValueError, match=names) as refused:
        parse_sentinel_url(url)
    assert "pw" not in str(refused.value)


def test_the_passwords_never_show_in_a_repr() -> None:
    # (a log line or a traceback prints the address's repr)
    shown = repr(parse_sentinel_url(URL))
    assert "s3cr" not in shown
    assert "sp'" not in shown


def test_a_server_url_is_not_a_sentinel_url_and_both_are_redis_brokers() -> None:
    assert not is_sentinel_url("redis://h:6379/0")
    assert not is_sentinel_url("amqp://guest@h//")
    assert is_redis_url("redis://h:6379/0")
    assert is_redis_url(URL)
    assert not is_redis_url("amqp://guest@h//")


def test_kombu_gets_its_sentinel_list_and_the_service_as_master_name() -> None:
    broker, options = kombu_broker(URL)
    assert broker == (
        "sentinel://:s3cr%40t@10.0.0.1:26379/2;sentinel://:s3cr%40t@10.0.0.2:26380/2;"
        "sentinel://:s3cr%40t@[::1]:26379/2"
    )
    assert options == {"master_name": "takt", "sentinel_kwargs": {"password": "sp"}}
    # (any other broker URL is kombu's as it is)
    assert kombu_broker("redis://h:6379/0") == ("redis://h:6379/0", {})
