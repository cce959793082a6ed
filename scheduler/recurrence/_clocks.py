"""Clocks: how candidate wall times of a :class:`~scheduler.recurrence._calendar.Calendar`
become instants.

Private to :mod:`scheduler.recurrence.engine`. Instants are ``int`` seconds on the same scale
as wall times (UTC read as a wall clock), so ``instant = wall - utc_offset``.

Three clocks carry the DST policy (see ``docs/recurrence.md``):

* :class:`FixedClock` — one UTC offset; no gaps, no folds.
* :class:`ZoneClock` — wall-clock rules in an IANA zone. A wall time in a gap is shifted
  forward by the gap (PEP 495 ``fold=0`` reads it with the offset from before the
  change); an ambiguous one fires at its first instance (``fold=0`` again). The
  occurrences are the *set* of these instants, so the same instant never fires twice.
* :class:`ElapsedZoneClock` — Vixie cron's wildcard-hour jobs: every real instant whose
  wall reading matches fires, so a repeated hour matches again and a skipped one not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from math import gcd
from zoneinfo import ZoneInfo

from scheduler.clock import END_OF_TIME
from scheduler.recurrence._calendar import DAY_S, Calendar

__all__ = [
    "EPOCH_S",
    "LAST_INSTANT_S",
    "ElapsedZoneClock",
    "FixedClock",
    "ZoneClock",
    "ZoneShifts",
    "from_seconds",
    "offset_at",
    "to_seconds",
    "zone_shifts",
]

_UTC_ORIGIN = datetime(1, 1, 1, tzinfo=UTC)
_NAIVE_ORIGIN = datetime(1, 1, 1)
_ORIGIN_S = DAY_S  # 0001-01-01T00:00 is ordinal 1
#: The Unix epoch in the seconds :func:`to_seconds` counts.
EPOCH_S = datetime(1970, 1, 1).toordinal() * DAY_S
_LOOKBACK_S = 2 * DAY_S  # longer than any gap in tzdata (Samoa skipped one day in 2011)
#: The last instant a rule produces (:data:`scheduler.clock.END_OF_TIME`), on this scale.
LAST_INSTANT_S = END_OF_TIME.toordinal() * DAY_S


def to_seconds(moment: datetime) -> tuple[int, int]:
    """An aware datetime as (whole UTC seconds on the wall scale, microseconds)."""
    delta = moment - _UTC_ORIGIN
    return delta.days * DAY_S + delta.seconds + _ORIGIN_S, delta.microseconds


def from_seconds(instant: int, microsecond: int, tz: timezone | ZoneInfo) -> datetime:
    """The aware datetime of ``instant`` (plus ``microsecond``) shown in ``tz``.

    The result carries the fixed offset ``tz`` has at that instant, not ``tz`` itself:
    PEP 495 makes a ZoneInfo datetime inside a fold compare unequal to *every* datetime
    of another tzinfo, which would break the beat's comparisons and dict keys.
    """
    if isinstance(tz, timezone):
        offset = _offset_s(tz.utcoffset(None))
        fixed = tz
    else:
        offset = offset_at(tz, instant)
        fixed = _fixed(offset)
    wall = _NAIVE_ORIGIN + timedelta(seconds=instant + offset - _ORIGIN_S, microseconds=microsecond)
    return wall.replace(tzinfo=fixed)


def offset_at(zone: ZoneInfo, instant: int) -> int:
    """The UTC offset of ``zone`` at ``instant``, memoised per zone and UTC day.

    A day whose start and end have the same offset is taken to have no change inside
    (tzdata has no zone that changes twice within a day); the others are looked up.
    """
    day = instant // DAY_S
    key = (zone.key, day)
    steady = _STEADY.get(key, _UNKNOWN)
    if steady is _UNKNOWN:
        if len(_STEADY) > 65_536:
            _STEADY.clear()
        first, last = _exact_offset(zone, day * DAY_S), _exact_offset(zone, (day + 1) * DAY_S)
        steady = _STEADY[key] = first if first == last else None
    if steady is None:
        return _exact_offset(zone, instant)
    assert isinstance(steady, int)
    return steady


_UNKNOWN = object()
_STEADY: dict[tuple[str, int], object] = {}


def _exact_offset(zone: ZoneInfo, instant: int) -> int:
    # Past the last instant, the zone keeps the offset it has there: datetime ends soon
    # after, and a zone's rules so far ahead are a guess anyway.
    instant = min(instant, LAST_INSTANT_S)
    try:
        moment = datetime.fromtimestamp(instant - EPOCH_S, zone)
    except (OverflowError, OSError, ValueError):  # outside the platform's time_t
        moment = _naive(instant).replace(tzinfo=UTC).astimezone(zone)
    return _offset_s(moment.utcoffset())


@lru_cache(maxsize=256)
def _fixed(offset: int) -> timezone:
    return UTC if offset == 0 else timezone(timedelta(seconds=offset))


def _naive(wall: int) -> datetime:
    return _NAIVE_ORIGIN + timedelta(seconds=wall - _ORIGIN_S)


def _offset_s(offset: timedelta | None) -> int:
    assert offset is not None  # ZoneInfo always knows its offset
    return offset.days * DAY_S + offset.seconds


@dataclass(frozen=True)
class FixedClock:
    """A clock with one UTC offset."""

    offset: int

    def first_at_or_after(self, calendar: Calendar, instant: int) -> int | None:
        """The first instant at or after ``instant`` whose wall time is a candidate."""
        wall = calendar.next_at_or_after(instant + self.offset)
        return None if wall is None else wall - self.offset


@dataclass(frozen=True)
class ZoneClock:
    """Wall-clock rules in an IANA zone: gaps shift forward, folds fire once."""

    zone: ZoneInfo

    def offset_at(self, instant: int) -> int:
        """The zone's UTC offset at ``instant``."""
        return offset_at(self.zone, instant)

    def instant_of(self, wall: int) -> int:
        """The instant of ``wall``: gaps read with the earlier offset, folds as the first."""
        # A naive datetime has fold=0, which PEP 495 reads exactly that way.
        return wall - _offset_s(self.zone.utcoffset(_naive(wall)))

    def first_at_or_after(self, calendar: Calendar, instant: int) -> int | None:
        """The smallest occurrence instant at or after ``instant``.

        Wall time maps to instants monotonically except at the end of a gap, where it
        drops back by the gap's length. So scan candidates from the earliest wall time
        that can map to ``instant`` and stop once no later candidate can map below the
        best found: a candidate ``w`` maps no lower than ``w - max_offset``.
        """
        now, before = self.offset_at(instant), self.offset_at(instant - _LOOKBACK_S)
        wall, max_offset = instant + min(now, before), max(now, before)
        best: int | None = None
        while best is None or wall - max_offset < best:
            found = calendar.next_at_or_after(wall)
            if found is None:
                break
            moment = self.instant_of(found)
            if moment >= instant and (best is None or moment < best):
                best = moment
            max_offset = max(max_offset, self.offset_at(moment))
            wall = found + 1
        return best


