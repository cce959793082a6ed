"""Console sessions and keys, tried as an attacker would: a session outliving its key, form
bodies read before anyone signed in, guessing keys at the sign-in page, and signing a
victim in from another site (login CSRF).

Each test drives a real API (uvicorn, in this process, on a real socket) over a real Valkey.
Client addresses are real too: Linux routes all of 127.0.0.0/8 to loopback, so a client
bound to 127.0.0.2 is, for the server, another address than one bound to 127.0.0.3.
"""

from __future__ import annotations

import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from scheduler.api import create_api
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore
from scheduler.store.principals import ADMIN_PRINCIPAL, Role, ensure_principal_key
from tests.support.arm import API_VERSION, get_job, http_job, new_collection, put_job
from tests.support.helpers import ADMIN_TOKEN, free_port, wait_until
from tests.support.swagger import validating_client

SIGN_IN_FAILURES = 10  # failed sign-ins per address the console allows per window
SIGN_IN_WINDOW_S = 300

ApiFactory = Callable[..., str]
Clients = Callable[..., httpx.Client]


@pytest.fixture
def start_api(settings: TaktSettings, store: JobStore) -> Iterator[ApiFactory]:
    """Start an API on ``store`` (each call another process-like server); yields its URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**changes: object) -> str:
        app = create_api(settings.model_copy(update=changes), store, runner=lambda *_: None)
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        wait_until(lambda: server.started, timeout=10, message="the API to start")
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def api(start_api: ApiFactory) -> str:
    return start_api()


@pytest.fixture
def clients() -> Iterator[Clients]:
    """Browser-less clients (closed after the test): ``clients(url, address)``."""
    made: list[httpx.Client] = []

    def client(url: str, address: str = "127.0.0.1") -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=address)
        made.append(validating_client(base_url=url, transport=transport, timeout=10))
        return made[-1]

    yield client
    for each in made:
        each.close()


def _admin(url: str) -> httpx.Client:
    return validating_client(
        base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
    )


def _add_principal(url: str, name: str, role: str) -> str:
    with _admin(url) as admin:
        answer = admin.post("/principals", json={"name": name, "role": role})
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["key"]
    return key


def _sign_in(client: httpx.Client, key: str) -> str:
    """Sign ``client`` in with ``key``; the session's CSRF token."""
    answer = client.post("/console/signin", data={"key": key})
    assert answer.status_code == 303, answer.text
    match = re.search(r'data-csrf="([^"]+)"', client.get("/").text)
    assert match, "no session after signing in"
    return match.group(1)


def _signed_in_as(client: httpx.Client) -> str | None:
    """Who the console says is signed in (None: the sign-in page)."""
    text = client.get("/").text
    match = re.search(r'<span title="Signed in as">([^<]*)</span>', text)
    return match.group(1) if match else None


# -- a session belongs to the key it signed in with (row 7) ---------------------------------


def test_a_session_ends_with_its_principal_and_a_new_principal_of_that_name_gets_none(
    api: str,
    clients: Clients,
) -> None:
    # given a reader's console session
    name = f"r-{uuid.uuid4().hex[:8]}"
    reader_key = _add_principal(api, name, "reader")
    with _admin(api) as admin:
        collection = new_collection(admin)
        put_job(admin, collection, "j", http_job("http://127.0.0.1:9/", start=None))
    parts = collection.split("/")
    console = f"/console/c/{parts[2]}/{parts[4]}/{parts[8]}"
    browser = clients(api)
    csrf = _sign_in(browser, reader_key)
    assert _signed_in_as(browser) == name

    # when the reader is revoked and an administrator of the same name is made
    with _admin(api) as admin:
        assert admin.delete(f"/principals/{name}").status_code == 200
    _add_principal(api, name, "admin")

    # then the reader's old cookie is worth nothing: no page, no action
    assert _signed_in_as(browser) is None
    disable = browser.post(f"{console}/jobs/j/state", data={"csrf": csrf, "enabled": "0"})
    assert disable.status_code == 303
    assert disable.headers["location"] == "/"
    with _admin(api) as admin:
        assert get_job(admin, collection, "j")["properties"]["state"] == "Enabled"


