from datetime import UTC, datetime, timedelta
from pathlib import Path

from opora_shared.contracts import ContractBook
from opora_shared.vocabulary import Priority
from opora_sla_timer.deadlines import deadlines

CONTRACTS = Path(__file__).resolve().parents[3] / "deploy" / "contracts"


class TestDeadlines:
    def test_vector_p1_from_contract_targets(self):
        vector = ContractBook.from_dir(CONTRACTS).get("vector")
        start = datetime(2026, 11, 26, 10, tzinfo=UTC)
        due = deadlines(vector, Priority.P1, start)
        assert due.first_response_due == start + timedelta(minutes=10)
        assert due.resolution_due == start + timedelta(hours=2)

    def test_first_response_is_never_after_resolution(self):
        book = ContractBook.from_dir(CONTRACTS)
        start = datetime(2026, 11, 26, 10, tzinfo=UTC)
        for contract in book:
            for priority in Priority:
                due = deadlines(contract, priority, start)
                assert start < due.first_response_due <= due.resolution_due


class TestBusinessHoursDeadlines:
    def test_romashka_p3_received_friday_evening_is_due_monday_morning(self):
        romashka = ContractBook.from_dir(CONTRACTS).get("romashka")
        friday_evening = datetime(2026, 11, 27, 17, 30, tzinfo=UTC) - timedelta(hours=3)
        due = deadlines(romashka, Priority.P3, friday_evening)  # 17:30 Moscow
        # 30 minutes on Friday, 1.5 hours on Monday 30 Nov from 09:00 Moscow (06:00 UTC)
        assert due.first_response_due == datetime(2026, 11, 30, 7, 30, tzinfo=UTC)

    def test_romashka_p1_runs_round_the_clock(self):
        romashka = ContractBook.from_dir(CONTRACTS).get("romashka")
        saturday_night = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
        due = deadlines(romashka, Priority.P1, saturday_night)
        assert due.first_response_due == saturday_night + timedelta(minutes=15)
        assert due.resolution_due == saturday_night + timedelta(hours=4)
