"""The secret rule: which values of a job are credentials, how reads hide them, how writes
keep them. Every read path and every write path goes through this module.

A **credential** is, wherever it appears in a job (its action, its error action):

- a typed secret field: ``password``, ``pfx``, ``secret``, ``sasToken``, ``sasKey``
  (:data:`SECRET_FIELDS`);
- the value of a request header named ``Authorization``, ``Proxy-Authorization`` or
  ``Cookie``, or whose name contains one of :data:`HEADER_WORDS` (any case);
- the user info of a request URI: its password (``https://user:pw@host``), or the whole user
  info when it has no password (``https://token@host``: a token used as the user name);
- the value of a URI query parameter named in :data:`QUERY_PARAMETERS` (any case).

**Reads** show a typed secret field as ``""`` (Azure's spec: its "return value will always
be empty"; an empty string, so Microsoft's SDK sends it back) and every other credential as
:data:`MASK` (an empty header or query value would change what the job means).

**Writes** that send a value back as it was read (``""`` or :data:`MASK` for a typed field,
:data:`MASK` for the others) keep the stored value of the same place: the same field, the
header of the same name, the URI's user info, the same query parameter. A kept value only
goes where it went before: a request keeps its stored credentials only while its URI keeps
its scheme, host and port, a queue message only while its storage account is the same, a
Service Bus message only while its namespace is the same. Otherwise the write is refused
(:class:`~scheduler.errors.ValidationFailed`, naming the field): a mask sent to a new host
would carry the old credential to whoever runs that host. A :data:`MASK` with no stored value
to keep is refused too; a ``""`` with none stays ``""``.

The functions work on the wire form (camelCase dicts) and never import the models.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, unquote_plus

from scheduler.errors import ValidationFailed

__all__ = [
    "HEADER_WORDS",
    "MASK",
    "QUERY_PARAMETERS",
    "SECRET_FIELDS",
    "SECRET_HEADERS",
    "is_secret_header",
    "is_secret_query_parameter",
    "keep_stored",
    "mask",
    "mask_uri",
    "redact",
    "secret_values",
]

#: What a read shows in place of a header value, a URI password or a query value.
MASK = "******"

#: Typed secret members (wire names); reads show them as "".
SECRET_FIELDS = frozenset({"password", "pfx", "secret", "sasToken", "sasKey"})

#: Header names (lower case) whose values are credentials whatever they hold.
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

#: A header whose name (lower case) contains one of these words holds a credential.
HEADER_WORDS = (
    "auth",
    "cookie",
    "credential",
    "key",
    "passwd",
    "password",
    "secret",
    "session",
    "signature",
    "token",
)

#: Query parameter names (lower case) whose values are credentials.
QUERY_PARAMETERS = frozenset(
    {
        "access_token",
        "api-key",
        "api_key",
        "apikey",
        "auth",
        "client_secret",
        "code",  # Azure Functions keys
        "id_token",
        "key",
        "passwd",
        "password",
        "pwd",
        "refresh_token",
        "secret",
        "session_token",
        "sig",  # Azure SAS and Logic Apps signatures
        "signature",
        "subscription-key",
        "token",
        "x-amz-security-token",
        "x-amz-signature",
        "x-goog-signature",
    }
)

#: Credentials shorter than this are not searched for in free text (history messages):
#: replacing every "a" of a message would hide the message, not a secret.
_MIN_REDACTED = 4

#: Members of a request-like dict that say where its credentials go.
_DESTINATIONS = ("uri", "storageAccount", "namespace")


def is_secret_header(name: str) -> bool:
    folded = name.strip().lower()
    return folded in SECRET_HEADERS or any(word in folded for word in HEADER_WORDS)


def is_secret_query_parameter(name: str) -> bool:
    return unquote_plus(name).strip().lower() in QUERY_PARAMETERS


# -- URIs -----------------------------------------------------------------------------------


class _Uri:
    """An absolute URI cut into the parts the rule looks at, rejoined byte for byte.

    ``head`` is ``scheme://``, ``userinfo`` the text before the last ``@`` of the
    authority (None: none), ``hostport`` the rest of the authority, ``path`` up to ``?``,
    ``query`` its ``&``-separated items (None: no ``?``), ``fragment`` from ``#`` on.
    """

    __slots__ = ("fragment", "head", "hostport", "path", "query", "userinfo")

    def __init__(self, uri: str) -> None:
        scheme, sep, rest = uri.partition("://")
        self.head = scheme + sep
        if not sep:
            rest, self.head = uri, ""
        end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        authority, tail = rest[:end], rest[end:]
        self.userinfo: str | None = None
        self.hostport = authority
        if "@" in authority:
            self.userinfo, _, self.hostport = authority.rpartition("@")
        tail, hash_, fragment = tail.partition("#")
        self.fragment = hash_ + fragment
        self.path, question, query = tail.partition("?")
        self.query: list[str] | None = query.split("&") if question else None

    def __str__(self) -> str:
        authority = self.hostport if self.userinfo is None else f"{self.userinfo}@{self.hostport}"
        query = "" if self.query is None else "?" + "&".join(self.query)
        return f"{self.head}{authority}{self.path}{query}{self.fragment}"

    @property
    def origin(self) -> tuple[str, str]:
        """Where the request goes: scheme and host:port, in lower case."""
        return self.head.lower(), self.hostport.lower()

    def secret_params(self) -> Iterator[tuple[int, str, str]]:
        """(index, folded name, value) of each credential query item with a value."""
        for index, item in enumerate(self.query or ()):
            name, _, value = item.partition("=")
            if value and is_secret_query_parameter(name):
                yield index, unquote_plus(name).strip().lower(), value


def _masked_userinfo(userinfo: str) -> str:
    user, colon, password = userinfo.partition(":")
    if colon:
        return f"{user}:{MASK}" if password else userinfo
    return MASK if userinfo else userinfo


def mask_uri(uri: str) -> str:
    """``uri`` with its user info's password (or a bare user info) and the values of its
    credential query parameters replaced by :data:`MASK`; the rest unchanged."""
    if "@" not in uri and "?" not in uri:
        return uri
    parts = _Uri(uri)
    if parts.userinfo is not None:
        parts.userinfo = _masked_userinfo(parts.userinfo)
    if parts.query is not None:
        for index, _, _ in list(parts.secret_params()):
            name = parts.query[index].partition("=")[0]
            parts.query[index] = f"{name}={MASK}"
    return str(parts)


# -- reads ------------------------------------------------------------------------------------


def mask(wire: Any) -> Any:
    """A copy of a wire dict (or list) with every credential hidden, as reads show it."""
    if isinstance(wire, list):
        return [mask(item) for item in wire]
    if not isinstance(wire, dict):
        return wire
    masked = {}
    for key, value in wire.items():  # one loop, no call per member: every read runs it
        if isinstance(value, str):
            if key in SECRET_FIELDS:
                value = ""
            elif key == "uri":
                value = mask_uri(value)
        elif isinstance(value, dict):
            value = _masked_headers(value) if key == "headers" else mask(value)
        elif isinstance(value, list):
            value = [mask(item) for item in value]
        masked[key] = value
    return masked


def _masked_headers(headers: dict[str, Any]) -> dict[str, Any]:
    return {
        name: MASK if is_secret_header(name) and text else mask(text)
        for name, text in headers.items()
    }


# -- writes -----------------------------------------------------------------------------------


def keep_stored(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Put the stored value (from ``old``) back wherever ``new`` sends a value back as read.

    ``new`` is the job's properties as written (wire form), changed in place; ``old`` the
    stored ones (None: a new job). Returns whether anything was put back; raises
    ValidationFailed, naming the field, for a mask it cannot or must not resolve.
    """
    return _keep(new, old, "properties", same_place=True)


