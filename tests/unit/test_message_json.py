"""Takt's JSON decoding of broker messages against kombu's own: the same value for every
text, on thousands of random messages (kombu's revived types, keys spelled with escapes,
texts that are not JSON), and the serializer registry serving it once installed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import serialization
from kombu.utils import json as kombu_json

from scheduler.dispatch.transport import install, loads

PROPERTY = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_KEYS = st.one_of(
    st.sampled_from(["__type__", "__value__", "task", "id", "headers", "é", "\u2603"]),
    st.text(max_size=12),
)
_REVIVED = st.one_of(
    st.datetimes(timezones=st.sampled_from([None, UTC])),
    st.dates(),
    st.times(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.uuids(),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    _REVIVED,
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_KEYS, inner, max_size=5)),
    max_leaves=30,
)


def _same(text: str) -> None:
    try:
        expected: Any = kombu_json.loads(text)
    except Exception as exc:  # kombu refuses it: so must Takt, the same way
        with pytest.raises(type(exc)):
            loads(text)
        return
    for given_as in (text, text.encode(), bytearray(text.encode()), memoryview(text.encode())):
        assert _canonical(loads(given_as)) == _canonical(expected)


def _canonical(value: Any) -> str:
    """The value written back by kombu, keys sorted: equal for equal values, NaN included,
    and a revived value differs from its text."""
    return kombu_json.dumps(value, sort_keys=True)


@PROPERTY
@given(_VALUES, st.booleans())
def test_kombu_s_messages_decode_as_kombu_decodes_them(value: Any, ascii_only: bool) -> None:
    # kombu's encoder writes its types as {"__type__": ..., "__value__": ...}
    _same(kombu_json.dumps(value, ensure_ascii=ascii_only))


@PROPERTY
@given(_VALUES)
def test_keys_spelled_with_escapes_decode_as_kombu_decodes_them(value: Any) -> None:
    # "__type__" written as "\u005f_type__": the text does not show the key
    text = kombu_json.dumps(value).replace('"__', '"\\u005f_').replace("__value", "\\u005f_value")
    _same(text)


@PROPERTY
@given(st.text(max_size=80))
def test_any_text_decodes_or_fails_as_kombu_s_does(text: str) -> None:
    _same(text)


def test_a_revived_value_is_revived() -> None:
    moment = datetime(2026, 12, 1, 3, 4, 5, tzinfo=UTC)
    ident = uuid.uuid4()
    text = kombu_json.dumps(
        {"eta": moment, "day": date(2026, 12, 1), "at": time(3, 4), "n": Decimal("1.5"), "u": ident}
    )
    assert "__type__" in text
    assert loads(text) == {
        "eta": moment,
        "day": date(2026, 12, 1),
        "at": time(3, 4),
        "n": Decimal("1.5"),
        "u": ident,
    }
    escaped = '{"\\u005f_type__": "decimal", "__value__": "2"}'
    assert loads(escaped) == Decimal("2") == kombu_json.loads(escaped)
    assert loads('{"__type__": "decimal"}') == json.loads('{"__type__": "decimal"}')


def test_installed_it_decodes_every_json_message_body() -> None:
    install()
    message = [["jid", 1], {"attempt": 0}, {}]
    body = kombu_json.dumps(message)
    assert serialization.loads(body, "application/json", "utf-8") == message
    assert serialization.registry._decoders["application/json"] is loads
    content_type, encoding, encoded = serialization.dumps({"a": 1}, serializer="json")
    assert (content_type, encoding) == ("application/json", "utf-8")
    assert json.loads(encoded) == {"a": 1}
