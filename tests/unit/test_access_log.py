"""The API's access log: one line per request with client, method, path, status, duration."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from starlette.types import Message, Receive, Scope, Send

from scheduler.api.access_log import AccessLog


def _scope(path: str, query: bytes) -> Scope:
    return {
        "type": "http",
        "method": "PUT",
        "path": path,
        "root_path": "",
        "query_string": query,
        "http_version": "1.1",
        "client": ("10.0.0.7", 51234),
        "headers": [],
    }


async def _answer_201(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _fail(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom")


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


async def _discard(message: Message) -> None:
    pass


def test_an_answered_request_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    # Given the access log around an app that answers 201
    caplog.set_level(logging.INFO, logger="takt.access")

    # When a request goes through it
    asyncio.run(AccessLog(_answer_201)(_scope("/jobs/a\nb", b"api-version=1"), _receive, _discard))

    # Then one line names the client, the request (newline quoted), the status and the time
    (line,) = [r.getMessage() for r in caplog.records if r.name == "takt.access"]
    assert re.fullmatch(
        r'10\.0\.0\.7:51234 - "PUT /jobs/a%0Ab\?api-version=1 HTTP/1\.1" 201 \d+\.\d ms', line
    )


def test_a_request_that_fails_inside_is_logged_as_500(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="takt.access")

    with pytest.raises(RuntimeError):
        asyncio.run(AccessLog(_fail)(_scope("/x", b""), _receive, _discard))

    (line,) = [r.getMessage() for r in caplog.records if r.name == "takt.access"]
    assert '"PUT /x HTTP/1.1" 500 ' in line