def test_a_new_key_for_a_principal_ends_the_sessions_of_its_old_key(
    api: str, store: JobStore, clients: Clients
) -> None:
    # given the administrator signed in with the bootstrap key
    browser = clients(api)
    _sign_in(browser, ADMIN_TOKEN)
    assert _signed_in_as(browser) == ADMIN_PRINCIPAL

    # when the bootstrap key changes (TAKT_ADMIN_TOKEN rotated, the API restarted)
    ensure_principal_key(store, ADMIN_PRINCIPAL, Role.ADMIN, "takt_rotated_admin_token")

    # then the old key's session is over, and the new key signs in
    assert _signed_in_as(browser) is None
    _sign_in(browser, "takt_rotated_admin_token")
    assert _signed_in_as(browser) == ADMIN_PRINCIPAL


def test_the_same_key_keeps_its_session_when_the_api_restarts(
    api: str, store: JobStore, clients: Clients
) -> None:
    browser = clients(api)
    _sign_in(browser, ADMIN_TOKEN)

    ensure_principal_key(store, ADMIN_PRINCIPAL, Role.ADMIN, ADMIN_TOKEN)  # what a start does

    assert _signed_in_as(browser) == ADMIN_PRINCIPAL


# -- no body is read before the session is checked (row 2, console) -------------------------


_DECLARED = 500_000  # below any body limit: only the route's own order can refuse early
_SENT = b"key=" + b"a" * 1000


def _first_answer_line(
    url: str, path: str, content_type: str, cookie: str = "", sent: bytes = _SENT
) -> bytes:
    """POST headers that promise ``_DECLARED`` bytes, send ``sent``, read the status line.

    An empty answer means the server was still waiting for the rest of the body after 3 s.
    """
    host, port = urlsplit(url).hostname, urlsplit(url).port
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {_DECLARED}\r\n"
        + (f"Cookie: takt_session={cookie}\r\n" if cookie else "")
        + "\r\n"
    )
    with socket.create_connection((str(host), int(port or 80)), timeout=3) as sock:
        sock.sendall(head.encode() + sent)
        try:
            return sock.recv(4096).split(b"\r\n", 1)[0]
        except TimeoutError:
            return b""


FORM = "application/x-www-form-urlencoded"
_JOB = "/console/c/sub/rg/coll/jobs/j"


@pytest.mark.parametrize(
    ("path", "content_type", "status"),
    [
        ("/console/preview", "application/json", b"401"),
        ("/console/preview", FORM, b"401"),
        (_JOB, FORM, b"303"),
        ("/console/c/sub/rg/coll/new", FORM, b"303"),
        (_JOB + "/state", FORM, b"303"),
        (_JOB + "/delete", FORM, b"303"),
        ("/console/signout", FORM, b"303"),
    ],
    ids=["preview-json", "preview-form", "save", "create", "state", "delete", "signout"],
)
def test_a_post_without_a_session_is_refused_before_its_body_is_read(
    api: str, path: str, content_type: str, status: bytes
) -> None:
    for cookie in ("", "forged-session-id"):
        line = _first_answer_line(api, path, content_type, cookie)

        assert line.startswith(b"HTTP/1.1 " + status), (cookie, line or "no answer within 3 s")


def test_a_sign_in_form_larger_than_a_key_needs_is_refused_unread(api: str) -> None:
    # the sign-in form has no session to check first: it is read only up to a few KB
    line = _first_answer_line(api, "/console/signin", FORM, sent=b"key=" + b"a" * 10_000)

    assert line.startswith(b"HTTP/1.1 413"), line or "no answer within 3 s"


def test_a_preview_with_a_stale_csrf_token_is_refused_before_its_body_is_read(
    api: str, clients: Clients
) -> None:
    browser = clients(api)
    _sign_in(browser, ADMIN_TOKEN)
    sid = browser.cookies["takt_session"]

    line = _first_answer_line(api, "/console/preview", "application/json", sid)

    assert line.startswith(b"HTTP/1.1 403"), line or "no answer within 3 s"


def test_a_signed_in_post_still_reads_its_form(api: str, clients: Clients) -> None:
    browser = clients(api)
    csrf = _sign_in(browser, ADMIN_TOKEN)
    with _admin(api) as admin:
        collection = new_collection(admin)
        put_job(admin, collection, "j", http_job("http://127.0.0.1:9/", start=None))
    parts = collection.split("/")
    console = f"/console/c/{parts[2]}/{parts[4]}/{parts[8]}"

    answer = browser.post(f"{console}/jobs/j/state", data={"csrf": csrf, "enabled": "0"})

    assert answer.status_code == 303, answer.text
    with _admin(api) as admin:
        assert get_job(admin, collection, "j")["properties"]["state"] == "Disabled"
        assert admin.get(f"{collection}/jobs/j", params=API_VERSION).status_code == 200


