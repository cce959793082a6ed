"""Takt's cron against cronsim, an independent Vixie/Debian-compatible implementation.

Thousands of seeded random five-field expressions (ranges with equal ends, steps on
ranges, on ``*`` and on a single value, lists, month and weekday names, both day fields
restricted, Sunday as 0 and 7, ranges that run backwards) are run from random instants,
and the next occurrences must be the same: nothing skipped (completeness), nothing extra
(soundness).

Where the two differ by design, the test asserts Takt's documented rule instead
(docs/recurrence.md, "Cron"):

* in a zone, a cron whose hour field does not start with ``*`` is wall-clock: a wall
  time in a DST gap moves forward by the gap (cronsim, like Debian cron, runs it when
  the gap ends), and a wildcard *minute* field alone does not make a job follow elapsed
  time (it does in cronsim). For these the reference is cronsim's wall-time matcher
  (naive datetimes) with each wall time read as PEP 495 ``fold=0``; cronsim's own zoned
  answer must still agree whenever no offset change lies in the window;
* cronsim gives up after 50 years without a match; Takt searches 400.

croniter (the engine's former field expander) is not the reference: it widens an equal
range ``a-a`` to the whole field and reads ``7/1`` as ``*`` — the bug of issue 13, item 14.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim, CronSimError

from scheduler.errors import InvalidRecurrence
from scheduler.recurrence import compile_recurrence, iter_occurrences
from scheduler.recurrence._cron import parse_cron

SEED = 20261130
EXPRESSIONS = 3_000
FIRES = 5  # occurrences compared per expression and clock
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham",
         "Asia/Kolkata", "America/Sao_Paulo")  # fmt: skip
FIXED_OFFSETS = (timedelta(hours=5, minutes=30), timedelta(hours=-9, minutes=-30))
GIVE_UP_YEARS = 50  # cronsim's horizon


# -- issue 13, item 14: ranges whose two ends are equal ----------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        pytest.param(
            "51-51 7 10,22 6 fri,sat,wed",
            "2025-06-01T00:00Z",
            ["2025-06-04T07:51Z", "2025-06-06T07:51Z", "2025-06-07T07:51Z", "2025-06-10T07:51Z",
             "2025-06-11T07:51Z", "2025-06-13T07:51Z"],
            id="51-51-is-minute-51-on-day-10-22-or-wed-fri-sat-of-june",
        ),
        pytest.param(
            "*/20 * * * 5-5",
            "2025-06-01T00:00Z",
            ["2025-06-06T00:00Z", "2025-06-06T00:20Z", "2025-06-06T00:40Z", "2025-06-06T01:00Z"],
            id="5-5-is-friday-only",
        ),
        pytest.param(
            "*/17 */2 13 */2 3-3",
            "2025-06-01T00:00Z",
            ["2025-07-02T00:00Z", "2025-07-02T00:17Z", "2025-07-02T00:34Z", "2025-07-02T00:51Z",
             "2025-07-02T02:00Z"],
            id="3-3-is-wednesday-or-the-13th-of-odd-months",
        ),
        pytest.param(
            "4-4/2 * * * *",
            "2025-06-01T00:00Z",
            ["2025-06-01T00:04Z", "2025-06-01T01:04Z", "2025-06-01T02:04Z"],
            id="4-4-step-2-is-minute-4-only",
        ),
        pytest.param(
            "0 12 * * 7/1",
            "2025-06-02T00:00Z",
            ["2025-06-08T12:00Z", "2025-06-15T12:00Z"],
            id="7-step-1-is-sunday-only",
        ),
        pytest.param(
            "0 0 1 jan-jan *",
            "2025-06-01T00:00Z",
            ["2026-01-01T00:00Z", "2027-01-01T00:00Z"],
            id="jan-jan-is-january-only",
        ),
    ],
)  # fmt: skip
def test_equal_range_ends_select_that_one_value(
    expression: str, after: str, expected: list[str]
) -> None:
    # Given a cron rule whose fields hold ranges with equal ends
    start = datetime.fromisoformat(after)

    # When its first occurrences are listed
    got = list(islice(iter_occurrences({"cron": expression}, start), len(expected)))

    # Then each such range selected its single value
    assert [moment.isoformat() for moment in got] == [
        datetime.fromisoformat(e).isoformat() for e in expected
    ]


@pytest.mark.parametrize(
    ("field", "low", "high"), [(0, 0, 59), (1, 0, 23), (2, 1, 31), (3, 1, 12), (4, 0, 7)]
)
def test_every_equal_range_reads_as_its_value(field: int, low: int, high: int) -> None:
    # Given each value of a field written alone, as a-a, as a-a/n and (at the top) as a/n
    for value in range(low, high + 1):
        spellings = [f"{value}-{value}", f"{value}-{value}/{1 + value % 5}"]
        if value == high:
            spellings.append(f"{value}/{1 + value % 7}")
        alone = parse_cron(_with_field(field, str(value)))
        for spelling in spellings:
            # When it is parsed
            parsed = parse_cron(_with_field(field, spelling))

            # Then it selects that value only, as the plain number does
            assert parsed == alone, spelling


def _with_field(index: int, value: str) -> str:
    # both day fields restricted, so no field is left to '*' semantics
    fields = ["0", "0", "1", "1", "1"]
    fields[index] = value
    return " ".join(fields)


@pytest.mark.parametrize("expression", ["0 0 * * sat-sun", "50-10 * * * *", "0 0 * nov-feb *"])
def test_a_range_that_runs_backwards_is_refused_with_its_unwrapped_form(expression: str) -> None:
    with pytest.raises(InvalidRecurrence, match="runs backwards; cron ranges do not wrap"):
        parse_cron(expression)


# -- the differential ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    expression: str
    after: datetime  # aware; the occurrences compared are the first ones after it
    zone: str | None  # an IANA zone, or None for the fixed offset of ``after``

    def __str__(self) -> str:
        return f"{self.expression!r} after {self.after.isoformat()} in {self.zone or 'offset'}"


@pytest.mark.timeout(300)  # about 6 s of CPU; more on a machine busy with other tests
def test_cron_agrees_with_cronsim_on_thousands_of_random_expressions() -> None:
    # Given seeded random expressions, each run on UTC or a fixed offset and in a zone
    rng = random.Random(SEED)
    failures: list[str] = []
    for _ in range(EXPRESSIONS):
        expression = _expression(rng)
        for case in (_fixed_case(rng, expression), _zoned_case(rng, expression)):
            # When both list the next occurrences
            # Then they are the same (or Takt's documented rule explains the difference)
            problem = _disagreement(case)
            if problem is not None:
                failures.append(f"{case}: {problem}")
    assert not failures, f"{len(failures)} disagreements, e.g.:\n" + "\n".join(failures[:15])


def _disagreement(case: Case) -> str | None:
    takt = _takt(case)
    if isinstance(takt, InvalidRecurrence):
        return _refusal_disagreement(case, takt)
    try:
        if case.zone is None:
            return _compare(case, takt, _cronsim(case.expression, case.after))
        expected = _zone_reference(case)
        if not _offset_changes_near(case, expected):
            zoned = _cronsim(case.expression, _cronsim_start(case))
            if _instants(zoned) != _instants(expected):
                return f"cronsim's zoned answer {_iso(zoned)} differs from its wall-time one"
        return _compare(case, takt, expected)
    except CronSimError as exc:
        return f"cronsim refuses ({exc}) but Takt fires {_iso(takt)}"


def _refusal_disagreement(case: Case, refusal: InvalidRecurrence) -> str | None:
    try:
        fires = _cronsim(case.expression, _cronsim_start(case))
    except CronSimError:
        return None  # both refuse
    if "matches no date" in str(refusal) and not fires:
        return None  # both find nothing
    return f"Takt refuses ({refusal}) but cronsim fires {_iso(fires)}"


def _compare(case: Case, takt: list[datetime], expected: list[datetime]) -> str | None:
    got, want = _instants(takt), _instants(expected)
    if len(want) < FIRES and got[: len(want)] == want:
        # cronsim gave up: Takt may fire again only past cronsim's horizon
        last = want[-1] if want else case.after
        beyond = got[len(want) :]
        if not beyond or beyond[0].year - last.year >= GIVE_UP_YEARS - 1:
            return None
    if got == want:
        return None
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    return f"Takt {_iso(got)}, cronsim {_iso(want)}; missing {_iso(missing)}, extra {_iso(extra)}"


# -- Takt's side ---------------------------------------------------------------------------


def _takt(case: Case) -> list[datetime] | InvalidRecurrence:
    recurrence: dict[str, str] = {"cron": case.expression}
    if case.zone is not None:
        recurrence["timeZone"] = case.zone
    try:
        rule = compile_recurrence(recurrence, case.after)
    except InvalidRecurrence as exc:
        return exc
    found: list[datetime] = []
    while len(found) < FIRES:
        following = rule.next_after(found[-1] if found else case.after)
        if following is None:
            break
        found.append(following)
    return found


def _elapsed(case: Case) -> bool:
    """Whether Takt reads the rule in elapsed time (docs/recurrence.md: the hour field)."""
    return case.expression.split()[1].startswith("*")


# -- cronsim's side ------------------------------------------------------------------------


def _cronsim(expression: str, start: datetime) -> list[datetime]:
    """The first occurrences strictly after ``start``, as cronsim lists them."""
    return list(islice(CronSim(_vixie_steps(expression), start), FIRES))


def _vixie_steps(expression: str) -> str:
    """The expression with each ``a-a/n`` written ``a``, as Vixie reads it.

    cronsim reads a stepped range that holds one value as ``a/n`` (from ``a`` to the
    field's end): ``1-1/10`` in the hour field as 1, 11, 21. Vixie's ``get_range`` steps
    through the range as written (``for (i = num1; i <= num2; i += num3)``), and so does
    Takt (docs/recurrence.md, "Cron").
    """
    fields = expression.split()
    for index, text in enumerate(fields):
        fields[index] = ",".join(_one_value(index, term) for term in text.split(","))
    return " ".join(fields)


def _one_value(index: int, term: str) -> str:
    bounds, _, step = term.partition("/")
    low, dash, high = bounds.partition("-")
    if step and dash and _number(index, low) == _number(index, high):
        return low
    return term


def _number(index: int, atom: str) -> int:
    names = {3: _MONTHS, 4: _DAYS}.get(index, ())
    if atom.lower() in names:
        return names.index(atom.lower()) + (1 if index == 3 else 0)
    return int(atom)


def _cronsim_start(case: Case) -> datetime:
    return case.after if case.zone is None else case.after.astimezone(ZoneInfo(case.zone))


def _zone_reference(case: Case) -> list[datetime]:
    """Takt's documented DST rule applied to cronsim's matcher on wall times.

    cronsim lists the matching wall times (naive datetimes: no DST handling). A
    wall-clock rule fires each at its PEP 495 ``fold=0`` instant (a gap's time moves
    forward by the gap, an ambiguous one is its first instance); an elapsed-time rule
    fires at every real instant that reads so (both instances of an ambiguous time,
    none in a gap). The occurrences are the set of these instants.
    """
    assert case.zone is not None
    zone = ZoneInfo(case.zone)
    after = case.after.astimezone(UTC)
    readings = _real_instants if _elapsed(case) else _first_instant
    # a wall time up to a gap's length before ``after`` can fire after it
    lookback = after.astimezone(zone).replace(tzinfo=None) - _LONGER_THAN_A_GAP
    found: set[datetime] = set()
    for wall in CronSim(_vixie_steps(case.expression), lookback):
        found.update(instant for instant in readings(wall, zone) if instant > after)
        if len(found) >= FIRES:
            last = sorted(found)[FIRES - 1].astimezone(zone).replace(tzinfo=None)
            if wall > last + _LONGER_THAN_A_GAP:  # no later wall time can map before it
                break
    return sorted(found)[:FIRES]


def _first_instant(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    return [wall.replace(tzinfo=zone, fold=0).astimezone(UTC)]


def _real_instants(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    instants = {wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    return [i for i in instants if i.astimezone(zone).replace(tzinfo=None) == wall]


_LONGER_THAN_A_GAP = timedelta(hours=3)  # in ZONES


def _offset_changes_near(case: Case, expected: list[datetime]) -> bool:
    assert case.zone is not None
    begin = case.after - timedelta(days=1)
    end = (expected[-1] if expected else case.after) + timedelta(days=1)
    return any(begin <= change <= end for change in _offset_changes(case.zone))


# -- generating cases ----------------------------------------------------------------------

_FIELD_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _expression(rng: random.Random) -> str:
    return " ".join(_field(rng, index) for index in range(5))


def _field(rng: random.Random, index: int) -> str:
    if rng.random() < (0.35 if index < 2 else 0.5):
        return "*" if rng.random() < 0.7 else f"*/{rng.randint(1, _span(index) + 2)}"
    return ",".join(_term(rng, index) for _ in range(rng.choice((1, 1, 1, 2, 3))))


def _term(rng: random.Random, index: int) -> str:
    low, high = _FIELD_BOUNDS[index]
    a = rng.randint(low, high)
    kind = rng.random()
    if kind < 0.3:
        return _name(rng, index, a)
    if kind < 0.35:
        return f"{_name(rng, index, a)}/{rng.randint(1, _span(index))}"  # a up to the end
    b = a if kind < 0.55 else rng.randint(a, high)  # equal ends one time in three
    if kind > 0.97 and a > low:
        a, b = a, rng.randint(low, a - 1)  # runs backwards: both refuse
    term = f"{_name(rng, index, a)}-{_name(rng, index, b)}"
    return f"{term}/{rng.randint(1, _span(index))}" if rng.random() < 0.35 else term


def _name(rng: random.Random, index: int, value: int) -> str:
    """The value, sometimes spelled as a month or day name in any casing."""
    if rng.random() < 0.5:
        return str(value)
    if index == 3:
        name = _MONTHS[value - 1]
    elif index == 4 and value < 7:  # 7 has no name: Sunday's name is 0
        name = _DAYS[value]
    else:
        return str(value)
    return rng.choice((name, name.upper(), name.capitalize()))


def _span(index: int) -> int:
    low, high = _FIELD_BOUNDS[index]
    return high - low + 1


def _fixed_case(rng: random.Random, expression: str) -> Case:
    offset = rng.choice((timedelta(0), timedelta(0), *FIXED_OFFSETS))
    return Case(expression, _random_instant(rng).astimezone(timezone(offset)), None)


def _zoned_case(rng: random.Random, expression: str) -> Case:
    zone = rng.choice(ZONES)
    after = _random_instant(rng)
    changes = _offset_changes(zone)
    if changes and rng.random() < 0.5:  # up to three days before a DST change
        after = rng.choice(changes) - timedelta(seconds=rng.randint(0, 3 * 86_400))
    if rng.random() < 0.5:
        after = after.replace(microsecond=rng.randint(1, 999_999))
    return Case(expression, after, zone)


def _random_instant(rng: random.Random) -> datetime:
    moment = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 40 * 365 * 86_400))
    if rng.random() < 0.3:  # on a whole minute, which may itself fire (and is not "after")
        moment = moment.replace(second=0)
    return moment


@cache
def _offset_changes(zone: str) -> list[datetime]:
    """The UTC days (as midnight) on which ``zone`` changes its offset, 2000-2040."""
    tz = ZoneInfo(zone)
    changes = []
    day = datetime(2000, 1, 1, tzinfo=UTC)
    previous = day.astimezone(tz).utcoffset()
    while day.year < 2041:
        day += timedelta(days=1)
        offset = day.astimezone(tz).utcoffset()
        if offset != previous:
            changes.append(day - timedelta(days=1))
            previous = offset
    return changes


def _instants(moments: list[datetime]) -> list[datetime]:
    return [moment.astimezone(UTC) for moment in moments]


def _iso(moments: list[datetime]) -> list[str]:
    return [moment.isoformat() for moment in moments]
