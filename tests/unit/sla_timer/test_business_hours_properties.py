"""Properties of business-time arithmetic over random calendars, timezones and instants."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opora_shared.business_hours import ROUND_THE_CLOCK, BusinessCalendar
from opora_shared.contracts import WEEKDAYS, Calendar

FIXED_ZONES = ("UTC", "Europe/Moscow", "Asia/Kolkata", "Asia/Kathmandu")
DST_ZONES = (
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Santiago",  # switches at midnight
    "America/Havana",  # switches at midnight
    "America/Sao_Paulo",  # had DST, switching at midnight, until 2019
    "Australia/Lord_Howe",  # half-hour DST
    "Pacific/Chatham",  # +12:45 / +13:45
)
MICRO = timedelta(microseconds=1)
ZERO = timedelta(0)

SETTINGS = settings(max_examples=200, deadline=None)


@lru_cache(maxsize=64)
def offset_changes(zone: str) -> tuple[datetime, ...]:
    """UTC midnights, day by day, at which the zone's offset has just changed (2015-2027)."""
    tz = ZoneInfo(zone)
    found = []
    instant = datetime(2015, 1, 1, tzinfo=UTC)
    offset = instant.astimezone(tz).utcoffset()
    while instant.year < 2028:
        instant += timedelta(days=1)
        current = instant.astimezone(tz).utcoffset()
        if current != offset:
            found.append(instant)
            offset = current
    return tuple(found)


def span_text(begin: int, end: int) -> str:
    return f"{begin // 60:02d}:{begin % 60:02d}-{end // 60:02d}:{end % 60:02d}"


