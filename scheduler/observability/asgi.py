"""What the API's observing middlewares (access log, metrics, traces) share: the status a
response started with, noted as it passes."""

from __future__ import annotations

from starlette.types import Message, Send

__all__ = ["StatusNote"]


class StatusNote:
    """Wraps an ASGI ``send``: :attr:`status` is the response's status once it has
    started, 500 until then (an app that raised before answering)."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)
