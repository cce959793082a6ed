"""Credentials of Http/Https actions beyond Basic: client certificates and Azure AD tokens.

A worker process holds one :class:`ActionAuth`, built from the settings and closed with the
process. For each request it gives the client to send with and the headers to add::

    with auth.prepare(request.authentication, ctx.http) as prepared:
        call_http(prepared.client, request, info, extra_headers=prepared.headers)

- ``ClientCertificate``: the base64 PKCS#12 ``pfx`` (opened with ``password``) becomes the
  TLS client certificate. An ``httpx.Client`` has one SSL context, so each certificate gets
  a client of its own, kept in a bounded LRU keyed by a digest of (pfx, password): a
  recurring job reuses its client and its keep-alive connections. An evicted client is
  closed once no request uses it any more.
- ``ActiveDirectoryOAuth``: the client-credentials grant of Azure AD v1
  (``POST {authority}/{tenant}/oauth2/token`` with ``resource`` = audience). A token is
  cached per (authority, tenant, client id, audience, digest of the secret) until shortly
  before it expires; concurrent requests for the same token fetch it once.
- ``Basic`` and ``NotSpecified`` need neither (``workers.http_action`` adds Basic).

Secrets (pfx, passwords, client secrets, tokens) never appear in messages, logs or
exceptions; :class:`ActionAuthFailed` carries a message fit for the job's history.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    pkcs12,
)

from scheduler.domain.models import AuthenticationType, HttpAuthentication
from scheduler.errors import TaktError
from scheduler.service.outbound import NetworkPolicy
from workers.network import PolicyClient, policy_client

__all__ = [
    "DEFAULT_OAUTH_AUTHORITY",
    "ActionAuth",
    "ActionAuthFailed",
    "AzureAdTokens",
    "ClientCertificates",
    "PreparedAuth",
]

log = logging.getLogger(__name__)

#: Azure AD's public cloud; ``TAKT_OAUTH_AUTHORITY`` overrides it (sovereign clouds, tests).
DEFAULT_OAUTH_AUTHORITY = "https://login.microsoftonline.com"

#: A token is refreshed this long before it expires (or at half its life, if shorter).
_REFRESH_MARGIN_S = 300.0
#: Token requests for different keys that hash to one stripe wait for each other; few enough
#: stripes to stay bounded, enough that unrelated tenants rarely meet.
_FETCH_STRIPES = 64
#: How much of a failed token answer goes into the message.
_ERROR_EXCERPT_CHARS = 300


class ActionAuthFailed(TaktError):
    """The action's credentials could not be used; the message names why, without secrets."""


@dataclass(frozen=True, slots=True)
class PreparedAuth:
    """The client to send a request with and the headers its authentication adds."""

    client: PolicyClient
    headers: dict[str, str]


