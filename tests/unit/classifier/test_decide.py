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


class TestReasons:
    def test_reasons_name_the_words_the_signal_and_the_contract(self, model, book):
        verdict = decide(
            model,
            "Принтер в бухгалтерии",
            "Принтер зажевал бумагу и не печатает",
            book.get("romashka"),
        )
        assert verdict.category is Category.PRINTING
        assert "принтер" in verdict.reasons[0]
        assert verdict.reasons[0].endswith("%)")
        assert any("incident → P3" in r for r in verdict.reasons)
        assert verdict.reasons[-1] == "printing is included in ООО «Ромашка»'s contract"

    def test_personal_device_keeps_its_category_and_is_excluded(self, model, book):
        verdict = decide(
            model,
            "Почта на телефоне",
            "Настройте, пожалуйста, рабочую почту на мой личный телефон.",
            book.get("romashka"),
        )
        assert verdict.category is Category.EMAIL
        assert verdict.scope is Scope.EXCLUDED
        assert any("personal_device" in r for r in verdict.reasons)

    def test_printer_repair_is_included_and_toner_purchase_excluded(self, model, book):
        repair = decide(
            model,
            "Printer",
            "The printer makes a grinding noise, please fix it",
            book.get("vector"),
        )
        toner = decide(model, "Toner", "Please order two toner cartridges", book.get("vector"))
        assert repair.category is toner.category is Category.PRINTING
        assert repair.scope is Scope.INCLUDED
        assert toner.scope is Scope.EXCLUDED

    def test_an_alert_is_monitoring_with_its_severity(self, model, book):
        verdict = decide(
            model,
            "[FIRING:1] HostDown srv-fs02",
            "[FIRING:1] HostDown\nLabels:\n - alertname = HostDown\n - severity = critical\n"
            "Annotations:\n - summary = Host srv-fs02 is unreachable",
            book.get("vector"),
        )
        assert verdict.category is Category.MONITORING
        assert verdict.priority is Priority.P1
        assert any("alert" in r for r in verdict.reasons)

    def test_the_verdict_does_not_depend_on_the_previous_ticket(self, model, book):
        contract = book.get("romashka")
        first = decide(model, "Интернет", "Нет интернета во всём офисе", contract)
        decide(model, "Кофемашина", "Сломалась кофемашина", contract)
        assert decide(model, "Интернет", "Нет интернета во всём офисе", contract) == first
