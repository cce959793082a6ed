"""How many replicas a job or collection write waits for (issue 17): none on one Redis, one
behind Sentinel, or what TAKT_REDIS_MIN_REPLICAS says; and within how long."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.data_folder import FolderLock
from scheduler.errors import ConfigurationError
from scheduler.settings import load_settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(None, 0, id="embedded-store"),
        pytest.param("redis://127.0.0.1:6380/0", 0, id="one-redis"),
        pytest.param("rediss://h:6380/0", 0, id="one-redis-over-tls"),
        pytest.param("unix:///run/redis.sock", 0, id="unix-socket"),
        pytest.param("redis+sentinel://s1:26379,s2/takt", 1, id="sentinel"),
        pytest.param("rediss+sentinel://s1/takt", 1, id="sentinel-over-tls"),
        pytest.param("valkey+sentinel://s1/takt", 1, id="valkey-sentinel"),
        pytest.param("REDIS+SENTINEL://s1/takt", 1, id="scheme-in-capitals"),
    ],
)
def test_writes_wait_for_one_replica_only_behind_sentinel(
    url: str | None, expected: int, tmp_path: Path
) -> None:
    # Given a store URL (or none, and no `takt up` running) and no TAKT_REDIS_MIN_REPLICAS
    environ = {"TAKT_DATA_DIR": str(tmp_path)}
    if url is not None:
        environ["TAKT_REDIS_URL"] = url

    # When the settings are read
    settings = load_settings(environ)

    # Then writes wait for one replica behind Sentinel, for none otherwise
    assert settings.redis_min_replicas is None
    assert settings.min_replicas == expected


def test_the_sentinel_url_of_a_running_takt_up_ha_counts_too(tmp_path: Path) -> None:
    # Given a `takt up --ha` running on the data folder, which recorded a Sentinel URL
    lock = FolderLock.take(tmp_path)
    try:
        lock.publish_store_url("redis+sentinel://127.0.0.1:26379/takt")

        # When a service finds its store there (no TAKT_REDIS_URL)
        settings = load_settings({"TAKT_DATA_DIR": str(tmp_path)})

        # Then its writes wait for one replica
        assert settings.min_replicas == 1
    finally:
        lock.release()


@pytest.mark.parametrize(
    ("url", "setting", "expected"),
    [
        pytest.param("redis+sentinel://s1/takt", "0", 0, id="sentinel-without-waiting"),
        pytest.param("redis://h:6379/0", "1", 1, id="one-redis-with-a-replica"),
        pytest.param("redis+sentinel://s1/takt", "2", 2, id="sentinel-two-replicas"),
    ],
)
def test_the_setting_overrides_the_default(url: str, setting: str, expected: int) -> None:
    settings = load_settings({"TAKT_REDIS_URL": url, "TAKT_REDIS_MIN_REPLICAS": setting})
    assert settings.min_replicas == expected


def test_the_replica_timeout_defaults_to_one_second() -> None:
    assert load_settings({}).redis_replica_timeout_ms == 1000
    assert load_settings({"TAKT_REDIS_REPLICA_TIMEOUT_MS": "250"}).redis_replica_timeout_ms == 250


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        pytest.param(
            "TAKT_REDIS_MIN_REPLICAS", "-1", "TAKT_REDIS_MIN_REPLICAS='-1': expected an integer"
        ),
        pytest.param(
            "TAKT_REDIS_MIN_REPLICAS", "one", "TAKT_REDIS_MIN_REPLICAS='one': expected an integer"
        ),
        # WAIT 1 0 would wait for ever: the timeout is never 0.
        pytest.param(
            "TAKT_REDIS_REPLICA_TIMEOUT_MS",
            "0",
            "TAKT_REDIS_REPLICA_TIMEOUT_MS='0': expected an integer from 1",
        ),
        pytest.param(
            "TAKT_REDIS_REPLICA_TIMEOUT_MS",
            "soon",
            "TAKT_REDIS_REPLICA_TIMEOUT_MS='soon': expected an integer",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings({variable: value})


def test_the_replica_timeout_must_end_before_the_socket_timeout() -> None:
    # Given a wait for replicas longer than the longest wait on one Redis call
    environ = {
        "TAKT_REDIS_MIN_REPLICAS": "1",
        "TAKT_REDIS_REPLICA_TIMEOUT_MS": "6000",
        "TAKT_REDIS_SOCKET_TIMEOUT_S": "5",
    }

    # When the settings are read, then they are refused: the call would time out first and
    # the API would say the store does not answer instead of that no replica acknowledged
    with pytest.raises(ConfigurationError, match="TAKT_REDIS_REPLICA_TIMEOUT_MS"):
        load_settings(environ)


def test_a_short_socket_timeout_is_fine_when_writes_wait_for_no_replica() -> None:
    # Given one Redis and a socket timeout shorter than the default replica timeout
    environ = {"TAKT_REDIS_URL": "redis://h:6379/0", "TAKT_REDIS_SOCKET_TIMEOUT_S": "0.5"}

    # When the settings are read, then they are taken: no write waits for a replica
    assert load_settings(environ).min_replicas == 0
