import time as timer
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from opora_shared.business_hours import ROUND_THE_CLOCK, BusinessCalendar
from opora_shared.contracts import WEEKDAYS, Calendar, ContractBook
from opora_shared.vocabulary import Priority

CONTRACTS = Path(__file__).resolve().parents[3] / "deploy" / "contracts"
MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)
MIN = timedelta(minutes=1)
OFFICE = dict.fromkeys(WEEKDAYS[:5], ("09:00-18:00",))


def msk(*args: int) -> datetime:
    return datetime(*args, tzinfo=MSK)


def moscow_office(**fields: object) -> BusinessCalendar:
    """Romashka's hours with the contract's own days given as fields."""
    return BusinessCalendar.from_contract(
        Calendar.model_validate({"timezone": "Europe/Moscow", "hours": OFFICE, **fields})
    )


@pytest.fixture(scope="module")
def book() -> ContractBook:
    return ContractBook.from_dir(CONTRACTS)


@pytest.fixture(scope="module")
def romashka(book: ContractBook) -> BusinessCalendar:
    contract = book.get("romashka")
    assert contract is not None
    return BusinessCalendar.from_contract(contract.calendar)


class TestDeadline:
    def test_friday_evening_ticket_is_due_monday_morning(self, romashka):
        due = romashka.add(msk(2025, 11, 28, 17, 30), 2 * H)
        assert due == msk(2025, 12, 1, 10, 30)
        assert due.tzinfo is UTC

    def test_clock_starts_at_the_next_working_moment(self, romashka):
        assert romashka.add(msk(2025, 11, 29, 12, 0), 2 * H) == msk(2025, 12, 1, 11, 0)
        assert romashka.add(msk(2025, 12, 1, 7, 0), 30 * MIN) == msk(2025, 12, 1, 9, 30)

    def test_deadline_at_the_end_of_the_day_stays_there(self, romashka):
        assert romashka.add(msk(2025, 12, 1, 16, 0), 2 * H) == msk(2025, 12, 1, 18, 0)

    def test_zero_duration_is_the_next_working_moment(self, romashka):
        assert romashka.add(msk(2025, 12, 1, 12, 0), timedelta(0)) == msk(2025, 12, 1, 12, 0)
        assert romashka.add(msk(2025, 11, 28, 18, 0), timedelta(0)) == msk(2025, 12, 1, 9, 0)

    def test_new_years_eve_ticket_waits_for_the_new_year_holidays(self, romashka):
        # 31 Dec 2025 is a day off (moved from 5 Jan); 1-11 Jan 2026 are off (9 Jan moved
        # from 3 Jan): the first working day of 2026 is Monday 12 January.
        assert romashka.add(msk(2025, 12, 31, 17, 0), 2 * H) == msk(2026, 1, 12, 11, 0)
        assert romashka.add(msk(2025, 12, 30, 17, 0), 2 * H) == msk(2026, 1, 12, 10, 0)

    def test_new_year_holidays_2027(self, romashka):
        # 31 Dec 2026 is a day off (moved from 4 Jan); 1-10 Jan 2027 are off.
        assert romashka.add(msk(2026, 12, 30, 17, 0), 2 * H) == msk(2027, 1, 11, 10, 0)

    @pytest.mark.parametrize(
        ("start", "due"),
        [
            ((2026, 2, 20, 17, 0), (2026, 2, 24, 10, 0)),  # Mon 23 Feb
            ((2026, 3, 6, 17, 0), (2026, 3, 10, 10, 0)),  # 8 Mar is a Sunday: Mon 9 Mar off
            ((2026, 4, 30, 17, 0), (2026, 5, 4, 10, 0)),  # Fri 1 May
            ((2026, 5, 8, 17, 0), (2026, 5, 12, 10, 0)),  # 9 May is a Saturday: Mon 11 off
            ((2025, 5, 7, 17, 0), (2025, 5, 12, 10, 0)),  # 8 May (moved) and Fri 9 May
            ((2026, 6, 11, 17, 0), (2026, 6, 15, 10, 0)),  # Fri 12 Jun
            ((2026, 11, 3, 17, 0), (2026, 11, 5, 10, 0)),  # Wed 4 Nov
            ((2025, 11, 3, 12, 0), (2025, 11, 5, 11, 0)),  # Mon 3 Nov (moved) and Tue 4 Nov
        ],
    )
    def test_skips_weekends_and_holidays(self, romashka, start, due):
        assert romashka.add(msk(*start), 2 * H) == msk(*due)

    def test_transferred_working_saturday_counts(self, romashka):
        # Saturday 1 Nov 2025 was a working day (its day off moved to Monday 3 Nov).
        assert romashka.is_working(msk(2025, 11, 1, 12, 0))
        assert romashka.add(msk(2025, 10, 31, 17, 0), 2 * H) == msk(2025, 11, 1, 10, 0)
        assert not romashka.is_working(msk(2025, 11, 3, 12, 0))

    def test_ten_business_days_cross_a_holiday(self, romashka, book):
        target = book.get("romashka").target("resolution", Priority.P4)
        assert target == 90 * H
        assert romashka.add(msk(2026, 11, 23, 10, 0), target) == msk(2026, 12, 7, 10, 0)
        assert romashka.add(msk(2026, 11, 2, 10, 0), target) == msk(2026, 11, 17, 10, 0)

    def test_long_durations_skip_weeks_correctly(self, romashka):
        start = msk(2026, 1, 12, 9, 0)
        due = romashka.add(start, 45 * 9 * H)
        # 45 working days from 12 Jan 2026, minus Mon 23 Feb and Mon 9 Mar.
        assert due == msk(2026, 3, 17, 18, 0)
        assert romashka.between(start, due) == 45 * 9 * H

    def test_returns_utc(self, romashka):
        assert romashka.add(datetime(2025, 12, 1, 6, 0, tzinfo=UTC), H).tzinfo is UTC


