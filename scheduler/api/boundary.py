"""What every request crosses before any route: the body limit, the JSON depth limit and
the security headers.

A pure ASGI middleware (Starlette's ``BaseHTTPMiddleware`` would buffer and re-wrap every
message), so the limit holds while the body is read: a declared ``Content-Length`` above
it is refused before a byte is read, and a streamed (chunked) body is counted as it comes
and refused as soon as it passes the limit, without reading the rest. A body within the
limit is read whole here, before authentication, routing or form parsing, so no route can
read more; then, if it may be JSON, its nesting is measured without parsing it (the
parsers recurse, and 5,000 levels were a ``RecursionError``). Refusals are ARM error
bodies: 413 ``RequestEntityTooLarge``, 400 ``BadRequest`` naming ``body``.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.api.errors import arm_error
from scheduler.bounds import nested_deeper_than

__all__ = ["SECURITY_HEADERS", "Boundary"]

#: Sent with every answer: no MIME sniffing, and no URL of Takt's in other sites' Referer.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class Boundary:
    """ASGI middleware: bounded bodies, bounded JSON depth, security headers."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = _with_security_headers(message.get("headers", ()))
            await send(message)

        body_receive = await self._bounded(scope, receive, send_with_headers)
        if body_receive is None:
            return
        try:
            await self.app(scope, body_receive, send_with_headers)
        except Exception:
            if not started:  # Starlette's last-resort 500 would bypass these headers
                await arm_error(500, "InternalServerError", "internal error")(
                    scope, receive, send_with_headers
                )
            raise

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """A ``receive`` that replays the whole checked body; None when the request was
        refused here (or the client left)."""
        length, chunked, json_like = _framing(scope)
        if length is None and not chunked:
            return receive
        if length is not None and length > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client disconnected
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if json_like and nested_deeper_than(body, self.max_json_depth):
            refusal = f"body: JSON nested deeper than {self.max_json_depth} levels"
            await arm_error(400, "BadRequest", refusal)(scope, receive, send)
            return None
        return _replay(body, receive)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        """413, and the connection closed after it: the rest of the body is never read."""
        message = (
            f"body: larger than the limit of {self.max_body_bytes} bytes (TAKT_MAX_BODY_BYTES)"
        )
        response = arm_error(413, "RequestEntityTooLarge", message, {"Connection": "close"})
        await response(scope, receive, send)


def _framing(scope: Scope) -> tuple[int | None, bool, bool]:
    """The declared length (None: not declared), whether the body is chunked, and whether
    it may be JSON (a JSON content type, or none: FastAPI reads those as JSON)."""
    length: int | None = None
    chunked = False
    json_like = True
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"content-type":
            json_like = b"json" in value.lower()
    return length, chunked, json_like


def _replay(body: bytes, receive: Receive) -> Receive:
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()  # what follows the body: a disconnect
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = list(headers)
    names = {name.lower() for name, _ in present}
    return present + [header for header in SECURITY_HEADERS if header[0] not in names]
