from pathlib import Path

import pytest

from opora_classifier.rules import classify, detect_language
from opora_shared.contracts import ContractBook
from opora_shared.vocabulary import Category, Kind, Language, Priority, Scope

CONTRACTS = Path(__file__).resolve().parents[3] / "deploy" / "contracts"


@pytest.fixture(scope="module")
def book() -> ContractBook:
    return ContractBook.from_dir(CONTRACTS)


class TestPlaceholderRules:
    def test_printer_jam_is_included_printing(self, book):
        verdict = classify("Принтер не печатает", "Замяло бумагу", book.get("romashka"))
        assert verdict.category is Category.PRINTING
        assert verdict.scope is Scope.INCLUDED
        assert verdict.language is Language.RU
        assert any("printing" in r for r in verdict.reasons)

    def test_1c_is_billable_for_romashka_and_included_for_vector(self, book):
        text = ("Ошибка в 1С", "Не формируется отчёт в 1С")
        assert classify(*text, book.get("romashka")).scope is Scope.BILLABLE
        assert classify(*text, book.get("vector")).scope is Scope.INCLUDED

    def test_buying_toner_is_excluded(self, book):
        verdict = classify("Need toner", "We are out of toner for the printer", book.get("vector"))
        assert verdict.scope is Scope.EXCLUDED
        assert any("consumables" in r for r in verdict.reasons)

    def test_unknown_sender_needs_review(self):
        verdict = classify("Printer broken", "Help", None)
        assert verdict.scope is Scope.NEEDS_REVIEW
        assert verdict.language is Language.EN

    def test_unclear_text_needs_review(self, book):
        verdict = classify("Вопрос", "Добрый день", book.get("romashka"))
        assert verdict.category is Category.OTHER
        assert verdict.scope is Scope.NEEDS_REVIEW

    def test_urgency_raises_priority_and_says_why(self, book):
        verdict = classify("Срочно!", "Не работает интернет, весь офис стоит", book.get("romashka"))
        assert verdict.category is Category.NETWORK
        assert verdict.priority is Priority.P2
        assert any("P2" in r for r in verdict.reasons)

    def test_kind_from_wording(self, book):
        assert classify("How do I map a printer?", "", book.get("vector")).kind is Kind.QUESTION
        assert classify("Please install Excel", "", book.get("vector")).kind is Kind.REQUEST

    def test_language_detection_falls_back_to_default(self):
        assert detect_language("12345", Language.RU) is Language.RU
        assert detect_language("hello world, мир", Language.RU) is Language.EN
