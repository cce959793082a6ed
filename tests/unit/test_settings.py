"""Settings come from TAKT_ variables only, and unknown ones are an error: the services'
(TaktSettings) and the CLI client's (ClientSettings) alike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scheduler.errors import ConfigurationError
from scheduler.settings import (
    child_environment,
    flower_variables,
    load_client_settings,
    load_settings,
)


def test_defaults_match_the_readme() -> None:
    settings = load_settings({})
    assert settings.redis_url is None
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8000)
    assert settings.data_dir == Path(".takt")
    assert settings.admin_token_path == Path(".takt/admin-token")


def test_the_broker_defaults_to_the_redis_url() -> None:
    settings = load_settings({"TAKT_REDIS_URL": "redis://h:1/0"})
    assert settings.celery_broker_url == "redis://h:1/0"
    other = load_settings({"TAKT_REDIS_URL": "redis://h:1/0", "TAKT_BROKER_URL": "amqp://r//"})
    assert other.celery_broker_url == "amqp://r//"


def test_an_unknown_takt_variable_is_an_error_that_names_it() -> None:
    with pytest.raises(ConfigurationError, match="TAKT_REDIS_ULR"):
        load_settings({"TAKT_REDIS_ULR": "redis://typo"})


def test_variables_of_the_test_suite_and_other_programs_are_ignored() -> None:
    settings = load_settings({"TAKT_TEST_REDIS_URL": "redis://x", "PATH": "/bin"})
    assert settings.redis_url is None


def test_a_bad_value_is_an_error_that_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="TAKT_API_PORT='eighty'"):
        load_settings({"TAKT_API_PORT": "eighty"})


def test_without_a_redis_url_the_store_url_explains_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="takt up"):
        _ = load_settings({}).store_url


def test_the_admin_token_is_never_shown_in_the_settings_repr() -> None:
    settings = load_settings({"TAKT_ADMIN_TOKEN": "sekrit"})
    assert "sekrit" not in repr(settings)


# The client's settings: what `takt jobs`, `collections` and `principals` read


def test_the_client_defaults_to_the_local_api_and_the_admin_key_file() -> None:
    settings = load_client_settings({})
    assert settings.client_url == "http://127.0.0.1:8000"
    assert settings.admin_token_path == Path(".takt/admin-token")
    assert (settings.subscription, settings.resource_group) == ("default", "default")


def test_the_client_url_is_the_api_url_else_the_api_host_and_port() -> None:
    assert load_client_settings({"TAKT_API_PORT": "9"}).client_url == "http://127.0.0.1:9"
    assert load_client_settings({"TAKT_API_URL": "https://t.example"}).client_url == (
        "https://t.example"
    )


def test_an_unknown_takt_variable_is_an_error_of_the_client_too() -> None:
    with pytest.raises(ConfigurationError, match="did you mean TAKT_API_URL"):
        load_client_settings({"TAKT_API_ULR": "http://typo"})


def test_the_services_and_the_client_know_each_others_variables() -> None:
    # One environment serves a machine's services and its CLI.
    assert load_client_settings({"TAKT_REDIS_URL": "redis://h:1/0"}).api_url is None
    assert load_settings({"TAKT_API_URL": "http://h:1", "TAKT_API_KEY": "k"}).redis_url is None


def test_a_bad_client_value_is_an_error_that_names_the_setting() -> None:
    with pytest.raises(
        ConfigurationError, match="TAKT_API_PORT='eighty': expected an integer from 0 to 65535"
    ):
        load_client_settings({"TAKT_API_PORT": "eighty"})


def test_the_api_key_is_never_shown_in_the_client_settings_or_its_errors() -> None:
    assert "sekrit" not in repr(load_client_settings({"TAKT_API_KEY": "sekrit"}))
    with pytest.raises(ConfigurationError) as raised:
        load_client_settings({}, api_key=["takt_s3cret"])
    assert "takt_s3cret" not in str(raised.value)
    assert "TAKT_API_KEY" in str(raised.value)


# The process environment beyond the settings


def test_flower_variables_are_only_flowers_login_variables() -> None:
    environ = {"FLOWER_BASIC_AUTH": "u:p", "FLOWER_PORT": "1", "PATH": "/bin"}
    assert flower_variables(environ) == {"FLOWER_BASIC_AUTH": "u:p"}
    assert flower_variables({"FLOWER_UNAUTHENTICATED_API": ""}) == {
        "FLOWER_UNAUTHENTICATED_API": ""
    }


def test_a_child_of_takt_up_gets_this_environment_and_the_embedded_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAKT_LOG_LEVEL", "DEBUG")
    monkeypatch.delenv("TAKT_REDIS_URL", raising=False)
    assert child_environment() == dict(os.environ)

    env = child_environment(redis_url="redis://:pw@127.0.0.1:1/0")

    assert env == {**os.environ, "TAKT_REDIS_URL": "redis://:pw@127.0.0.1:1/0"}
    assert "TAKT_REDIS_URL" not in os.environ
