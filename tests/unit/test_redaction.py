"""URLs cut down before they reach a log line or a message (scheduler.domain.redaction)."""

from __future__ import annotations

import random
import string

import pytest

from scheduler.domain.redaction import redact_urls


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "GET https://u:pw@example.test:8443/a/b?sig=s3cret",
            "GET https://example.test:8443/a/b?…",
        ),
        (
            "the store at redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26380/takt/0"
            "?sentinel_password=pw does not answer",
            "the store at redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/takt/0?… does not answer",
        ),
        ("redis+sentinel://[::1]:1,[::2]/svc", "redis+sentinel://[::1]:1,[::2]/svc"),
        ("redis+sentinel://user:pw@h1/svc", "redis+sentinel://h1/svc"),
        # (a host list it cannot read is cut to the scheme)
        ("redis+sentinel://:pw@h1:port,h2/svc", "redis+sentinel://…"),
    ],
)
def test_urls_keep_scheme_hosts_and_path_only(text: str, shown: str) -> None:
    assert redact_urls(text) == shown


def test_no_password_survives_in_random_sentinel_and_server_urls() -> None:
    # Given 2,000 random URLs of both forms, each with a password of letters, digits and
    # URL-safe punctuation (but the quote: in a message a quote ends the URL it follows)
    rng = random.Random(17)
    alphabet = string.ascii_letters + string.digits + "-._~!$&()*+;="
    for _ in range(2_000):
        password = "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 24)))
        hosts = ",".join(
            f"h{rng.randint(0, 9)}.example:{rng.randint(1, 65535)}"
            for _ in range(rng.randint(1, 4))
        )
        scheme = rng.choice(["redis+sentinel", "redis", "rediss", "https"])
        query = rng.choice(["", f"?sentinel_password={password}", f"?sig={password}"])
        url = f"{scheme}://user:{password}@{hosts}/svc/0{query}"
        # Then what is shown holds neither the password nor the user
        shown = redact_urls(f"connecting to {url} failed")
        assert password not in shown, (url, shown)
        assert "user" not in shown, (url, shown)
