"""ClientCertificate and ActiveDirectoryOAuth against real servers.

A TLS server that requires a client certificate signed by a test CA (made here with
``cryptography``), and a plain HTTP token endpoint that counts what it is asked.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scheduler.domain.models import AuthenticationType, HttpAuthentication, HttpRequest
from scheduler.service.outbound import NetworkPolicy
from tests.support.helpers import HttpTarget, free_port
from workers.auth import ActionAuth, ActionAuthFailed
from workers.http_action import OccurrenceInfo, call_http
from workers.network import PolicyClient, policy_client

PASSWORD = "pfx-pass-phrase"
CLIENT_CN = "takt-test-client"
SECRET = "s3cr3t+value/with=symbols"
INFO = OccurrenceInfo(
    job_id="job",
    collection_id="collection",
    expected_time=datetime(2030, 1, 1, tzinfo=UTC),
    execution_tag="tag",
)

# -- a test PKI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: str
    server_chain: str
    server_key: str
    #: The client certificate as base64 PKCS#12 (password PASSWORD), by encryption.
    pfx: dict[str, str]


def _certificate(
    subject: str,
    public_key: Any,
    issuer: x509.Certificate | None,
    signing_key: Any,
    *,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        san = x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Takt Test CA", ca_key.public_key(), None, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        "127.0.0.1", server_key.public_key(), ca, ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH
    )
    # RSA, as the PFX files exported from Windows and Azure are.
    client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client = _certificate(
        CLIENT_CN, client_key.public_key(), ca, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    legacy = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(PASSWORD.encode())
    )
    encryptions = {"aes": BestAvailableEncryption(PASSWORD.encode()), "3des": legacy}
    pfx = {
        name: base64.b64encode(
            pkcs12.serialize_key_and_certificates(b"client", client_key, client, [ca], encryption)
        ).decode()
        for name, encryption in encryptions.items()
    }
    paths = {
        "ca.pem": ca.public_bytes(Encoding.PEM),
        "server.pem": server.public_bytes(Encoding.PEM),
        "server.key": server_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
    }
    for name, data in paths.items():
        (folder / name).write_bytes(data)
    return Pki(str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "server.key"), pfx)


# -- a TLS server that requires a client certificate ----------------------------------------


@dataclass
class TlsServer:
    server: ThreadingHTTPServer
    subjects: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/hello"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[TlsServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_chain, pki.server_key)
    context.load_verify_locations(pki.ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    tls: TlsServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            peer = self.connection.getpeercert()
            subject = dict(pair for rdn in peer["subject"] for pair in rdn)
            tls.subjects.append(subject["commonName"])
            answer = f"hello {subject['commonName']}".encode()
            self.send_response(200)
            self.close_connection = True
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # The handshake, and the check of the client's certificate, happen on accept.
    server.socket = context.wrap_socket(server.socket, server_side=True)
    tls = TlsServer(server)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield tls
    finally:
        tls.close()


@pytest.fixture
def default_client(pki: Pki) -> Iterator[PolicyClient]:
    """The worker's shared client: trusts the test CA, presents no certificate."""
    verify = ssl.create_default_context(cafile=pki.ca_file)
    with policy_client(
        NetworkPolicy.default(), verify=verify, timeout=10, limits=httpx.Limits()
    ) as c:
        yield c


@pytest.fixture
def auth(pki: Pki) -> Iterator[ActionAuth]:
    action_auth = ActionAuth(ca_file=pki.ca_file)
    try:
        yield action_auth
    finally:
        action_auth.close()


def _certificate_auth(pfx: str, password: str | None = PASSWORD) -> HttpAuthentication:
    return HttpAuthentication(
        type=AuthenticationType.CLIENT_CERTIFICATE, pfx=pfx, password=password
    )


def _get(url: str, authentication: HttpAuthentication | None) -> HttpRequest:
    return HttpRequest(uri=url, method="GET", authentication=authentication)


# -- ClientCertificate ------------------------------------------------------------------------