# -- sign-in is throttled per client address (row 14) ---------------------------------------


def test_repeated_wrong_keys_from_one_address_are_throttled_in_the_store(
    start_api: ApiFactory, store: JobStore, clients: Clients
) -> None:
    # given two API processes on one store, and an attacker at 127.0.0.2
    first, second = start_api(), start_api()
    attacker = clients(first, "127.0.0.2")

    # when the attacker tries 500 keys
    answers = [
        attacker.post("/console/signin", data={"key": f"takt_guess_{n}"}) for n in range(500)
    ]

    # then the first few are judged, the rest refused unjudged with a Retry-After
    statuses = [a.status_code for a in answers]
    assert statuses[:SIGN_IN_FAILURES] == [401] * SIGN_IN_FAILURES
    assert set(statuses[SIGN_IN_FAILURES:]) == {429}
    retry_after = int(answers[-1].headers["Retry-After"])
    assert 0 < retry_after <= SIGN_IN_WINDOW_S
    assert "takt_session" not in attacker.cookies
    # even the right key is refused from that address, and by the other API process too
    assert attacker.post("/console/signin", data={"key": ADMIN_TOKEN}).status_code == 429
    elsewhere = clients(second, "127.0.0.2")
    assert elsewhere.post("/console/signin", data={"key": ADMIN_TOKEN}).status_code == 429
    # the count lives in the store and expires
    counters = list(store.redis.scan_iter(match="{" + store.keys.prefix + "}:signin*"))
    assert len(counters) == 1
    assert 0 < store.redis.ttl(counters[0]) <= SIGN_IN_WINDOW_S
    # and someone at another address signs in as usual
    colleague = clients(first, "127.0.0.3")
    _sign_in(colleague, ADMIN_TOKEN)
    assert _signed_in_as(colleague) == ADMIN_PRINCIPAL


def test_a_few_wrong_keys_do_not_lock_anyone_out(api: str, clients: Clients) -> None:
    user = clients(api, "127.0.0.4")
    for n in range(SIGN_IN_FAILURES - 1):
        assert user.post("/console/signin", data={"key": f"typo{n}"}).status_code == 401

    _sign_in(user, ADMIN_TOKEN)

    assert _signed_in_as(user) == ADMIN_PRINCIPAL


# -- sign-in checks where the form came from (row 14, login CSRF) ---------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://attacker.example"},
        {"Origin": "null"},
        {"Referer": "http://attacker.example/innocent-page"},
        {"Origin": "http://attacker.example", "Referer": "{api}/"},
        {"Origin": "{other_port}"},
        {"Origin": "https://{host}"},
    ],
    ids=["foreign-origin", "opaque-origin", "foreign-referer", "origin-wins", "port", "scheme"],
)
def test_a_sign_in_posted_from_another_site_is_refused(
    api: str, headers: dict[str, str], clients: Clients
) -> None:
    host = urlsplit(api).netloc
    other_port = f"http://127.0.0.1:{urlsplit(api).port + 1}"  # type: ignore[operator]
    sent = {k: v.format(api=api, host=host, other_port=other_port) for k, v in headers.items()}
    browser = clients(api)

    answer = browser.post("/console/signin", data={"key": ADMIN_TOKEN}, headers=sent)

    assert answer.status_code == 403, answer.text
    assert "takt_session" not in browser.cookies
    assert _signed_in_as(browser) is None


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "{api}"}, {"Referer": "{api}/"}, {}],
    ids=["same-origin", "same-origin-referer", "neither-as-curl"],
)
def test_a_sign_in_from_the_console_itself_or_without_origin_works(
    api: str, headers: dict[str, str], clients: Clients
) -> None:
    browser = clients(api)

    answer = browser.post(
        "/console/signin",
        data={"key": ADMIN_TOKEN},
        headers={k: v.format(api=api) for k, v in headers.items()},
    )

    assert answer.status_code == 303, answer.text
    assert _signed_in_as(browser) == ADMIN_PRINCIPAL


def test_with_a_public_url_only_its_origin_signs_in(
    start_api: ApiFactory, clients: Clients
) -> None:
    api = start_api(public_url="https://takt.example.com")
    browser = clients(api)

    direct = browser.post("/console/signin", data={"key": ADMIN_TOKEN}, headers={"Origin": api})
    public = browser.post(
        "/console/signin",
        data={"key": ADMIN_TOKEN},
        headers={"Origin": "https://takt.example.com"},
    )

    assert direct.status_code == 403
    assert public.status_code == 303
