"""TAKT_LOG_FORMAT=json: one JSON object a line, an attempt's fields on the lines written
during it, credentials masked, and uvicorn's own loggers in the same format."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn.config

from scheduler.domain.credentials import secret_values
from scheduler.errors import ConfigurationError
from scheduler.observability import AttemptFields, JsonFormatter, about_attempt, use_json_logs
from scheduler.observability.logs import ATTEMPT_FIELDS
from scheduler.settings import load_settings

PASSWORD = "basic-password-json-77"
URI_PASSWORD = "uri-password-json-31"


def job_wire() -> dict[str, Any]:
    return {
        "action": {
            "type": "Http",
            "request": {
                "uri": f"https://hook:{URI_PASSWORD}@example.com/x?sig=abc",
                "method": "GET",
                "authentication": {"type": "Basic", "username": "u", "password": PASSWORD},
            },
        }
    }


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of the test's own whose lines go through the JSON format into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter("worker"))
    logger = logging.getLogger("takt.test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)


def written(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_time_level_logger_message_and_role(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    # Given the JSON format
    logger, buffer = lines

    # When a line with arguments and one with an exception are written
    logger.info("ready: %d queues", 4)
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logger.exception("it failed")

    # Then each is one line of JSON with the fields; the traceback is a field
    first, second = written(buffer)
    assert first["message"] == "ready: 4 queues"
    assert (first["level"], first["logger"], first["role"]) == ("INFO", "takt.test.json", "worker")
    assert first["time"].endswith("+00:00")
    assert "job" not in first
    assert second["level"] == "ERROR"
    assert "ValueError: boom" in second["exception"]
    assert len(buffer.getvalue().splitlines()) == 2


def test_lines_during_an_attempt_carry_its_fields_and_mask_its_credentials(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    # Given an attempt of a job holding a basic-auth password and a URI password
    logger, buffer = lines
    fields = AttemptFields("s/rg/c/j", 1_700_000_000_000, "m1", lambda: "tag-1")

    # When lines are written during it, before and after its action is known, one of
    # them quoting the credentials (as a careless message would)
    with about_attempt(fields):
        logger.info("loading")
        fields.action_type = "Http"
        fields.secrets = lambda: secret_values(job_wire())
        logger.warning(
            "calling https://hook:%s@example.com/x?sig=abc with %s", URI_PASSWORD, PASSWORD
        )
        fields.outcome = "failed"
        logger.debug("done")
    logger.info("after")

    # Then every line of the attempt has its fields, the outcome once known, and no
    # credential; the line after it has none of them
    loading, calling, done, after = written(buffer)
    for line in (loading, calling, done):
        assert set(ATTEMPT_FIELDS) <= set(line)
        assert (line["job"], line["attempt"], line["execution_tag"]) == ("s/rg/c/j", "m1", "tag-1")
        assert line["occurrence"] == "2023-11-14T22:13:20+00:00"
    assert (loading["action_type"], loading["outcome"]) == (None, None)
    assert (done["action_type"], done["outcome"]) == ("Http", "failed")
    assert PASSWORD not in buffer.getvalue()
    assert URI_PASSWORD not in buffer.getvalue()
    assert "sig=abc" not in buffer.getvalue()
    assert "job" not in after


def test_fields_passed_with_extra_are_written(lines: tuple[logging.Logger, io.StringIO]) -> None:
    # Given the JSON format
    logger, buffer = lines

    # When a line passes an attempt's fields through extra=
    logger.info("redelivered", extra={"job": "s/rg/c/j", "attempt": "m0", "outcome": "sent"})

    # Then they are fields of the line
    (line,) = written(buffer)
    assert (line["job"], line["attempt"], line["outcome"]) == ("s/rg/c/j", "m0", "sent")


def test_uvicorn_s_lines_are_json_though_it_configures_its_loggers_after_the_app(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given JSON logs set up the way the API does (before uvicorn starts)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers = [logging.StreamHandler()]
    root.setLevel(logging.INFO)
    try:
        use_json_logs("api")

        # When uvicorn configures its loggers with its own formatter, then logs
        logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).handlers = []

    # Then its line came out once, as JSON of the API
    (line,) = [json.loads(text) for text in capsys.readouterr().err.splitlines()]
    assert (line["message"], line["role"], line["logger"]) == (
        "Started server process [42]",
        "api",
        "uvicorn.error",
    )


@pytest.mark.parametrize(
    ("value", "expected"), [("json", "json"), ("JSON", "json"), ("text", "text")]
)
def test_the_log_format_setting_takes_text_or_json(value: str, expected: str) -> None:
    # Given TAKT_LOG_FORMAT set
    # When the settings are read
    settings = load_settings({"TAKT_LOG_FORMAT": value})

    # Then it is the format, in lower case
    assert settings.log_format == expected


def test_an_unknown_log_format_is_refused_naming_the_variable_and_the_choices() -> None:
    # Given a format Takt does not write
    # When the settings are read
    with pytest.raises(ConfigurationError) as refused:
        load_settings({"TAKT_LOG_FORMAT": "xml"})

    # Then the message names the variable, the value and the choices
    assert str(refused.value) == "TAKT_LOG_FORMAT='xml': expected text or json"


@pytest.mark.parametrize("where", ["main", "thread"])
def test_an_exception_nothing_caught_is_a_json_line_too(where: str) -> None:
    # Given a process writing JSON logs, when an exception escapes (the process dies of
    # it, or a thread does)
    program = textwrap.dedent(
        f"""
        import threading
        from scheduler.observability import use_json_logs
        use_json_logs("beat")
        def fail():
            raise RuntimeError("boom at https://user:hunter2@example.com/x?sig=abc")
        if {where!r} == "thread":
            t = threading.Thread(target=fail, name="pusher"); t.start(); t.join()
        else:
            fail()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )

    # Then stderr is JSON lines only, the traceback inside one, the URL cut down
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    [line] = lines
    assert line["level"] == "CRITICAL"
    assert "RuntimeError: boom" in line["exception"]
    assert "hunter2" not in done.stderr
    assert "sig=abc" not in done.stderr
    assert done.returncode == (1 if where == "main" else 0)
