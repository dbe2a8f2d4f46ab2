from datetime import UTC, datetime, timedelta

import pytest

from opora_notifier.rendering import format_due, format_duration, one_line
from opora_shared.vocabulary import Language


class TestFormatting:
    def test_a_deadline_is_shown_in_the_contract_timezone_and_language(self):
        due = datetime(2026, 12, 31, 21, 30, tzinfo=UTC)
        assert format_due(due, "Europe/Moscow", Language.RU) == "01.01.2027 00:30"
        assert format_due(due, "UTC", Language.EN) == "31 Dec 2026 21:30"

    @pytest.mark.parametrize(
        ("span", "language", "expected"),
        [
            (timedelta(minutes=24), Language.RU, "24 мин"),
            (timedelta(hours=1, minutes=5), Language.EN, "1 h 5 min"),
            (timedelta(days=3, hours=2, minutes=59), Language.EN, "3 d 2 h"),
            (timedelta(seconds=20), Language.RU, "0 мин"),
            (timedelta(hours=-1), Language.EN, "0 min"),
        ],
    )
    def test_durations_read_as_people_say_them(self, span, language, expected):
        assert format_duration(span, language) == expected

    def test_one_line_collapses_whitespace_and_cuts_with_an_ellipsis(self):
        assert one_line("Принтер\n  не   печатает", 100) == "Принтер не печатает"
        assert one_line("a" * 10, 5) == "aaaa…"