@pytest.mark.parametrize("encryption", ["aes", "3des"])
def test_a_client_certificate_is_presented_to_a_server_that_requires_one(
    pki: Pki,
    tls_server: TlsServer,
    auth: ActionAuth,
    default_client: PolicyClient,
    encryption: str,
) -> None:
    # Given a job authenticating with the client certificate's PFX
    authentication = _certificate_auth(pki.pfx[encryption])
    # When the request is sent with what auth prepares
    with auth.prepare(authentication, default_client) as prepared:
        outcome = call_http(prepared.client, _get(tls_server.url, authentication), INFO)
    # Then the server saw the certificate's subject and answered 200
    assert outcome.succeeded, outcome.message
    assert f"hello {CLIENT_CN}" in outcome.message
    assert tls_server.subjects == [CLIENT_CN]
    assert prepared.headers == {}
    assert prepared.client is not default_client
    assert prepared.client.timeout == default_client.timeout


def test_without_a_ca_file_the_server_is_verified_against_the_default_store(
    pki: Pki, tls_server: TlsServer, default_client: PolicyClient
) -> None:
    # Given the production setting: no CA file, so httpx's default trust store
    auth = ActionAuth()
    authentication = _certificate_auth(pki.pfx["aes"])
    try:
        # When the request goes to a server whose CA that store does not hold
        with auth.prepare(authentication, default_client) as prepared:
            outcome = call_http(prepared.client, _get(tls_server.url, authentication), INFO)
    finally:
        auth.close()
    # Then the server's certificate is refused
    assert not outcome.succeeded
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.message


def test_without_a_certificate_the_handshake_fails(
    tls_server: TlsServer, default_client: PolicyClient
) -> None:
    outcome = call_http(default_client, _get(tls_server.url, None), INFO)
    assert not outcome.succeeded
    assert re.search(r"certificate.required|handshake", outcome.message, re.IGNORECASE)
    assert tls_server.subjects == []


def test_a_wrong_password_gives_a_clear_failure_without_secrets(
    pki: Pki, auth: ActionAuth, default_client: PolicyClient
) -> None:
    pfx = pki.pfx["aes"]
    with (
        pytest.raises(ActionAuthFailed, match="wrong password, or not a PKCS#12 file") as failure,
        auth.prepare(_certificate_auth(pfx, "not-the-password"), default_client),
    ):
        pass
    message = str(failure.value)
    assert message.startswith("ClientCertificate authentication - ")
    assert "not-the-password" not in message
    assert pfx[:40] not in message
    assert len(auth.certificates) == 0


@pytest.mark.parametrize(
    ("pfx", "expected"),
    [
        pytest.param("not base64!", "pfx is not valid base64", id="not-base64"),
        pytest.param(
            base64.b64encode(b"plain text").decode(), "not a PKCS#12 file", id="not-pkcs12"
        ),
        pytest.param("", "pfx is missing", id="missing"),
    ],
)
def test_an_unusable_pfx_gives_a_clear_failure(
    auth: ActionAuth, default_client: PolicyClient, pfx: str, expected: str
) -> None:
    with (
        pytest.raises(ActionAuthFailed, match=expected),
        auth.prepare(_certificate_auth(pfx), default_client),
    ):
        pass


def test_the_client_is_reused_per_certificate_and_an_evicted_one_closes_when_idle(
    pki: Pki, tls_server: TlsServer, default_client: PolicyClient
) -> None:
    # Given room for a single certificate client
    auth = ActionAuth(ca_file=pki.ca_file, max_certificates=1)
    first, second = _certificate_auth(pki.pfx["aes"]), _certificate_auth(pki.pfx["3des"])
    try:
        # When the same certificate is used twice, it is one client
        with auth.prepare(first, default_client) as a:
            pass
        with auth.prepare(first, default_client) as again:
            # ... and while it is in use another certificate evicts it
            with auth.prepare(second, default_client) as b:
                outcome = call_http(b.client, _get(tls_server.url, second), INFO)
            # Then the evicted client stays open for the request still using it
            assert not again.client.is_closed
            outcome_again = call_http(again.client, _get(tls_server.url, first), INFO)
        # ... and is closed once that request is done
        assert again.client is a.client
        assert a.client.is_closed
        assert not b.client.is_closed
        assert outcome.succeeded
        assert outcome_again.succeeded
        assert len(auth.certificates) == 1
    finally:
        auth.close()
    assert b.client.is_closed


