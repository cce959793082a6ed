"""A local Service Bus for the tests: an HTTPS server that implements the "Send Message"
contract of Service Bus's REST interface strictly, and records what it accepted.

There is no Service Bus emulator to install here (Microsoft's runs only in a container
with SQL Server), so this is what the Service Bus actions are tested against. It serves
``https://127.0.0.1:{port}/{namespace}/{entity}/messages`` (point
``TAKT_SERVICE_BUS_ENDPOINT`` at :attr:`LocalServiceBus.endpoint_template`) and answers as
Service Bus documents:

- ``POST`` only, to ``/{namespace}/{entity}/messages`` of an entity made with
  :meth:`LocalServiceBus.create` (else 404, 405 for another method);
- ``Authorization: SharedAccessSignature sr=&sig=&se=&skn=``: every member present, ``skn``
  a key of the entity, ``sr`` a prefix of the entity's URI, ``se`` not past, ``sig`` the
  HMAC-SHA256 of the URL-encoded ``sr``, a newline and ``se`` under that key (else 401);
- ``BrokerProperties``, if sent: a JSON object of Service Bus's documented members only;
  ``Content-Type`` present; a body of at most 256 KB (the standard tier's limit; else 413);
- then ``201 Created``, and the message is recorded (:class:`Delivered`).

Its certificate is issued by a CA made for the run (:attr:`LocalServiceBus.ca_file`): give
it to the client (``verify=``) or the worker processes (``SSL_CERT_FILE``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["BROKER_PROPERTY_NAMES", "Delivered", "LocalServiceBus", "start_service_bus"]

#: The members of ``BrokerProperties`` Service Bus documents for a message it receives.
BROKER_PROPERTY_NAMES = frozenset(
    {
        "CorrelationId",
        "ForcePersistence",
        "Label",
        "MessageId",
        "PartitionKey",
        "ReplyTo",
        "ReplyToSessionId",
        "ScheduledEnqueueTimeUtc",
        "SessionId",
        "TimeToLive",
        "To",
        "ViaPartitionKey",
    }
)
MAX_MESSAGE_BYTES = 256 * 1024
#: Headers of the HTTP exchange itself; every other one the sender set is a custom property.
_TRANSPORT_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "authorization",
        "brokerproperties",
        "connection",
        "content-length",
        "content-type",
        "host",
        "user-agent",
        "x-ms-client-request-id",
    }
)


@dataclass(frozen=True)
class Delivered:
    """One message the local Service Bus accepted."""

    namespace: str
    entity: str
    body: bytes
    content_type: str
    broker_properties: dict[str, Any]
    custom_properties: dict[str, str]
    token: dict[str, str]
    headers: dict[str, str]


@dataclass
class LocalServiceBus:
    server: ThreadingHTTPServer
    ca_file: str
    keys: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    delivered: list[Delivered] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    #: Statuses to answer next (instead of judging the request), one per request.
    scripted: list[int] = field(default_factory=list)
    held: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    @property
    def endpoint_template(self) -> str:
        """What TAKT_SERVICE_BUS_ENDPOINT is set to for this server."""
        return self.base_url + "/{namespace}"

    def create(self, namespace: str, entity: str, key_name: str, key: str) -> None:
        """A queue or topic that accepts messages signed with ``key`` named ``key_name``."""
        with self.lock:
            self.keys.setdefault((namespace, entity), {})[key_name] = key

    def script(self, *statuses: int) -> None:
        with self.lock:
            self.scripted.extend(statuses)

    def hold(self) -> threading.Event:
        """Keep every request waiting until the returned event is set."""
        self.held = threading.Event()
        return self.held

    def messages(self, namespace: str, entity: str) -> list[Delivered]:
        with self.lock:
            return [d for d in self.delivered if (d.namespace, d.entity) == (namespace, entity)]

    def close(self) -> None:
        if self.held is not None:
            self.held.set()
        self.server.shutdown()
        self.server.server_close()

    # -- the contract ------------------------------------------------------------------------

    def judge(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        """(status, reason) of a POST: 201 and the message recorded, or why it is refused."""
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) < 3 or parts[-1] != "messages":
            return 404, "no such entity"
        namespace, entity = parts[0], "/".join(parts[1:-1])
        with self.lock:
            keys = self.keys.get((namespace, entity))
        if keys is None:
            return 404, f"entity {namespace}/{entity} does not exist"
        token, reason = self._check_token(headers.get("authorization", ""), namespace, entity, keys)
        if token is None:
            return 401, reason
        if len(body) > MAX_MESSAGE_BYTES:
            return 413, "the message is larger than 256 KB"
        if "content-type" not in headers:
            return 400, "Content-Type is required"
        broker, reason = _broker_properties(headers.get("brokerproperties"))
        if broker is None:
            return 400, reason
        custom = {k: v for k, v in headers.items() if k not in _TRANSPORT_HEADERS}
        message = Delivered(
            namespace, entity, body, headers["content-type"], broker, custom, token, headers
        )
        with self.lock:
            self.delivered.append(message)
        return 201, "Created"

    def _check_token(
        self, authorization: str, namespace: str, entity: str, keys: dict[str, str]
    ) -> tuple[dict[str, str] | None, str]:
        scheme, _, rest = authorization.partition(" ")
        if scheme != "SharedAccessSignature":
            return None, "not a SharedAccessSignature"
        token = dict(parse_qsl(rest, keep_blank_values=True, strict_parsing=True))
        if set(token) != {"sr", "sig", "se", "skn"}:
            return None, f"the token's members are {sorted(token)}"
        key = keys.get(token["skn"])
        if key is None:
            return None, f"no key named {token['skn']!r}"
        resource = f"{self.base_url}/{namespace}/{entity}"
        if not resource.lower().startswith(token["sr"].lower()):
            return None, f"the token is for {token['sr']!r}, not {resource!r}"
        if not token["se"].isdigit() or int(token["se"]) < time.time():
            return None, "the token has expired"
        signed = f"{quote_plus(token['sr'])}\n{token['se']}".encode()
        expected = base64.b64encode(hmac.new(key.encode(), signed, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, token["sig"].encode()):
            return None, "the signature does not match"
        return token, ""


def _broker_properties(header: str | None) -> tuple[dict[str, Any] | None, str]:
    if header is None:
        return {}, ""
    try:
        value = json.loads(header)
    except ValueError:
        return None, "BrokerProperties is not JSON"
    if not isinstance(value, dict):
        return None, "BrokerProperties is not a JSON object"
    if unknown := set(value) - BROKER_PROPERTY_NAMES:
        return None, f"BrokerProperties has unknown members {sorted(unknown)}"
    return value, ""


def start_service_bus(folder: Path) -> LocalServiceBus:
    """A local Service Bus on a free port, its CA's certificate written into ``folder``."""
    ca_file, chain, key = _certificates(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    bus: LocalServiceBus

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            if bus.held is not None:
                bus.held.wait(timeout=60)
            with bus.lock:
                scripted = bus.scripted.pop(0) if bus.scripted else None
            status, reason = (
                (scripted, "scripted") if scripted else bus.judge(self.path, headers, body)
            )
            if status != 201:
                with bus.lock:
                    bus.refused.append((status, reason))
            self._answer(status, reason.encode())

        def _other(self) -> None:
            self._answer(405, b"only POST is served")

        do_GET = do_PUT = do_DELETE = do_PATCH = _other

        def _answer(self, status: int, text: bytes) -> None:
            self.send_response(status)
            self.close_connection = True
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(text)))
            try:
                self.end_headers()
                self.wfile.write(text)
            except (ConnectionError, ssl.SSLError):
                pass  # the client gave up (a timeout test): nobody to answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    bus = LocalServiceBus(server, ca_file)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return bus


def _certificates(folder: Path) -> tuple[str, str, str]:
    """(CA file, server certificate, server key) for 127.0.0.1, valid for a day."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Takt test Service Bus CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        "ca.pem": ca.public_bytes(Encoding.PEM),
        "server.pem": server.public_bytes(Encoding.PEM),
        "server.key": key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "server.key")
