"""What every request crosses before any route: the body limit, the JSON depth limit and
the security headers.

A pure ASGI middleware (Starlette's ``BaseHTTPMiddleware`` would buffer and re-wrap every
message), so the limit holds while the body is read: a declared ``Content-Length`` above
it is refused before a byte is read, and a streamed (chunked) body is counted as the app
reads it and refused as soon as it passes the limit, without reading the rest. Nothing is
read ahead of the app, so a route may still refuse before it reads (the console checks the
session first). When the last part of a body that may be JSON arrives, its nesting is
measured without parsing it, before the app sees it (the parsers recurse, and 5,000
levels were a ``RecursionError``). Refusals are ARM error bodies, answered here: 413
``RequestEntityTooLarge``, 400 ``BadRequest`` naming ``body``; the app then sees a
disconnect and whatever it sends is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.api.errors import arm_error
from scheduler.domain.bounds import nested_deeper_than

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
        length, chunked, json_like = _framing(scope)
        exchange = _Exchange(self, scope, receive, send, json_like=json_like)
        if length is not None and length > self.max_body_bytes:
            await exchange.refuse_too_large()
            return
        has_body = length is not None or chunked
        try:
            await self.app(scope, exchange.receive if has_body else receive, exchange.send)
        except Exception:
            if exchange.refused:
                return  # the app's complaint about the body it was denied; answered already
            if not exchange.started:  # Starlette's last-resort 500 would lack the headers
                await exchange.answer(arm_error(500, "InternalServerError", "internal error"))
            raise


class _Exchange:
    """One request's side of the boundary: the body counted and measured as the app reads
    it, and what the app sends, with the security headers (or nothing, once refused)."""

    __slots__ = (
        "_chunks",
        "_receive",
        "_scope",
        "_send",
        "_size",
        "boundary",
        "json_like",
        "refused",
        "started",
    )

    def __init__(
        self, boundary: Boundary, scope: Scope, receive: Receive, send: Send, *, json_like: bool
    ) -> None:
        self.boundary = boundary
        self.json_like = json_like
        self._scope = scope
        self._receive = receive
        self._send = send
        self._size = 0
        self._chunks: list[bytes] = []
        self.refused = False
        self.started = False

    async def receive(self) -> Message:
        """The next part of the body; past the limit, or once the whole body is known to be
        nested too deep, the request is answered here and the app sees a disconnect."""
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        chunk: bytes = message.get("body", b"")
        self._size += len(chunk)
        limits = self.boundary
        if self._size > limits.max_body_bytes:
            await self.refuse_too_large()
            return {"type": "http.disconnect"}
        if self.json_like:
            if message.get("more_body", False):
                self._chunks.append(chunk)
            else:
                body = b"".join([*self._chunks, chunk]) if self._chunks else chunk
                if nested_deeper_than(body, limits.max_json_depth):
                    depth = limits.max_json_depth
                    refusal = f"body: JSON nested deeper than {depth} levels"
                    await self.refuse(arm_error(400, "BadRequest", refusal))
                    return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
            message["headers"] = _with_security_headers(message.get("headers", ()))
        await self._send(message)

    async def refuse_too_large(self) -> None:
        """413, and the connection closed after it: the rest of the body is never read."""
        limit = self.boundary.max_body_bytes
        message = f"body: larger than the limit of {limit} bytes (TAKT_MAX_BODY_BYTES)"
        await self.refuse(arm_error(413, "RequestEntityTooLarge", message, {"Connection": "close"}))

    async def refuse(self, response: Response) -> None:
        """Answer with ``response`` (unless the app has begun its own) and stop the app's."""
        if not self.started:
            await self.answer(response)
        self.refused = True

    async def answer(self, response: Response) -> None:
        await response(self._scope, self._receive, self.send)


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


def _with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = list(headers)
    names = {name.lower() for name, _ in present}
    return present + [header for header in SECURITY_HEADERS if header[0] not in names]
