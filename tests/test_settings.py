"""Settings come from TAKT_ variables only, and unknown ones are an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.errors import ConfigurationError
from scheduler.settings import load_settings


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