class ActionAuth:
    """What a worker process holds for action authentication: certificate clients, tokens."""

    def __init__(
        self,
        *,
        oauth_authority: str = DEFAULT_OAUTH_AUTHORITY,
        outbound: NetworkPolicy | None = None,
        ca_file: str | None = None,
        max_certificates: int = 32,
        max_tokens: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.certificates = ClientCertificates(
            ca_file=ca_file, max_clients=max_certificates, outbound=outbound
        )
        self.tokens = AzureAdTokens(oauth_authority, max_tokens=max_tokens, clock=clock)

    @contextmanager
    def prepare(
        self, auth: HttpAuthentication | None, default: PolicyClient
    ) -> Iterator[PreparedAuth]:
        """The client and headers for a request with ``auth``; raises ActionAuthFailed."""
        if auth is not None and auth.type is AuthenticationType.CLIENT_CERTIFICATE:
            with self.certificates.client(auth.pfx, auth.password, default) as client:
                yield PreparedAuth(client, {})
        elif auth is not None and auth.type is AuthenticationType.ACTIVE_DIRECTORY_OAUTH:
            bearer = self.tokens.bearer(
                default,
                tenant=auth.tenant or "",
                client_id=auth.client_id or "",
                audience=auth.audience or "",
                secret=auth.secret,
            )
            yield PreparedAuth(default, {"Authorization": bearer})
        else:
            yield PreparedAuth(default, {})

    def close(self) -> None:
        self.certificates.close()


# -- ClientCertificate --------------------------------------------------------------------


@dataclass(slots=True)
class _Lease:
    client: PolicyClient
    users: int = 0
    evicted: bool = False


class ClientCertificates:
    """One policy client per client certificate, in a bounded LRU; thread-safe."""

    def __init__(
        self,
        *,
        ca_file: str | None = None,
        max_clients: int = 32,
        outbound: NetworkPolicy | None = None,
    ) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self._ca_file = ca_file
        self._outbound = outbound or NetworkPolicy.default()
        self._max = max_clients
        self._lock = threading.Lock()
        self._leases: OrderedDict[bytes, _Lease] = OrderedDict()

    @contextmanager
    def client(
        self, pfx: str | None, password: str | None, template: httpx.Client
    ) -> Iterator[PolicyClient]:
        """A client presenting the certificate, with the timeout and redirects of ``template``.

        The client stays open until the block ends, even if it is evicted meanwhile.
        """
        lease = self._acquire(pfx, password, template)
        try:
            yield lease.client
        finally:
            self._release(lease)

    def __len__(self) -> int:
        with self._lock:
            return len(self._leases)

    def close(self) -> None:
        """Close every idle client; those in use close when their request ends."""
        with self._lock:
            idle = _retire(list(self._leases.values()))
            self._leases.clear()
        for lease in idle:
            lease.client.close()

    def _acquire(self, pfx: str | None, password: str | None, template: httpx.Client) -> _Lease:
        if not pfx:
            raise ActionAuthFailed("ClientCertificate authentication - pfx is missing")
        key = _digest(pfx, password or "")
        with self._lock:
            lease = self._take(key)
        if lease is not None:
            return lease
        # Built outside the lock: opening a PFX takes milliseconds that others need not wait.
        context = _ssl_context(pfx, password, self._ca_file)
        built = _Lease(_client_for(context, template, self._outbound))
        with self._lock:
            lease = self._take(key)
            if lease is None:
                lease, built.users = built, 1
                self._leases[key] = built
                unused = self._evict_beyond_bound()
            else:  # another thread built the same one meanwhile
                unused = [built]
        for stale in unused:
            stale.client.close()
        return lease

    def _take(self, key: bytes) -> _Lease | None:
        lease = self._leases.get(key)
        if lease is not None:
            self._leases.move_to_end(key)
            lease.users += 1
        return lease

    def _evict_beyond_bound(self) -> list[_Lease]:
        """Drop the least recently used leases; returns those nobody uses, to be closed."""
        evicted = []
        while len(self._leases) > self._max:
            evicted.append(self._leases.popitem(last=False)[1])
        return _retire(evicted)

    def _release(self, lease: _Lease) -> None:
        with self._lock:
            lease.users -= 1
            close = lease.evicted and lease.users == 0
        if close:
            lease.client.close()


def _retire(leases: list[_Lease]) -> list[_Lease]:
    """Mark leases evicted; returns the idle ones. The others close on their last release."""
    for lease in leases:
        lease.evicted = True
    return [lease for lease in leases if lease.users == 0]


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode()).digest()


def _client_for(
    context: ssl.SSLContext, template: httpx.Client, outbound: NetworkPolicy
) -> PolicyClient:
    """A client presenting the certificate, under the outbound policy, never following
    redirects, with the timeout of ``template``."""
    return policy_client(
        outbound,
        verify=context,
        timeout=template.timeout,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=8),
    )


def _ssl_context(pfx: str, password: str | None, ca_file: str | None = None) -> ssl.SSLContext:
    """A client SSL context presenting the PFX's certificate and key.

    Servers are verified as httpx does by default (``SSL_CERT_FILE``/``SSL_CERT_DIR``, else
    certifi), or against ``ca_file`` alone when it is given.
    """
    key, chain = _open_pfx(pfx, password)
    context = ssl.create_default_context(cafile=ca_file) if ca_file else httpx.create_ssl_context()
    # ssl can only load a certificate and key from files. The key is written encrypted with a
    # one-time passphrase, in a private directory (0700, files 0600) that is gone right after.
    passphrase = secrets.token_bytes(32)
    key_pem = key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(passphrase)
    )
    chain_pem = b"".join(cert.public_bytes(Encoding.PEM) for cert in chain)
    with tempfile.TemporaryDirectory(prefix="takt-pfx-") as directory:
        cert_path = _write_private(Path(directory, "chain.pem"), chain_pem)
        key_path = _write_private(Path(directory, "key.pem"), key_pem)
        try:
            context.load_cert_chain(cert_path, key_path, password=passphrase)
        except ssl.SSLError as exc:
            raise ActionAuthFailed(
                "ClientCertificate authentication - the pfx's key does not fit its certificate"
            ) from exc
    return context


