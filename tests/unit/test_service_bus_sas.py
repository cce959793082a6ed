"""Takt's Service Bus token against Microsoft's: the same text for the same inputs.

The oracle is ``generate_sas_token`` of Microsoft's ``azure-servicebus`` package (its AMQP
layer signs with it); it is used here only to compare, never to send.
"""

from __future__ import annotations

import random
import string

import pytest
from azure.servicebus._pyamqp.utils import generate_sas_token as microsoft_sas_token

from workers.service_bus import sas_token

#: How many random inputs the differential test compares (fixed seed: the same every run).
CASES = 20_000

_ODD = "%&=+/?#;:@ !\"'<>[]{}|\\^`~\t\n\r\x00\x7fé€✓😀中文ßÅ"


def _text(rng: random.Random, length: int) -> str:
    """Mostly ASCII, with the characters URL encoding gets wrong most often, and beyond BMP."""
    pool = string.ascii_letters + string.digits + "-._~" + _ODD
    return "".join(rng.choice(pool) for _ in range(length))


def _resource(rng: random.Random) -> str:
    scheme = rng.choice(["https://", "http://", "sb://", "amqps://", ""])
    host = rng.choice(["ns.servicebus.windows.net", "127.0.0.1:8443", "NS-é.example", ""])
    path = "/".join(_text(rng, rng.randint(0, 12)) for _ in range(rng.randint(0, 4)))
    return f"{scheme}{host}/{path}"


def test_takt_signs_every_random_input_exactly_as_microsofts_package_does() -> None:
    # Given many random resource URIs, key names, keys and expiries, odd characters included
    rng = random.Random(20260301)
    compared = 0
    for _ in range(CASES):
        resource = _resource(rng)
        key_name = _text(rng, rng.randint(0, 40))
        key = _text(rng, rng.randint(0, 64))
        expiry = rng.choice([1, rng.randint(1, 2**31), rng.randint(2**31, 2**40)])
        # When both make a token
        ours = sas_token(resource, key_name, key, expiry)
        theirs = microsoft_sas_token(resource, key_name, key, expiry)
        # Then they are the same, byte for byte
        assert ours == theirs, (resource, key_name, key, expiry)
        compared += 1
    assert compared == CASES


@pytest.mark.parametrize(
    ("resource", "key_name", "key", "expiry"),
    [
        pytest.param(
            "https://contoso.servicebus.windows.net/orders",
            "RootManageSharedAccessKey",
            "c2VjcmV0LWtleS1vZi10ZXN0LW9ubHk=",
            1_900_000_000,
            id="a-typical-queue",
        ),
        pytest.param(
            "https://contoso.servicebus.windows.net/a b/c&d=e?f#g",
            "send.only-key_1",
            "k",
            1,
            id="reserved-characters-in-the-path",
        ),
        pytest.param("https://x/", "", "key", 2, id="no-key-name-no-skn"),
        pytest.param("https://x/é/😀", "nåme", "ключ", 10**12, id="non-ascii-everywhere"),
    ],
)
def test_known_inputs_give_microsofts_token(
    resource: str, key_name: str, key: str, expiry: int
) -> None:
    # Given one named input; When both sign it; Then the tokens are equal
    assert sas_token(resource, key_name, key, expiry) == microsoft_sas_token(
        resource, key_name, key, expiry
    )


def test_the_token_reads_as_service_bus_documents_it() -> None:
    # Given a queue's URI; When Takt signs it
    token = sas_token("https://contoso.servicebus.windows.net/orders", "Send", "k3y", 1_900_000_000)
    # Then it is "SharedAccessSignature sr=&sig=&se=&skn=", the URI URL-encoded
    assert token.startswith(
        "SharedAccessSignature sr=https%3A%2F%2Fcontoso.servicebus.windows.net%2Forders&sig="
    )
    assert token.endswith("&se=1900000000&skn=Send")