@st.composite
def spans(draw: st.DrawFn) -> str:
    begin = draw(st.integers(0, 95)) * 15
    end = draw(st.integers(begin // 15 + 1, 96)) * 15
    return span_text(begin, end)


# Strategies built once: building them inside each draw dominates the run time.
DAY_HOURS = st.one_of(st.just(()), st.lists(spans(), min_size=1, max_size=3).map(tuple))
DAY_SHIFTS = st.lists(st.integers(-3, 60), max_size=4, unique=True)
PARTS = st.integers(0, 10**6)


@dataclass(frozen=True)
class Case:
    """A random calendar and an instant near the interesting days."""

    calendar: BusinessCalendar
    zone: str
    start: datetime

    def __repr__(self) -> str:
        return f"Case({self.zone}, start={self.start.isoformat()})"


@st.composite
def cases(draw: st.DrawFn, zones: tuple[str, ...] = FIXED_ZONES + DST_ZONES) -> Case:
    zone = draw(st.sampled_from(zones))
    hours = {day: draw(DAY_HOURS) for day in WEEKDAYS}
    assume(any(hours.values()))
    changes = offset_changes(zone)
    if changes and draw(st.booleans()):
        base = draw(st.sampled_from(changes)) + timedelta(days=draw(st.integers(-10, 2)))
    else:
        base = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=draw(st.integers(0, 13 * 365)))
    start = base + timedelta(seconds=draw(st.integers(0, 2 * 86400)))
    days_off = {(base.date() + timedelta(days=n)).isoformat() for n in draw(DAY_SHIFTS)}
    working = {(base.date() + timedelta(days=n)).isoformat() for n in draw(DAY_SHIFTS)}
    calendar = BusinessCalendar.from_contract(
        Calendar(
            timezone=zone,
            hours=hours,
            holidays=draw(st.sampled_from([None, "RU", "US", "DE"])),
            extra_days_off=tuple(sorted(days_off)),
            extra_working_days=tuple(sorted(working - days_off)),
        ),
        extra_day_like=draw(st.sampled_from(WEEKDAYS)),
    )
    return Case(calendar, zone, start)


def draw_duration(data: st.DataObject, case: Case) -> timedelta:
    """From zero to six weeks of this calendar's business time, to the second."""
    weekly = int(case.calendar.weekly.total_seconds())
    return timedelta(seconds=6 * weekly * data.draw(PARTS) // 10**6)


def oracle_between(case: Case, start: datetime, end: datetime) -> timedelta:
    """Business time counted day by day in local wall time (fixed-offset zones only)."""
    tz = ZoneInfo(case.zone)
    first = start.astimezone(tz).replace(tzinfo=None)
    last = end.astimezone(tz).replace(tzinfo=None)
    total = ZERO
    day: date = first.date()
    while day <= last.date():
        midnight = datetime.combine(day, time())
        for begin, finish in case.calendar.hours_on(day):
            low = max(first, midnight + timedelta(minutes=begin))
            high = min(last, midnight + timedelta(minutes=finish))
            total += max(ZERO, high - low)
        day += timedelta(days=1)
    return total


class TestDeadlineProperties:
    @SETTINGS
    @given(st.data())
    def test_business_time_to_the_deadline_is_the_duration(self, data):
        case = data.draw(cases())
        duration = draw_duration(data, case)
        due = case.calendar.add(case.start, duration)
        assert due.tzinfo is UTC
        assert case.calendar.between(case.start, due) == duration

    @SETTINGS
    @given(st.data())
    def test_deadline_is_in_working_time_or_ends_an_interval(self, data):
        case = data.draw(cases())
        duration = draw_duration(data, case)
        due = case.calendar.add(case.start, duration)
        assert due >= case.start
        if duration:
            # In (begin, end] of an interval: the instant just before it is working.
            assert case.calendar.is_working(due - MICRO)
        else:
            assert case.calendar.is_working(due)

    @SETTINGS
    @given(st.data())
    def test_deadline_is_monotonic_in_start(self, data):
        case = data.draw(cases())
        duration = draw_duration(data, case)
        later = case.start + timedelta(seconds=data.draw(st.integers(0, 10 * 86400)))
        assert case.calendar.add(case.start, duration) <= case.calendar.add(later, duration)

    @SETTINGS
    @given(st.data())
    def test_deadline_is_monotonic_in_duration(self, data):
        case = data.draw(cases())
        shorter, longer = sorted((draw_duration(data, case), draw_duration(data, case)))
        assert case.calendar.add(case.start, shorter) <= case.calendar.add(case.start, longer)

    @SETTINGS
    @given(st.data())
    def test_adding_in_two_steps_is_adding_the_sum(self, data):
        # Holds for any start, inside working time or not, as long as the second step is not
        # zero: a zero step from an interval's end moves to the next interval's start.
        case = data.draw(cases())
        first, second = draw_duration(data, case), draw_duration(data, case)
        calendar = case.calendar
        in_two = calendar.add(calendar.add(case.start, first), second)
        at_once = calendar.add(case.start, first + second)
        if second:
            assert in_two == at_once
        else:
            assert in_two == calendar.next_working(at_once)

    @SETTINGS
    @given(st.data())
    def test_adding_the_business_time_to_a_working_instant_reaches_it(self, data):
        # Exactly when the working instant is inside an interval; when it is an interval's
        # start the deadline is the end of the interval before, with no business time between.
        case = data.draw(cases())
        calendar = case.calendar
        end = case.start + timedelta(seconds=data.draw(st.integers(0, 30 * 86400)))
        end = calendar.next_working(end)
        due = calendar.add(case.start, calendar.between(case.start, end))
        assert due <= end
        assert calendar.next_working(due) == end


class TestBetweenProperties:
    @SETTINGS
    @given(st.data())
    def test_between_is_additive(self, data):
        case = data.draw(cases())
        middle = case.start + timedelta(seconds=data.draw(st.integers(0, 40 * 86400)))
        end = middle + timedelta(seconds=data.draw(st.integers(0, 40 * 86400)))
        between = case.calendar.between
        assert between(case.start, middle) + between(middle, end) == between(case.start, end)

    @SETTINGS
    @given(st.data())
    def test_between_matches_a_day_by_day_count(self, data):
        case = data.draw(cases(FIXED_ZONES))
        end = case.start + timedelta(seconds=data.draw(st.integers(0, 60 * 86400)))
        assert case.calendar.between(case.start, end) == oracle_between(case, case.start, end)

    @SETTINGS
    @given(st.data())
    def test_next_working_is_the_first_working_instant(self, data):
        case = data.draw(cases())
        calendar = case.calendar
        following = calendar.next_working(case.start)
        assert calendar.is_working(following)
        assert calendar.between(case.start, following) == ZERO
        assert (following == case.start) == calendar.is_working(case.start)


class TestDaylightSavingProperties:
    @SETTINGS
    @given(st.data())
    def test_is_working_reads_the_wall_clock_outside_repeated_hours(self, data):
        case = data.draw(cases(DST_ZONES))
        tz = ZoneInfo(case.zone)
        instant = case.start + timedelta(seconds=data.draw(st.integers(-86400, 86400)))
        wall = instant.astimezone(tz).replace(tzinfo=None)
        first, second = (wall.replace(tzinfo=tz, fold=fold).utcoffset() for fold in (0, 1))
        assume(first == second)  # a repeated wall time reads as its first occurrence
        minute = wall.hour * 60 + wall.minute + wall.second / 60 + wall.microsecond / 6e7
        reads = any(b <= minute < e for b, e in case.calendar.hours_on(wall.date()))
        assert case.calendar.is_working(instant) == reads

    @settings(max_examples=100, deadline=None)
    @given(st.data())
    def test_between_counts_the_working_minutes_around_a_switch(self, data):
        case = data.draw(cases(DST_ZONES))
        changes = offset_changes(case.zone)
        assume(changes)
        start = data.draw(st.sampled_from(changes)) - timedelta(
            minutes=data.draw(st.integers(0, 48 * 60))
        )
        minutes = data.draw(st.integers(0, 8 * 60))
        working = sum(
            case.calendar.is_working(start + timedelta(minutes=n)) for n in range(minutes)
        )
        assert case.calendar.between(start, start + timedelta(minutes=minutes)) == timedelta(
            minutes=working
        )


class TestRoundTheClockProperties:
    @SETTINGS
    @given(st.data())
    def test_round_the_clock_deadline_is_elapsed_time(self, data):
        case = data.draw(cases())
        duration = draw_duration(data, case)
        due = case.calendar.deadline(case.start, duration, round_the_clock=True)
        assert due == case.start + duration
        assert due == ROUND_THE_CLOCK.add(case.start, duration)

    @SETTINGS
    @given(
        st.sampled_from(FIXED_ZONES + DST_ZONES), st.integers(0, 13 * 365), st.integers(0, 10**6)
    )
    def test_a_24x7_calendar_in_any_zone_is_elapsed_time(self, zone, day, seconds):
        calendar = BusinessCalendar.from_contract(
            Calendar(
                timezone=zone,
                hours=dict.fromkeys(WEEKDAYS, ("00:00-12:00", "12:00-24:00")),
                extra_days_off=("1990-01-01",),  # keeps it off the 24x7 shortcut
            )
        )
        start = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=day, seconds=seconds % 86400)
        duration = timedelta(seconds=seconds)
        assert calendar.add(start, duration) == start + duration
        assert calendar.between(start, start + duration) == duration
