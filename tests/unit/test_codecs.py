"""The stored strings with parts: each codec writes exactly the format the Lua scripts and
older data hold, and reads back what it wrote."""

from __future__ import annotations

import pytest

from scheduler.domain.models import ActionType
from scheduler.store.codecs import (
    Cadence,
    ClaimValue,
    HistoryId,
    LedgerEntry,
    RetryMember,
    job_of,
    retry_of,
)

_CODED = [
    pytest.param(RetryMember("s/r/c/j", 1_000, 2), "s/r/c/j|m|1000|2", id="retry"),
    pytest.param(RetryMember("s/r/c/j", 1_000, 0, error=True), "s/r/c/j|e|1000|0", id="retry-e"),
    pytest.param(ClaimValue(1_000, "7"), "1000|7", id="claim"),
    pytest.param(ClaimValue(1_000, "7", "Http"), "1000|7|Http", id="claim-advanced"),
    pytest.param(Cadence(5, 60_000_000, None, ActionType.HTTP), "5|60000000||Http", id="cadence"),
    pytest.param(Cadence(5, 3, 11, ActionType.HTTP), "5|3|11|Http", id="cadence-last"),
    pytest.param(Cadence.one_shot(ActionType.HTTP), "0|0||Http", id="cadence-one-shot"),
    pytest.param(HistoryId(1_000, "m0"), "1000-m0", id="history"),
    pytest.param(HistoryId(1_000, "e1", manual=True), "1000-e1-manual", id="history-manual"),
    pytest.param(HistoryId(1_000, "m2", postponed=True), "1000-m2-postponed", id="postponed"),
]


@pytest.mark.parametrize(("value", "text"), _CODED)
def test_a_codec_writes_its_format_and_reads_it_back(
    value: RetryMember | ClaimValue | Cadence | HistoryId, text: str
) -> None:
    assert value.encode() == text
    assert type(value).parse(text) == value


@pytest.mark.parametrize(
    ("entry", "member"),
    [
        (LedgerEntry("s/r/c/j", 1_000), "s/r/c/j|m|1000|0|s"),
        (LedgerEntry("s/r/c/j", 1_000, 3, error=True), "s/r/c/j|e|1000|3|s"),
        (LedgerEntry("s/r/c/j", 1_000, manual=True), "s/r/c/j|m|1000|0|r"),
    ],
    ids=["scheduled", "error-retry", "manual"],
)
def test_a_ledger_member_is_a_retry_member_and_its_origin(entry: LedgerEntry, member: str) -> None:
    assert entry.member == member
    assert LedgerEntry.parse(member) == entry
    assert job_of(member) == "s/r/c/j"


def test_a_due_set_member_is_a_job_or_a_retry() -> None:
    assert retry_of("s/r/c/j") is None
    assert retry_of("s/r/c/j|e|5|1") == RetryMember("s/r/c/j", 5, 1, error=True)
    assert job_of("s/r/c/j") == job_of("s/r/c/j|e|5|1") == "s/r/c/j"


@pytest.mark.parametrize("entry_id", ["1004-0", "x-m0", "1000", "1000-r0"])
def test_a_history_id_of_another_form_is_none(entry_id: str) -> None:
    assert HistoryId.parse(entry_id) is None
