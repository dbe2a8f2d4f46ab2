import random
from datetime import UTC, datetime, timedelta

import pytest

from opora_notifier.notices import Audience, Medium, Recipient
from opora_notifier.policy import admit, quiet_until, retry_delay
from opora_shared.vocabulary import Language


def engineer(team, engineer_id):
    person = team.engineer(engineer_id)
    return Recipient(
        Medium.EMAIL, person.email, Audience.TEAM, Language.RU, shift=team.shifts[person.shift]
    )


class TestQuietHours:
    def test_a_p3_alert_at_night_waits_for_the_shift(self, team, night):
        until = quiet_until(engineer(team, "maria"), urgent=False, now=night)
        assert until == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)  # Friday 09:00 Moscow

    def test_over_the_weekend_it_waits_for_monday(self, team):
        saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
        until = quiet_until(engineer(team, "maria"), urgent=False, now=saturday)
        assert until == datetime(2026, 11, 30, 6, 0, tzinfo=UTC)

    def test_urgent_alerts_never_wait(self, team, night):
        assert quiet_until(engineer(team, "maria"), urgent=True, now=night) is None

    def test_on_shift_nothing_waits(self, team, now):
        assert quiet_until(engineer(team, "maria"), urgent=False, now=now) is None

    def test_the_round_the_clock_duty_engineer_is_never_held(self, team, night):
        assert quiet_until(engineer(team, "duty"), urgent=False, now=night) is None

    def test_people_without_a_shift_and_clients_are_never_held(self, night):
        lead = Recipient(Medium.EMAIL, "lead@opora.local", Audience.TEAM, Language.RU)
        client = Recipient(Medium.EMAIL, "anna@romashka.ru", Audience.CLIENT, Language.RU)
        assert quiet_until(lead, urgent=False, now=night) is None
        assert quiet_until(client, urgent=False, now=night) is None


class TestRateLimit:
    HOUR = timedelta(hours=1)

    def test_admits_up_to_the_limit_then_says_when(self, now):
        window = [now - timedelta(minutes=m) for m in (50, 30, 10)]
        refused = admit(window, now=now, limit=3, period=self.HOUR)
        assert not refused.admitted
        assert refused.retry_at == now + timedelta(minutes=10)  # when the oldest leaves
        later = admit(window, now=now + timedelta(minutes=11), limit=3, period=self.HOUR)
        assert later.admitted
        assert len(later.window) == 3

    def test_old_sends_leave_the_window(self, now):
        decision = admit([now - timedelta(hours=2)], now=now, limit=1, period=self.HOUR)
        assert decision.admitted
        assert decision.window == (now,)

    def test_urgent_messages_go_anyway_and_count(self, now):
        full = [now - timedelta(minutes=1)]
        decision = admit(full, now=now, limit=1, period=self.HOUR, urgent=True)
        assert decision.admitted
        assert decision.window == (now,)

    def test_zero_means_no_limit(self, now):
        assert admit([now] * 100, now=now, limit=0, period=self.HOUR).admitted


class TestBackoff:
    def test_doubles_with_jitter_and_stays_under_the_cap(self):
        rng = random.Random(7)  # noqa: S311
        for attempt in range(1, 12):
            step = min(60.0, 1.0 * 2 ** (attempt - 1))
            delay = retry_delay(attempt, base=1.0, cap=60.0, rng=rng)
            assert step / 2 <= delay <= step

    def test_jitter_spreads_retries(self):
        rng = random.Random(1)  # noqa: S311
        delays = {round(retry_delay(4, base=1.0, cap=60.0, rng=rng), 6) for _ in range(20)}
        assert len(delays) > 10

    @pytest.mark.parametrize(("hint", "expected"), [(30.0, 30.0), (500.0, 60.0)])
    def test_a_servers_retry_after_is_a_floor_within_the_cap(self, hint, expected):
        rng = random.Random(3)  # noqa: S311
        assert retry_delay(1, base=1.0, cap=60.0, rng=rng, hint=hint) == expected