@dataclass(frozen=True)
class ElapsedZoneClock:
    """Vixie cron's wildcard-hour jobs: real instants whose wall reading matches."""

    zone: ZoneInfo

    def first_at_or_after(self, calendar: Calendar, instant: int) -> int | None:
        """The first instant at or after ``instant`` whose wall reading is a candidate."""
        clock = ZoneClock(self.zone)  # for its offsets
        for _ in range(1_000):  # one round per offset change crossed; a few in practice
            offset = clock.offset_at(instant)
            wall = calendar.next_at_or_after(instant + offset)
            if wall is None:
                return None
            candidate = wall - offset
            change = _first_change(clock, instant, candidate, offset)
            if change is None:
                return candidate
            instant = change  # the offset changed first: read the wall clock anew there
        return None


def _first_change(clock: ZoneClock, start: int, end: int, offset: int) -> int | None:
    """The first instant in ``(start, end]`` whose offset is not ``offset``.

    Probes a day at a time (zones do not change twice within a day), then bisects.
    """
    low = start
    while low < end:
        high = min(low + DAY_S, end)
        if clock.offset_at(high) != offset:
            while high - low > 1:
                middle = (low + high) // 2
                if clock.offset_at(middle) == offset:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None


@dataclass(frozen=True)
class ZoneShifts:
    """How a zone's offset changes (1970-2100): what bounds the gaps it can cause.

    Attributes:
        largest_forward: the largest jump forward in seconds (0 if none).
        step: the gcd of all jumps (0 if none); every instant of a rule lies on a
            lattice whose step divides the gcd of this and the rule's own step.
    """

    largest_forward: int
    step: int


@lru_cache(maxsize=64)
def zone_shifts(key: str) -> ZoneShifts:
    """The :class:`ZoneShifts` of an IANA zone, found by probing it once a day (~50 ms)."""
    zone = ZoneInfo(key)
    start = datetime(1970, 1, 1).toordinal() * DAY_S
    end = datetime(2100, 1, 1).toordinal() * DAY_S
    largest, step = 0, 0
    previous = _exact_offset(zone, start)
    for instant in range(start + DAY_S, end, DAY_S):
        offset = _exact_offset(zone, instant)
        if offset != previous:
            largest = max(largest, offset - previous)
            step = gcd(step, offset - previous)
            previous = offset
    return ZoneShifts(largest_forward=largest, step=step)
