"""Business-time arithmetic over a contract's calendar: deadlines and elapsed business time.

Role: answer "when are N business hours after this instant over?" (``add``) and "how much
business time lies between these two instants?" (``between``) in the contract's timezone,
weekly hours, public holidays and the contract's own days. Pure: instants are arguments (never
``datetime.now()``), no I/O; the ``holidays`` tables and timezone scans are memoised. It must
not know about tickets, priorities or NATS: ``deadlines.py`` picks the target and the calendar.

Conventions:

- Working time is a union of half-open intervals [start, end) of local wall time: with
  ``09:00-18:00`` 09:00 is working and 18:00 is not (``is_working`` is False there).
- ``add(start, d)`` is the earliest instant by which ``d`` of business time has elapsed, so a
  deadline is inside working time or exactly at the end of an interval (Friday 18:00, not
  Monday 09:00). A start outside working time starts the clock at ``next_working(start)``;
  a zero duration returns that moment. Hence ``add(add(s, a), b) == add(s, a + b)`` for every
  start when ``b > 0`` or ``a == 0``; when ``b == 0`` and ``add(s, a)`` is an interval's end,
  the left side is the next interval's start instead.
- DST: a wall time that occurs twice (autumn) means its first occurrence; one that does not
  exist (spring) means the moment the clocks jump. An interval spanning the autumn switch is
  an hour longer in real time, one spanning the spring switch an hour shorter.
- Which hours a date has, first rule that applies: ``extra_days_off`` (none);
  ``extra_working_days`` (its weekday's hours, or those of ``extra_day_like`` -- Monday by
  default -- when its weekday has none); a public holiday (none); a transferred working day of
  the public calendar (as for ``extra_working_days``); otherwise the weekly hours.
- Public calendars come from the ``holidays`` package (``RU``, or ``US-NY`` for a
  subdivision). For ``RU`` it lists the non-working
  holidays (1-8 January with Christmas, 23 February, 8 March, 1 and 9 May, 12 June, 4 November),
  the days off moved by government decree ("Day off (substituted from ...)", e.g. 9 January and
  31 December 2026), holidays falling on a weekend observed on Monday (9 March, 11 May 2026)
  and, as ``weekend_workdays``, the Saturdays made working days by the same
  decrees (1 November 2025, 20 February 2027), which are used here. Not modelled: the
  one-hour-shorter day before a holiday, and decrees later than the installed package
  (add such days to the contract's ``extra_days_off`` / ``extra_working_days``).
- Round the clock (a contract's ``round_the_clock`` priorities): ``ROUND_THE_CLOCK`` is the
  24x7 UTC calendar, and ``deadline(..., round_the_clock=True)`` uses it, i.e. plain elapsed
  time whatever the contract's hours and holidays.
- Speed: it steps by working intervals, counts an ordinary day (no holiday, transfer or
  clock change) by its weekly length, and skips whole ordinary weeks by the weekly total.
"""

import bisect
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Self
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from opora_shared.contracts import WEEKDAYS, Calendar, Weekday

Span = tuple[int, int]
"""Minutes since local midnight, [start, end); end may be 1440 (24:00)."""

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_ZERO = timedelta(0)
_MINUTES_PER_DAY = 24 * 60
# Longer than any run of days off a real calendar has; past it the calendar has no working time.
_GIVE_UP = timedelta(days=3 * 366)


def _parse_span(text: str) -> Span:
    begin, _, end = text.partition("-")
    minutes = []
    for part in (begin, end):
        hours, _, mins = part.partition(":")
        minutes.append(int(hours) * 60 + int(mins))
    if not 0 <= minutes[0] < minutes[1] <= _MINUTES_PER_DAY:
        msg = f"hours {text!r}: times run from 00:00 to 24:00, start before end"
        raise ValueError(msg)
    return minutes[0], minutes[1]


def _merge(spans: Iterable[Span]) -> tuple[Span, ...]:
    merged: list[Span] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return tuple(merged)


def _dates(field: str, values: Iterable[str]) -> frozenset[date]:
    days = set()
    for value in values:
        try:
            days.add(date.fromisoformat(value))
        except ValueError:
            msg = f"calendar.{field}: {value!r} is not an ISO date like '2026-01-09'"
            raise ValueError(msg) from None
    return frozenset(days)