class TestBetween:
    def test_counts_only_business_time(self, romashka):
        assert romashka.between(msk(2025, 11, 28, 17, 30), msk(2025, 12, 1, 10, 30)) == 2 * H

    def test_is_zero_when_end_is_not_after_start(self, romashka):
        assert romashka.between(msk(2025, 12, 1, 12), msk(2025, 12, 1, 12)) == timedelta(0)
        assert romashka.between(msk(2025, 12, 1, 12), msk(2025, 12, 1, 10)) == timedelta(0)

    def test_a_holiday_fortnight_has_two_working_days(self, romashka):
        assert romashka.between(msk(2025, 12, 29), msk(2026, 1, 12)) == 18 * H

    def test_a_year_of_romashka(self, romashka):
        # Russia's 2026 production calendar: 247 working days (no shortened days here).
        assert romashka.between(msk(2026, 1, 1), msk(2027, 1, 1)) == 247 * 9 * H


class TestWorkingTime:
    def test_interval_start_is_working_and_end_is_not(self, romashka):
        assert romashka.is_working(msk(2025, 12, 1, 9, 0))
        assert not romashka.is_working(msk(2025, 12, 1, 18, 0))
        assert not romashka.is_working(msk(2025, 12, 1, 8, 59))

    def test_next_working_skips_to_the_next_interval(self, romashka):
        assert romashka.next_working(msk(2025, 12, 31, 12, 0)) == msk(2026, 1, 12, 9, 0)
        assert romashka.next_working(msk(2025, 12, 1, 12, 0)) == msk(2025, 12, 1, 12, 0)