def _keep(new: Any, old: Any, path: str, *, same_place: bool) -> bool:
    if isinstance(new, list):
        olds = old if isinstance(old, list) else []
        kept = False
        for i, item in enumerate(new):
            before = olds[i] if i < len(olds) else None
            kept |= _keep(item, before, f"{path}[{i}]", same_place=same_place)
        return kept
    if not isinstance(new, dict):
        return False
    stored = old if isinstance(old, dict) else None
    if stored is not None and any(key in new for key in _DESTINATIONS):
        same_place = same_place and _destination(new) == _destination(stored)
    kept = False
    for key, value in new.items():
        where = f"{path}.{key}"
        before = stored.get(key) if stored is not None else None
        if key == "authentication" and _other_kind(value, before):
            before = None  # another kind of authentication: nothing of the old one is kept
        if key in SECRET_FIELDS and isinstance(value, str):
            kept |= _keep_field(new, key, value, before, where, same_place=same_place)
        elif key == "uri" and isinstance(value, str):
            kept |= _keep_uri(new, value, before, where, same_place=same_place)
        elif key == "headers" and isinstance(value, dict):
            kept |= _keep_headers(value, before, where, same_place=same_place)
        else:
            kept |= _keep(value, before, where, same_place=same_place)
    return kept


def _other_kind(new: Any, old: Any) -> bool:
    return isinstance(new, dict) and isinstance(old, dict) and new.get("type") != old.get("type")


def _destination(member: dict[str, Any]) -> tuple[Any, ...]:
    uri = member.get("uri")
    origin = _Uri(uri).origin if isinstance(uri, str) else None
    return (origin, member.get("storageAccount"), member.get("namespace"))


def _elsewhere(where: str) -> ValidationFailed:
    return ValidationFailed(
        f"{where}: a stored credential is kept only while it goes to the same place "
        "(the same scheme, host and port, storage account or namespace); "
        "this one would go to another host: send the credential itself",
        field=where,
    )


