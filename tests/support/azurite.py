"""Azurite, Microsoft's storage emulator, for tests of the StorageQueue action.

``start_azurite`` runs ``azurite-queue`` (npm package ``azurite``) on a free port with its
data in a temporary directory; ``account_sas`` signs an account SAS with the emulator's
well-known development key, as the Azure "account SAS" specification says; the rest are
the Queue REST calls a test needs (create a queue, read its messages), over plain httpx.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx
import pytest

from tests.support.helpers import ROOT, wait_until

#: The emulator's development account and key, published by Microsoft for every Azurite.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
SAS_VERSION = "2021-12-02"

_LISTENING = re.compile(rb"successfully listens on (http://\S+?:(\d+))")


def azurite_queue_command() -> str:
    """The ``azurite-queue`` executable; skips the test (fails it in CI) when there is none."""
    found = shutil.which("azurite-queue")
    for folder in (ROOT / "node_modules/.bin", ROOT / ".ci/node_modules/.bin"):
        candidate = folder / "azurite-queue"
        if found is None and candidate.is_file():
            found = str(candidate)
    if found is None:
        reason = "azurite is not installed: npm install azurite"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@dataclass
class Azurite:
    """A running ``azurite-queue``; ``endpoint_template`` is what TAKT_STORAGE_QUEUE_ENDPOINT
    would be set to."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def endpoint_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{account}}"

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_azurite(workdir: Path) -> Azurite:
    """Start the queue emulator on a port of its own choosing, data under ``workdir``."""
    command = azurite_queue_command()
    (workdir / "data").mkdir()
    log = workdir / "azurite.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                command,
                *("--queueHost", "127.0.0.1", "--queuePort", "0"),
                *("--location", str(workdir / "data")),
                *("--silent", "--disableTelemetry"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    azurite = Azurite(process, 0, log)
    try:
        azurite.port = wait_until(
            lambda: _listening_port(azurite), timeout=30, message="azurite-queue to listen"
        )
    except BaseException:
        azurite.stop()
        raise
    return azurite


def _listening_port(azurite: Azurite) -> int:
    if azurite.process.poll() is not None:
        raise AssertionError(f"azurite-queue exited: {azurite.log.read_text()}")
    match = _LISTENING.search(azurite.log.read_bytes())
    return int(match.group(2)) if match else 0


def account_sas(
    expiry: datetime,
    *,
    permissions: str = "rwdlacup",
    account: str = ACCOUNT,
    key: str = ACCOUNT_KEY,
) -> str:
    """An account SAS for the queue service, signed with HMAC-SHA256 of the account key.

    The string to sign (version 2020-12-06 and later): account, permissions, services,
    resource types, start, expiry, IP, protocol, version, encryption scope, each followed
    by a newline.
    """
    fields = {
        "sv": SAS_VERSION,
        "ss": "q",
        "srt": "sco",
        "sp": permissions,
        "se": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    start = ip = protocol = encryption_scope = ""
    signed = [fields["sp"], fields["ss"], fields["srt"], start, fields["se"], ip, protocol]
    to_sign = "".join(f"{value}\n" for value in [account, *signed, fields["sv"], encryption_scope])
    digest = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    return urlencode({**fields, "sig": base64.b64encode(digest).decode()})


def create_queue(http: httpx.Client, azurite: Azurite, queue: str, sas: str) -> None:
    response = http.put(f"{azurite.account_url}/{queue}?{sas}", headers=_version())
    assert response.status_code == 201, response.text


def peek_messages(http: httpx.Client, azurite: Azurite, queue: str, sas: str) -> list[str]:
    """The ``MessageText`` of up to 32 messages at the front of the queue, left in place."""
    response = http.get(
        f"{azurite.account_url}/{queue}/messages?peekonly=true&numofmessages=32&{sas}",
        headers=_version(),
    )
    assert response.status_code == 200, response.text
    root = ElementTree.fromstring(response.content)
    return [node.text or "" for node in root.iter("MessageText")]


def _version() -> dict[str, str]:
    return {"x-ms-version": SAS_VERSION}