class TestContractDays:
    def test_extra_day_off_is_skipped(self):
        calendar = moscow_office(holidays="RU", extra_days_off=["2026-11-27"])
        assert calendar.add(msk(2026, 11, 26, 17, 30), 2 * H) == msk(2026, 11, 30, 10, 30)

    def test_extra_working_saturday_has_mondays_hours(self):
        calendar = moscow_office(holidays="RU", extra_working_days=["2026-11-28"])
        assert calendar.hours_on(date(2026, 11, 28)) == ((9 * 60, 18 * 60),)
        assert calendar.add(msk(2026, 11, 27, 17, 30), 2 * H) == msk(2026, 11, 28, 10, 30)

    def test_extra_working_day_hours_follow_the_chosen_weekday(self):
        hours = {**OFFICE, "fri": ("09:00-16:45",)}
        calendar = BusinessCalendar.from_contract(
            Calendar(timezone="Europe/Moscow", hours=hours, extra_working_days=("2026-11-28",)),
            extra_day_like="fri",
        )
        assert calendar.add(msk(2026, 11, 28, 16, 0), H) == msk(2026, 11, 30, 9, 15)

    def test_extra_working_day_overrides_a_public_holiday(self):
        calendar = moscow_office(holidays="RU", extra_working_days=["2026-11-04"])
        assert calendar.is_working(msk(2026, 11, 4, 12, 0))

    def test_without_a_country_holidays_are_working_days(self):
        assert moscow_office().is_working(msk(2026, 11, 4, 12, 0))

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"extra_days_off": ["2026-13-01"]}, "extra_days_off"),
            ({"extra_days_off": ["2026-11-27"], "extra_working_days": ["2026-11-27"]}, "both"),
            ({"holidays": "XX"}, "country code"),
            ({"hours": {"mon": ["23:00-24:30"]}}, "24:00"),
            ({"hours": {}}, "at least one working interval"),
        ],
    )
    def test_refuses_a_broken_calendar(self, fields, message):
        with pytest.raises(ValueError, match=message):
            moscow_office(**fields)


class TestLunchBreak:
    @pytest.fixture
    def calendar(self) -> BusinessCalendar:
        hours = dict.fromkeys(WEEKDAYS[:5], ("09:00-13:00", "14:00-18:00"))
        return BusinessCalendar.from_contract(Calendar(timezone="Europe/Moscow", hours=hours))

    def test_deadline_skips_the_break(self, calendar):
        assert calendar.add(msk(2025, 12, 1, 12, 30), H) == msk(2025, 12, 1, 14, 30)

    def test_deadline_may_fall_at_the_start_of_the_break(self, calendar):
        assert calendar.add(msk(2025, 12, 1, 12, 30), 30 * MIN) == msk(2025, 12, 1, 13, 0)

    def test_break_is_not_working_time(self, calendar):
        assert not calendar.is_working(msk(2025, 12, 1, 13, 0))
        assert calendar.next_working(msk(2025, 12, 1, 13, 30)) == msk(2025, 12, 1, 14, 0)
        assert calendar.between(msk(2025, 12, 1, 12, 0), msk(2025, 12, 1, 15, 0)) == 2 * H

    def test_overlapping_intervals_are_merged(self):
        hours = {"mon": ("09:00-13:00", "12:00-18:00")}
        calendar = BusinessCalendar.from_contract(Calendar(timezone="UTC", hours=hours))
        assert calendar.weekly == 9 * H