def test_the_pem_files_are_private_and_gone_once_loaded(
    pki: Pki,
    auth: ActionAuth,
    default_client: PolicyClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a spy on the files the worker creates, in a temporary directory of the test's
    created: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if flags & os.O_CREAT:
            created.append((str(path), mode))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(os, "open", spy)
    # When a certificate client is prepared
    with auth.prepare(_certificate_auth(pki.pfx["aes"]), default_client):
        monkeypatch.undo()
        # Then the chain and the key were written 0600 under the temporary directory
        assert sorted(Path(path).name for path, _ in created) == ["chain.pem", "key.pem"]
        assert {mode for _, mode in created} == {0o600}
        assert all(path.startswith(str(tmp_path)) for path, _ in created)
        # ... and nothing is left of them
        assert list(tmp_path.iterdir()) == []


# -- ActiveDirectoryOAuth -------------------------------------------------------------------

TENANT = "contoso.onmicrosoft.com"
TOKEN_PATH = f"/{TENANT}/oauth2/token"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def oauth(target: HttpTarget, clock: Clock) -> Iterator[ActionAuth]:
    action_auth = ActionAuth(oauth_authority=target.url + "/", clock=clock)
    try:
        yield action_auth
    finally:
        action_auth.close()


def _oauth(secret: str | None = SECRET, client_id: str = "app-id") -> HttpAuthentication:
    return HttpAuthentication(
        type=AuthenticationType.ACTIVE_DIRECTORY_OAUTH,
        tenant=TENANT,
        client_id=client_id,
        audience="https://management.core.windows.net/",
        secret=secret,
    )


def _token_answer(target: HttpTarget, token: str, **lifetime: str) -> None:
    fields = ", ".join(f'"{name}": "{value}"' for name, value in lifetime.items())
    body = f'{{"token_type": "Bearer", "access_token": "{token}", {fields}}}'
    target.answer(TOKEN_PATH, 200, body.encode())


def _headers(
    auth: ActionAuth, http: PolicyClient, authentication: HttpAuthentication
) -> dict[str, str]:
    with auth.prepare(authentication, http) as prepared:
        assert prepared.client is http
        return prepared.headers


def test_a_token_is_fetched_once_and_reused_until_shortly_before_it_expires(
    target: HttpTarget, oauth: ActionAuth, clock: Clock
) -> None:
    with httpx.Client(timeout=10) as http:
        # Given a token endpoint that hands out tokens valid for an hour
        _token_answer(target, "token-1", expires_in="3600")
        # When a job asks for its header twice within the hour
        first = _headers(oauth, http, _oauth())
        clock.now += 3000
        second = _headers(oauth, http, _oauth())
        # Then the endpoint was asked once, with the client-credentials form
        assert first == second == {"Authorization": "Bearer token-1"}
        [request] = target.requests_to(TOKEN_PATH)
        assert request.method == "POST"
        assert parse_qs(request.body.decode()) == {
            "grant_type": ["client_credentials"],
            "client_id": ["app-id"],
            "client_secret": [SECRET],
            "resource": ["https://management.core.windows.net/"],
        }
        # When the token is within five minutes of expiring
        _token_answer(target, "token-2", expires_in="3600")
        clock.now += 400
        third = _headers(oauth, http, _oauth())
    # Then a new one was fetched
    assert third == {"Authorization": "Bearer token-2"}
    assert len(target.requests_to(TOKEN_PATH)) == 2


def test_expires_on_is_honoured_when_expires_in_is_absent(
    target: HttpTarget, oauth: ActionAuth, clock: Clock
) -> None:
    with httpx.Client(timeout=10) as http:
        _token_answer(target, "token-1", expires_on=str(int(clock.now) + 1200))
        _headers(oauth, http, _oauth())
        clock.now += 800
        _headers(oauth, http, _oauth())
        assert len(target.requests_to(TOKEN_PATH)) == 1
        clock.now += 200
        _headers(oauth, http, _oauth())
    assert len(target.requests_to(TOKEN_PATH)) == 2


def test_tokens_are_kept_apart_per_client_and_secret(target: HttpTarget, oauth: ActionAuth) -> None:
    with httpx.Client(timeout=10) as http:
        _token_answer(target, "token-1", expires_in="3600")
        _headers(oauth, http, _oauth())
        _headers(oauth, http, _oauth(client_id="other-app"))
        _headers(oauth, http, _oauth(secret="rotated"))
        _headers(oauth, http, _oauth())
    assert len(target.requests_to(TOKEN_PATH)) == 3


def test_concurrent_requests_fetch_one_token(target: HttpTarget, oauth: ActionAuth) -> None:
    with httpx.Client(timeout=10) as http:
        _token_answer(target, "token-1", expires_in="3600")
        with ThreadPoolExecutor(max_workers=8) as pool:
            headers = list(pool.map(lambda _: _headers(oauth, http, _oauth()), range(16)))
    assert {h["Authorization"] for h in headers} == {"Bearer token-1"}
    assert len(target.requests_to(TOKEN_PATH)) == 1


def test_an_aad_error_gives_status_and_error_code_without_the_secret(
    target: HttpTarget, oauth: ActionAuth
) -> None:
    # Given an endpoint that refuses the secret as Azure AD does
    target.answer(
        TOKEN_PATH,
        401,
        b'{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client '
        b'secret provided.\\r\\nTrace ID: 1\\r\\nCorrelation ID: 2", "error_codes": [7000215]}',
    )
    with httpx.Client(timeout=10) as http, pytest.raises(ActionAuthFailed) as failure:
        _headers(oauth, http, _oauth())
    message = str(failure.value)
    assert message == (
        f"ActiveDirectoryOAuth authentication - token request for tenant '{TENANT}' failed: "
        "'401' Unauthorized; invalid_client: AADSTS7000215: Invalid client secret provided."
    )


def test_a_secret_echoed_by_the_endpoint_is_redacted(target: HttpTarget, oauth: ActionAuth) -> None:
    target.answer(TOKEN_PATH, 500, f"bad request client_secret={SECRET}".encode())
    with httpx.Client(timeout=10) as http, pytest.raises(ActionAuthFailed) as failure:
        _headers(oauth, http, _oauth())
    assert "'500'" in str(failure.value)
    assert SECRET not in str(failure.value)
    assert "***" in str(failure.value)


def test_an_answer_without_a_token_and_a_missing_secret_fail_clearly(
    target: HttpTarget, oauth: ActionAuth
) -> None:
    target.answer(TOKEN_PATH, 200, b'{"token_type": "Bearer"}')
    with httpx.Client(timeout=10) as http:
        with pytest.raises(ActionAuthFailed, match="holds no access_token"):
            _headers(oauth, http, _oauth())
        with pytest.raises(ActionAuthFailed, match="secret is missing"):
            _headers(oauth, http, _oauth(secret=None))


def test_an_unreachable_token_endpoint_fails_clearly(clock: Clock) -> None:
    auth = ActionAuth(oauth_authority=f"http://127.0.0.1:{free_port()}", clock=clock)
    with httpx.Client(timeout=10) as http, pytest.raises(ActionAuthFailed) as failure:
        _headers(auth, http, _oauth())
    assert str(failure.value).startswith(
        f"ActiveDirectoryOAuth authentication - token request for tenant '{TENANT}' failed: "
    )
    assert SECRET not in str(failure.value)