def _nothing_to_keep(where: str) -> ValidationFailed:
    return ValidationFailed(
        f"{where}: holds the mask {MASK!r} but there is no stored value to keep; "
        "send the value itself",
        field=where,
    )


def _kept(stored: Any, where: str, *, same_place: bool) -> str:
    if not isinstance(stored, str) or not stored:
        raise _nothing_to_keep(where)
    if not same_place:
        raise _elsewhere(where)
    return stored


def _keep_field(
    owner: dict[str, Any], key: str, value: str, stored: Any, where: str, *, same_place: bool
) -> bool:
    if value == MASK or (value == "" and isinstance(stored, str) and stored):
        owner[key] = _kept(stored, where, same_place=same_place)
        return True
    return False


def _keep_headers(headers: dict[str, Any], old: Any, where: str, *, same_place: bool) -> bool:
    stored = {str(k).lower(): v for k, v in old.items()} if isinstance(old, dict) else {}
    kept = False
    for name, value in headers.items():
        if value == MASK:
            path = f"{where}.{name}"
            headers[name] = _kept(stored.get(name.lower()), path, same_place=same_place)
            kept = True
    return kept


def _keep_uri(owner: dict[str, Any], uri: str, old: Any, where: str, *, same_place: bool) -> bool:
    if MASK not in uri:
        return False
    parts = _Uri(uri)
    before = _Uri(old) if isinstance(old, str) else None
    kept = False
    if parts.userinfo is not None and MASK in parts.userinfo:
        parts.userinfo = _kept_userinfo(parts.userinfo, before, where, same_place=same_place)
        kept = True
    query = parts.query or []
    for index, name, value in list(parts.secret_params()):
        if value == MASK:
            stored = _stored_param(before, name, _occurrence(parts, index, name))
            key = query[index].partition("=")[0]
            query[index] = f"{key}={_kept(stored, where, same_place=same_place)}"
            kept = True
    owner["uri"] = str(parts)
    return kept


def _kept_userinfo(userinfo: str, before: _Uri | None, where: str, *, same_place: bool) -> str:
    stored = before.userinfo if before is not None else None
    user, colon, password = userinfo.partition(":")
    if not colon:  # a bare user info, masked whole
        return _kept(stored if userinfo == MASK else None, where, same_place=same_place)
    if password != MASK:
        return userinfo
    stored_password = stored.partition(":")[2] if stored is not None else None
    return f"{user}:{_kept(stored_password, where, same_place=same_place)}"


def _occurrence(parts: _Uri, index: int, name: str) -> int:
    """How many earlier credential items of the query share ``name``."""
    return sum(1 for i, n, _ in parts.secret_params() if n == name and i < index)


def _stored_param(before: _Uri | None, name: str, occurrence: int) -> str | None:
    if before is None:
        return None
    values = [value for _, n, value in before.secret_params() if n == name]
    return values[occurrence] if occurrence < len(values) else None


# -- free text ------------------------------------------------------------------------------


def secret_values(wire: Any) -> set[str]:
    """Every credential a job holds, as text could echo it: the values themselves, their
    percent-decoded forms, a header's credentials without its scheme (``Bearer x`` → ``x``)
    and the ``Authorization: Basic`` value the worker builds from a user and password."""
    found: set[str] = set()
    _collect(wire, found)
    return {value for value in found if len(value) >= _MIN_REDACTED and value != MASK}


def _collect(wire: Any, found: set[str]) -> None:
    if isinstance(wire, list):
        for item in wire:
            _collect(item, found)
        return
    if not isinstance(wire, dict):
        return
    for key, value in wire.items():
        if key in SECRET_FIELDS and isinstance(value, str):
            found.add(value)
        elif key == "uri" and isinstance(value, str):
            _collect_uri(value, found)
        elif key == "headers" and isinstance(value, dict):
            for name, text in value.items():
                if is_secret_header(name) and isinstance(text, str):
                    found.update({text, text.partition(" ")[2]})
        else:
            _collect(value, found)
    if isinstance(wire.get("username"), str) and isinstance(wire.get("password"), str):
        found.add(_basic(wire["username"], wire["password"]))


def _collect_uri(uri: str, found: set[str]) -> None:
    parts = _Uri(uri)
    if parts.userinfo:
        user, colon, password = parts.userinfo.partition(":")
        found.update({password, unquote(password)} if colon else {user, unquote(user)})
        found.add(_basic(unquote(user), unquote(password)))
    for _, _, value in parts.secret_params():
        found.update({value, unquote_plus(value)})


def _basic(user: str, password: str) -> str:
    """The ``Authorization: Basic`` credentials a worker sends for this user and password."""
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def redact(text: str, secrets: set[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by :data:`MASK`, longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text