class TestDaylightSaving:
    @staticmethod
    def sundays(*intervals: str, zone: str = "Europe/Berlin") -> BusinessCalendar:
        return BusinessCalendar.from_contract(Calendar(timezone=zone, hours={"sun": intervals}))

    def test_interval_over_the_spring_switch_is_an_hour_shorter(self):
        calendar = self.sundays("00:00-06:00")
        start = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
        end = datetime(2026, 3, 29, 6, 0, tzinfo=BERLIN)
        assert calendar.between(start, end) == 5 * H
        assert calendar.add(start, 5 * H) == end
        assert calendar.add(start, 2 * H) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)

    def test_interval_over_the_autumn_switch_is_an_hour_longer(self):
        calendar = self.sundays("00:00-06:00")
        start = datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN)
        end = datetime(2026, 10, 25, 6, 0, tzinfo=BERLIN)
        assert calendar.between(start, end) == 7 * H
        assert calendar.add(start, 7 * H) == end
        # Three hours after midnight is the second 02:00 (CET).
        assert calendar.add(start, 3 * H) == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)

    def test_interval_starting_in_the_skipped_hour_starts_at_the_jump(self):
        calendar = self.sundays("02:30-04:00")
        day_start = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
        assert calendar.next_working(day_start) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
        assert calendar.between(day_start, day_start + 6 * H) == H

    def test_interval_inside_the_skipped_hour_does_not_happen(self):
        calendar = self.sundays("02:15-02:45")
        day_start = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
        assert calendar.next_working(day_start) == datetime(2026, 4, 5, 2, 15, tzinfo=BERLIN)

    def test_interval_starting_in_the_repeated_hour_starts_at_its_first_occurrence(self):
        calendar = self.sundays("02:30-04:00")
        day_start = datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN)
        assert calendar.next_working(day_start) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
        assert calendar.between(day_start, day_start + 6 * H) == 2 * H + 30 * MIN

    def test_new_york_office_hours_across_the_spring_weekend(self):
        hours = dict.fromkeys(WEEKDAYS[:5], ("09:00-18:00",))
        calendar = BusinessCalendar.from_contract(
            Calendar(timezone="America/New_York", hours=hours, holidays="US")
        )
        start = datetime(2026, 3, 6, 17, 0, tzinfo=NEW_YORK)  # 22:00 UTC, EST
        due = calendar.add(start, 2 * H)
        assert due == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # 10:00 EDT
        assert calendar.between(start, due) == 2 * H

    def test_round_the_clock_days_in_a_dst_zone_are_elapsed_time(self):
        calendar = BusinessCalendar.from_contract(
            Calendar(
                timezone="Europe/Berlin",
                hours=dict.fromkeys(WEEKDAYS, ("00:00-24:00",)),
                extra_days_off=("1999-01-01",),  # keeps it off the 24x7 shortcut
            )
        )
        start = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
        end = datetime(2026, 3, 29, 12, 0, tzinfo=BERLIN)
        assert calendar.between(start, end) == 23 * H
        assert calendar.add(start, 23 * H) == end
        autumn = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
        assert calendar.add(autumn, 100 * H) == autumn.astimezone(UTC) + 100 * H


class TestRoundTheClock:
    def test_vector_runs_24x7(self, book):
        contract = book.get("vector")
        calendar = BusinessCalendar.from_contract(contract.calendar)
        start = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
        assert calendar.is_working(start)
        assert calendar.add(start, contract.target("resolution", Priority.P4)) == start + 5 * 24 * H
        assert calendar.between(start, start + 50 * H) == 50 * H

    def test_romashka_p1_ignores_hours_and_holidays(self, romashka, book):
        contract = book.get("romashka")
        assert Priority.P1 in contract.sla.round_the_clock
        start = msk(2026, 1, 3, 23, 0)
        target = contract.target("resolution", Priority.P1)
        assert romashka.deadline(start, target, round_the_clock=True) == msk(2026, 1, 4, 3, 0)
        assert romashka.deadline(start, target, round_the_clock=False) == msk(2026, 1, 12, 13, 0)

    def test_round_the_clock_calendar_is_elapsed_time(self):
        start = datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN)
        assert ROUND_THE_CLOCK.add(start, 3 * H) == start.astimezone(UTC) + 3 * H
        assert ROUND_THE_CLOCK.next_working(start) == start


class TestInputs:
    def test_naive_datetimes_are_refused(self, romashka):
        naive = datetime(2025, 12, 1, 12, 0)  # noqa: DTZ001 -- the point of the test
        with pytest.raises(ValueError, match="timezone-aware"):
            romashka.add(naive, H)
        with pytest.raises(ValueError, match="timezone-aware"):
            romashka.between(msk(2025, 12, 1), naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            romashka.is_working(naive)

    def test_negative_duration_is_refused(self, romashka):
        with pytest.raises(ValueError, match="negative"):
            romashka.add(msk(2025, 12, 1, 12), -H)


class TestSpeed:
    def test_ten_business_days_in_well_under_a_millisecond(self, romashka, capsys):
        start = msk(2026, 11, 23, 10, 0)
        romashka.add(start, 90 * H)  # fills the per-year tables
        runs = 1000
        began = timer.perf_counter()
        for _ in range(runs):
            romashka.add(start, 90 * H)
        each = (timer.perf_counter() - began) / runs
        with capsys.disabled():
            print(f"\n10 business days: {each * 1e6:.1f} µs per deadline (information only)")