def _open_pfx(pfx: str, password: str | None) -> tuple[PrivateKeyTypes, list[x509.Certificate]]:
    """The private key and the certificate chain (leaf first) of a base64 PKCS#12 blob."""
    prefix = "ClientCertificate authentication - "
    try:
        blob = base64.b64decode(pfx, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ActionAuthFailed(prefix + "pfx is not valid base64") from exc
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(
            blob, password.encode() if password else None
        )
    except (ValueError, TypeError) as exc:
        # cryptography cannot tell a wrong password from a damaged file, and neither can we.
        raise ActionAuthFailed(
            prefix + "the pfx could not be opened: wrong password, or not a PKCS#12 file"
        ) from exc
    if key is None or cert is None:
        raise ActionAuthFailed(prefix + "the pfx holds no private key and certificate")
    return key, [cert, *extra]


def _write_private(path: Path, data: bytes) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return str(path)


# -- ActiveDirectoryOAuth -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    header: str
    refresh_at: float


@dataclass(frozen=True, slots=True)
class _TokenKey:
    authority: str
    tenant: str
    client_id: str
    audience: str
    secret_digest: bytes = field(repr=False)


class AzureAdTokens:
    """Client-credentials tokens from Azure AD (v1 endpoint), cached until near expiry."""

    def __init__(
        self,
        authority: str = DEFAULT_OAUTH_AUTHORITY,
        *,
        max_tokens: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._authority = authority.rstrip("/")
        self._max = max_tokens
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: OrderedDict[_TokenKey, _Token] = OrderedDict()
        self._stripes = [threading.Lock() for _ in range(_FETCH_STRIPES)]

    def bearer(
        self,
        http: httpx.Client,
        *,
        tenant: str,
        client_id: str,
        audience: str,
        secret: str | None,
    ) -> str:
        """The ``Authorization`` header value (``Bearer …``); raises ActionAuthFailed."""
        if not secret:
            raise ActionAuthFailed("ActiveDirectoryOAuth authentication - secret is missing")
        key = _TokenKey(self._authority, tenant, client_id, audience, _digest(secret))
        token = self._cached(key)
        if token is not None:
            return token
        with self._stripes[hash(key) % _FETCH_STRIPES]:
            token = self._cached(key)  # fetched by another thread while this one waited
            if token is not None:
                return token
            fetched = self._fetch(http, key, secret)
            with self._lock:
                self._tokens[key] = fetched
                while len(self._tokens) > self._max:
                    self._tokens.popitem(last=False)
            return fetched.header

    def _cached(self, key: _TokenKey) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is None or self._clock() >= token.refresh_at:
                return None
            self._tokens.move_to_end(key)
            return token.header

    def _fetch(self, http: httpx.Client, key: _TokenKey, secret: str) -> _Token:
        url = f"{key.authority}/{quote(key.tenant, safe='')}/oauth2/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": key.client_id,
            "client_secret": secret,
            "resource": key.audience,
        }
        where = f"ActiveDirectoryOAuth authentication - token request for tenant '{key.tenant}'"
        asked_at = self._clock()
        try:
            response = http.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ActionAuthFailed(_redact(f"{where} failed: {exc}", secret)) from exc
        body = _json_object(response)
        if response.status_code != 200:
            raise ActionAuthFailed(_redact(f"{where} failed: {_aad_error(response, body)}", secret))
        access_token = body.get("access_token") if body else None
        if not isinstance(access_token, str) or not access_token:
            raise ActionAuthFailed(f"{where} failed: the answer holds no access_token")
        expires_at = _expires_at(body or {}, asked_at)
        log.debug("token for tenant %s, client %s fetched", key.tenant, key.client_id)
        return _Token(f"Bearer {access_token}", _refresh_at(asked_at, expires_at))


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _aad_error(response: httpx.Response, body: dict[str, Any] | None) -> str:
    """``'401' invalid_client: AADSTS7000215: Invalid client secret provided.``"""
    status = f"'{response.status_code}' {response.reason_phrase}"
    if body is None or "error" not in body:
        excerpt = response.content[:_ERROR_EXCERPT_CHARS].decode("utf-8", errors="replace")
        return f"{status}; Body: {excerpt}"
    description = str(body.get("error_description") or "").strip().splitlines()
    first_line = description[0][:_ERROR_EXCERPT_CHARS] if description else ""
    return f"{status}; {body['error']}: {first_line}".rstrip(": ")


def _expires_at(body: dict[str, Any], asked_at: float) -> float:
    """When the token expires, by ``expires_in`` (relative) or ``expires_on`` (epoch)."""
    # Azure AD v1 sends both as strings of seconds; v2 and others send numbers.
    for name, base in (("expires_in", asked_at), ("expires_on", 0.0)):
        try:
            return base + float(body[name])
        except (KeyError, TypeError, ValueError):
            continue
    return asked_at  # no lifetime given: use it for this request only


def _refresh_at(asked_at: float, expires_at: float) -> float:
    lifetime = max(0.0, expires_at - asked_at)
    return asked_at + lifetime - min(_REFRESH_MARGIN_S, lifetime / 2)


def _redact(text: str, secret: str) -> str:
    """An endpoint may echo what it was sent; the secret never reaches a message."""
    for form in {secret, quote(secret, safe=""), quote(secret, safe="").replace("%20", "+")}:
        text = text.replace(form, "***")
    return text
