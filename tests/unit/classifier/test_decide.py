from pathlib import Path

import pytest

from opora_classifier.decide import decide, detect_language
from opora_classifier.model import TicketModel
from opora_classifier.settings import MODEL_DIR
from opora_shared.contracts import ContractBook
from opora_shared.vocabulary import Category, Language, Priority, Scope

CONTRACTS = Path(__file__).resolve().parents[3] / "deploy" / "contracts"


@pytest.fixture(scope="module")
def book() -> ContractBook:
    return ContractBook.from_dir(CONTRACTS)


@pytest.fixture(scope="module")
def model() -> TicketModel:
    return TicketModel.load(MODEL_DIR)


class TestVerdict:
    def test_1c_is_billable_for_romashka_and_included_for_vector(self, model, book):
        text = ("Ошибка в 1С", "Не формируется отчёт по зарплате в 1С:ЗУП, выдаёт ошибку")
        romashka = decide(model, *text, book.get("romashka"))
        vector = decide(model, *text, book.get("vector"))
        assert romashka.category is vector.category is Category.ACCOUNTING_SOFTWARE
        assert romashka.scope is Scope.BILLABLE
        assert vector.scope is Scope.INCLUDED
        assert any("billable" in r for r in romashka.reasons)

    def test_unknown_sender_needs_review_and_says_why(self, model):
        verdict = decide(model, "Printer broken", "The printer on floor 2 is jammed", None)
        assert verdict.scope is Scope.NEEDS_REVIEW
        assert any("no contract" in r for r in verdict.reasons)

    def test_buying_toner_is_excluded_as_consumables(self, model, book):
        verdict = decide(
            model,
            "Toner",
            "We need to buy new toner cartridges for the HP printer",
            book.get("vector"),
        )
        assert verdict.category is Category.PRINTING
        assert verdict.scope is Scope.EXCLUDED

    def test_whole_office_without_internet_is_urgent_with_a_named_signal(self, model, book):
        verdict = decide(
            model,
            "Не работает интернет",
            "Весь офис без интернета, никто не может работать",
            book.get("romashka"),
        )
        assert verdict.category is Category.NETWORK
        assert verdict.priority in (Priority.P1, Priority.P2)
        assert len(verdict.reasons) >= 3

    def test_a_threshold_above_every_confidence_sends_everything_to_review(self, model, book):
        verdict = decide(
            model, "Принтер", "Не печатает", book.get("romashka"), review_threshold=1.01
        )
        assert verdict.scope is Scope.NEEDS_REVIEW

    def test_language_detection(self):
        assert detect_language("12345", Language.RU) is Language.RU
        assert detect_language("hello world, мир", Language.RU) is Language.EN
