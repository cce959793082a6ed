"""The request spec layer shared by the sync and the async client.

A :class:`Call` says what to send and how to read the answer; a :class:`Pager` says which
call comes next when a list is paged with ``nextLink``. Neither does any I/O, so the two
clients differ only in how they send (``client.request`` or ``await client.request``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import httpx

from scheduler.client._errors import raise_for_error
from scheduler.errors import ClientError

_JSON = {"Content-Type": "application/json"}

__all__ = ["Call", "Page", "Pager", "http_options"]

T = TypeVar("T")


def http_options(base_url: str, token: str, timeout_s: float) -> dict[str, Any]:
    """What both clients give their httpx client: base URL, key, timeout."""
    return {
        "base_url": base_url,
        "headers": {"Authorization": f"Bearer {token}", "Accept": "application/json"},
        "timeout": timeout_s,
    }


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request and the function that reads its successful answer.

    Attributes:
        method: The HTTP method.
        url: A path relative to the client's base URL, or an absolute URL (a ``nextLink``).
        read: Turns the successful response into the method's result.
        params: Query parameters.
        json: The JSON body; None sends no body.
    """

    method: str
    url: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, str | int] | None = None
    json: Any = None

    def body(self) -> dict[str, Any]:
        """The request's body arguments: the JSON with every non-ASCII character escaped,
        so text no encoder takes (half a surrogate pair) reaches the API, which refuses
        it naming the field, as it does for every write path."""
        if self.json is None:
            return {}
        return {"content": json.dumps(self.json).encode("ascii"), "headers": _JSON}

    def result(self, response: httpx.Response) -> T:
        """The result of the call, or the Takt error the response stands for.

        Raises:
            TaktError: an error response (see ``scheduler.client._errors``).
            ClientError: a success whose body is not what the API promises.
        """
        raise_for_error(response)
        try:
            return self.read(response)
        except (ValueError, KeyError, TypeError) as exc:  # pydantic's errors are ValueErrors
            raise ClientError(
                f"unexpected answer to {self.method} {response.request.url}: {exc}"
            ) from exc


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: its items and the absolute URL of the next page, if any."""

    items: list[T]
    next_link: str | None


@dataclass(slots=True)
class Pager(Generic[T]):
    """Follows ``nextLink`` from a first call until the pages end or ``limit`` items are in.

    ``nextLink`` must point at the client's own origin: the key is never sent elsewhere.
    """

    first: Call[Page[T]]
    origin: httpx.URL
    limit: int | None = None
    items: list[T] = field(default_factory=list, init=False)
    _next: Call[Page[T]] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._next = self.first

    def next_call(self) -> Call[Page[T]] | None:
        """The call to send now, or None when every wanted item is in."""
        return self._next

    def receive(self, page: Page[T]) -> None:
        """Take a page's items and work out the next call."""
        self.items.extend(page.items)
        if self.limit is not None and len(self.items) >= self.limit:
            del self.items[self.limit :]
            self._next = None
        elif page.next_link:
            self._next = replace(self.first, url=self._checked(page.next_link), params=None)
        else:
            self._next = None

    def _checked(self, link: str) -> str:
        url = self.origin.join(link)
        if (url.scheme, url.host, url.port) != (
            self.origin.scheme,
            self.origin.host,
            self.origin.port,
        ):
            raise ClientError(f"nextLink {link!r} points away from {self.origin}; not following it")
        return str(url)