def _aware_utc(instant: datetime, name: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        msg = f"{name} must be timezone-aware, got naive {instant.isoformat()}"
        raise ValueError(msg)
    return instant.astimezone(UTC)


def _holiday_table(code: str, years: tuple[int, ...]) -> holidays_lib.HolidayBase:
    country, _, subdiv = code.partition("-")
    try:
        return holidays_lib.country_holidays(country, subdiv=subdiv or None, years=years)
    except NotImplementedError as exc:
        msg = f"calendar.holidays: {code!r} is not a known country code like 'RU' ({exc})"
        raise ValueError(msg) from None


@lru_cache(maxsize=512)
def _public_days(code: str, year: int) -> tuple[frozenset[date], frozenset[date]]:
    """Days off and transferred working days of a public calendar within one year."""
    # Neighbouring years too: a decree of one year can move a day into the next.
    table = _holiday_table(code, (year - 1, year, year + 1))
    days_off = frozenset(day for day in table if day.year == year)
    working = frozenset(day for day in getattr(table, "weekend_workdays", ()) if day.year == year)
    return days_off, working


@lru_cache(maxsize=512)
def _offset_change_days(zone: str, year: int) -> frozenset[date]:
    """Local dates of one year during which the zone's UTC offset changes."""
    tz = ZoneInfo(zone)
    changes = set()
    day = date(year, 1, 1)
    offset = datetime.combine(day, time(), tzinfo=tz).utcoffset()
    while day.year == year:
        following = datetime.combine(day + _DAY, time(), tzinfo=tz).utcoffset()
        if following != offset:
            changes.add(day)
        day, offset = day + _DAY, following
    return frozenset(changes)


class BusinessCalendar:
    """A contract's business time: weekly hours in a timezone, minus days off, plus working days.

    Build it with ``from_contract``. Memoises per-year tables of unusual days; otherwise
    immutable.
    """

    __slots__ = (
        "_always",
        "_day_length",
        "_days_off",
        "_extra_hours",
        "_holidays",
        "_special",
        "_tz",
        "_week",
        "_weekly",
        "_working_days",
        "_zone",
    )

    def __init__(
        self,
        *,
        timezone: str,
        week: tuple[tuple[Span, ...], ...],
        holidays: str | None = None,
        days_off: frozenset[date] = frozenset(),
        working_days: frozenset[date] = frozenset(),
        extra_day_like: int = 0,
    ) -> None:
        if len(week) != len(WEEKDAYS):
            msg = "week needs the hours of seven days, Monday first"
            raise ValueError(msg)
        if both := days_off & working_days:
            msg = f"calendar: {sorted(both)[0]} is both an extra day off and an extra working day"
            raise ValueError(msg)
        self._zone = timezone
        self._tz = ZoneInfo(timezone)
        self._week = tuple(_merge(spans) for spans in week)
        if not any(self._week):
            msg = "calendar.hours: a calendar needs at least one working interval a week"
            raise ValueError(msg)
        self._day_length = tuple(
            timedelta(minutes=sum(end - begin for begin, end in spans)) for spans in self._week
        )
        self._weekly = sum(self._day_length, _ZERO)
        if holidays is not None:
            _holiday_table(holidays, ())  # fail now on an unknown code, not at the first ticket
        self._holidays = holidays
        self._days_off = days_off
        self._working_days = working_days
        # An extra working day on a weekday without hours: the hours of `extra_day_like`, or of
        # the first weekday after it that has hours.
        self._extra_hours = next(
            spans
            for shift in range(len(WEEKDAYS))
            if (spans := self._week[(extra_day_like + shift) % len(WEEKDAYS)])
        )
        full_day = ((0, _MINUTES_PER_DAY),)
        self._always = holidays is None and not days_off and all(s == full_day for s in self._week)
        self._special: dict[int, tuple[tuple[date, ...], frozenset[date]]] = {}

    @classmethod
    def from_contract(cls, calendar: Calendar, *, extra_day_like: Weekday = "mon") -> Self:
        """The business calendar of a contract's ``calendar`` section."""
        week = tuple(
            tuple(_parse_span(text) for text in calendar.hours.get(day, ())) for day in WEEKDAYS
        )
        return cls(
            timezone=calendar.timezone,
            week=week,
            holidays=calendar.holidays,
            days_off=_dates("extra_days_off", calendar.extra_days_off),
            working_days=_dates("extra_working_days", calendar.extra_working_days),
            extra_day_like=WEEKDAYS.index(extra_day_like),
        )

    @property
    def timezone(self) -> ZoneInfo:
        """The timezone the weekly hours are written in."""
        return self._tz

    @property
    def weekly(self) -> timedelta:
        """Business time in an ordinary week (no holiday, transfer or clock change)."""
        return self._weekly

    def hours_on(self, day: date) -> tuple[Span, ...]:
        """The working intervals of a local date, in minutes since midnight (rules above)."""
        weekly = self._week[day.weekday()]
        if day in self._days_off:
            return ()
        if day in self._working_days:
            return weekly or self._extra_hours
        if self._holidays is not None:
            days_off, working = _public_days(self._holidays, day.year)
            if day in days_off:
                return ()
            if day in working:
                return weekly or self._extra_hours
        return weekly

    def is_working(self, instant: datetime) -> bool:
        """True when the instant is business time (an interval's end is not)."""
        instant = _aware_utc(instant, "instant")
        if self._always:
            return True
        day = self._local_date(instant)
        return any(
            begin <= instant < end for d in (day - _DAY, day) for begin, end in self._intervals(d)
        )

    def next_working(self, instant: datetime) -> datetime:
        """The instant itself when it is business time, else the next interval's start (UTC)."""
        return self.add(instant, _ZERO)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The deadline: the earliest instant (UTC) after ``duration`` of business time."""
        start = _aware_utc(start, "start")
        if duration < _ZERO:
            msg = f"duration must not be negative, got {duration}"
            raise ValueError(msg)
        if self._always:
            return start + duration
        remaining = duration
        day = self._local_date(start) - _DAY
        whole_days_from = day + 2 * _DAY  # these days begin after start
        cursor = start
        last_working = day
        while True:
            if day - last_working > _GIVE_UP:
                msg = f"no business time in the calendar for {_GIVE_UP.days} days after {day}"
                raise ValueError(msg)
            if day >= whole_days_from and self._is_ordinary(day):
                if remaining > self._weekly and self._ordinary_week(day):
                    remaining -= self._weekly
                    day += _WEEK
                    last_working = day
                    continue
                length = self._day_length[day.weekday()]
                if remaining > length:
                    remaining -= length
                    last_working = day if length else last_working
                    day += _DAY
                    continue
            for begin, end in self._intervals(day):
                begin = max(begin, cursor)
                if end <= begin:
                    continue
                if remaining <= end - begin:
                    return begin + remaining
                remaining -= end - begin
                cursor = end
                last_working = day
            day += _DAY

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The business time in [start, end); zero when end is not after start."""
        start = _aware_utc(start, "start")
        end = _aware_utc(end, "end")
        if end <= start:
            return _ZERO
        if self._always:
            return end - start
        total = _ZERO
        day = self._local_date(start) - _DAY
        whole_days_from = day + 2 * _DAY
        last = self._local_date(end)
        cursor = start
        while day <= last:
            if whole_days_from <= day < last and self._is_ordinary(day):
                if day + _WEEK <= last and self._ordinary_week(day):
                    total += self._weekly
                    day += _WEEK
                    continue
                total += self._day_length[day.weekday()]
                day += _DAY
                continue
            for begin, finish in self._intervals(day):
                begin, finish = max(begin, cursor), min(finish, end)
                if finish > begin:
                    total += finish - begin
                    cursor = finish
            day += _DAY
        return total

    def deadline(self, start: datetime, duration: timedelta, *, round_the_clock: bool) -> datetime:
        """``add`` in this calendar, or in ``ROUND_THE_CLOCK`` for round-the-clock targets."""
        calendar = ROUND_THE_CLOCK if round_the_clock else self
        return calendar.add(start, duration)

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self._tz).date()

    def _instant(self, day: date, minute: int) -> datetime:
        """A local wall time as a UTC instant (first occurrence; a skipped time: the jump)."""
        naive = datetime.combine(day, time()) + timedelta(minutes=minute)
        local = naive.replace(tzinfo=self._tz)
        instant = local.astimezone(UTC)
        if instant.astimezone(self._tz).replace(tzinfo=None) == naive:
            return instant
        # The clocks jumped over this wall time: fold=1 reads it with the offset after the jump
        # (an instant before it), fold=0 with the one before (an instant after it). Bisect.
        before = int(local.replace(fold=1).astimezone(UTC).timestamp())
        after = int(instant.timestamp())
        new_offset = instant.astimezone(self._tz).utcoffset()
        while after - before > 1:
            middle = (before + after) // 2
            if datetime.fromtimestamp(middle, self._tz).utcoffset() == new_offset:
                after = middle
            else:
                before = middle
        return datetime.fromtimestamp(after, UTC)

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of a local date as UTC instants, empty ones dropped."""
        intervals = []
        for begin, end in self.hours_on(day):
            first, last = self._instant(day, begin), self._instant(day, end)
            if last > first:
                intervals.append((first, last))
        return intervals

    def _special_days(self, year: int) -> tuple[tuple[date, ...], frozenset[date]]:
        """Dates of a year whose business time differs from the weekly pattern's, sorted."""
        cached = self._special.get(year)
        if cached is not None:
            return cached
        candidates = {day for day in self._days_off | self._working_days if day.year == year}
        if self._holidays is not None:
            days_off, working = _public_days(self._holidays, year)
            candidates |= days_off | working
        special = {day for day in candidates if self.hours_on(day) != self._week[day.weekday()]}
        special |= {day for day in _offset_change_days(self._zone, year) if self.hours_on(day)}
        result = tuple(sorted(special)), frozenset(special)
        self._special[year] = result
        return result

    def _is_ordinary(self, day: date) -> bool:
        return day not in self._special_days(day.year)[1]

    def _ordinary_week(self, first: date) -> bool:
        """True when no day of the seven from ``first`` is special."""
        last = first + _WEEK - _DAY
        for year in {first.year, last.year}:
            ordered = self._special_days(year)[0]
            index = bisect.bisect_left(ordered, first)
            if index < len(ordered) and ordered[index] <= last:
                return False
        return True


ROUND_THE_CLOCK = BusinessCalendar(timezone="UTC", week=(((0, _MINUTES_PER_DAY),),) * 7)
"""Every instant is business time: deadlines are plain elapsed time."""
