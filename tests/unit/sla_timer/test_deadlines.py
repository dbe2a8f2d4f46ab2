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
