from datetime import timedelta
from pathlib import Path

import pytest

from opora_shared.contracts import ContractBook, load_contract
from opora_shared.errors import ContractError
from opora_shared.testing.factories import make_contract
from opora_shared.vocabulary import Category, Priority, Scope

CONTRACTS = Path(__file__).resolve().parents[3] / "deploy" / "contracts"


@pytest.fixture(scope="module")
def book() -> ContractBook:
    return ContractBook.from_dir(CONTRACTS)


class TestDemoContracts:
    def test_both_demo_tenants_load(self, book):
        assert {c.tenant for c in book} == {"romashka", "vector"}

    def test_the_same_category_is_billable_for_romashka_and_included_for_vector(self, book):
        assert (
            book.get("romashka").services.scope_of(Category.ACCOUNTING_SOFTWARE) is Scope.BILLABLE
        )
        assert book.get("vector").services.scope_of(Category.ACCOUNTING_SOFTWARE) is Scope.INCLUDED

    def test_romashka_targets_and_calendar(self, book):
        romashka = book.get("romashka")
        assert romashka.target("first_response", Priority.P1) == timedelta(minutes=15)
        assert romashka.target("resolution", Priority.P3) == timedelta(hours=27)  # 3 x 9 h days
        assert romashka.target("resolution", Priority.P1) == timedelta(hours=4)
        assert romashka.calendar.timezone == "Europe/Moscow"
        assert not romashka.calendar.is_24x7
        assert romashka.approver == "director@romashka.ru"

    def test_vector_is_24x7(self, book):
        vector = book.get("vector")
        assert vector.calendar.is_24x7
        assert vector.target("resolution", Priority.P3) == timedelta(days=2)

    def test_revision_is_a_hash_of_the_file(self, book):
        assert len(book.get("romashka").revision) == 12
        assert book.get("romashka").revision != book.get("vector").revision


class TestTenantOfASender:
    @pytest.mark.parametrize(
        ("address", "tenant"),
        [
            ("anna@romashka.ru", "romashka"),
            ("Anna@ROMASHKA.RU", "romashka"),
            ("ops@mail.vector-logistics.com", "vector"),
            ("it-manager@vector-logistics.com", "vector"),
            ("someone@gmail.com", "unknown"),
            ("romashka.ru@evil.example", "unknown"),
        ],
    )
    def test_address_to_tenant(self, book, address, tenant):
        assert book.tenant_for(address) == tenant


class TestValidationErrorsNameFileAndField:
    def write(self, tmp_path: Path, name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    def test_bad_duration_names_the_field_and_the_fix(self, tmp_path):
        text = (CONTRACTS / "vector.yml").read_text(encoding="utf-8").replace("P1: 10m", "P1: soon")
        path = self.write(tmp_path, "vector.yml", text)
        with pytest.raises(ContractError) as err:
            load_contract(path)
        message = str(err.value)
        assert str(path) in message
        assert "sla.first_response.P1" in message
        assert "'15m'" in message

    def test_unknown_field_is_refused(self, tmp_path):
        text = (CONTRACTS / "vector.yml").read_text(encoding="utf-8") + "colour: blue\n"
        with pytest.raises(ContractError, match="colour"):
            load_contract(self.write(tmp_path, "vector.yml", text))

    def test_file_name_must_match_tenant(self, tmp_path):
        text = (CONTRACTS / "vector.yml").read_text(encoding="utf-8")
        with pytest.raises(ContractError, match=r"name the file vector\.yml"):
            load_contract(self.write(tmp_path, "other.yml", text))

    def test_not_yaml(self, tmp_path):
        with pytest.raises(ContractError, match="not valid YAML"):
            load_contract(self.write(tmp_path, "x.yml", "tenant: [unclosed"))

    def test_a_category_in_two_lists_is_refused(self):
        with pytest.raises(ValueError, match="both included and billable"):
            make_contract(services={"included": ["email"], "billable": ["email"]})

    def test_bad_timezone_and_hours(self):
        with pytest.raises(ValueError, match="unknown timezone"):
            make_contract(calendar={"timezone": "Mars/Olympus", "hours": {}})
        with pytest.raises(ValueError, match="start before end"):
            make_contract(calendar={"timezone": "UTC", "hours": {"mon": ["18:00-09:00"]}})

    def test_reserved_tenant_unknown(self):
        with pytest.raises(ValueError, match="reserved"):
            make_contract(tenant="unknown")

    def test_two_tenants_claiming_one_domain(self):
        with pytest.raises(ContractError, match="claimed by both"):
            ContractBook([make_contract(), make_contract(tenant="other")])

    def test_missing_directory_says_which_setting(self, tmp_path):
        with pytest.raises(ContractError, match="OPORA_CONTRACTS_DIR"):
            ContractBook.from_dir(tmp_path / "nope")
