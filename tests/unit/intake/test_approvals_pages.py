"""The approver's pages: language, escaping, and that only the confirmation has a button."""

from datetime import UTC, datetime

import pytest

from opora_intake.approval_pages import WORDS, confirm_page, decided_page, error_page, recorded_page
from opora_shared.vocabulary import Language, Scope, TicketChange


def test_every_phrase_exists_in_both_languages():
    assert set(WORDS[Language.RU]) == set(WORDS[Language.EN])


@pytest.mark.parametrize(
    ("language", "button"), [(Language.RU, "Согласовать"), (Language.EN, "Approve")]
)
def test_confirmation_has_the_ticket_the_decision_and_a_post_button(language, button):
    page = confirm_page(
        language,
        ticket_id="1042",
        subject="Установить 1С на новый ноутбук",
        scope=Scope.BILLABLE,
        decision="approve",
        action="./TOKEN",
    )
    assert f'<html lang="{language.value}">' in page
    assert "#1042" in page
    assert "Установить 1С на новый ноутбук" in page
    assert '<form method="post" action="./TOKEN">' in page
    assert button in page
    assert WORDS[language]["scope_billable"] in page


def test_decline_link_shows_the_decline_button():
    page = confirm_page(
        Language.EN, ticket_id="7", subject="s", scope=None, decision="decline", action="./t"
    )
    assert "Decline" in page
    assert "Approve" not in page


def test_the_subject_is_escaped():
    page = confirm_page(
        Language.EN,
        ticket_id="7",
        subject='<script>alert("x")</script>',
        scope=None,
        decision="approve",
        action="./t",
    )
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_thanks_and_decided_pages_have_no_form():
    thanks = recorded_page(Language.RU, ticket_id="7", subject="s", decision=TicketChange.DECLINED)
    assert "отклонено" in thanks
    assert "<form" not in thanks
    decided = decided_page(
        Language.EN,
        ticket_id="7",
        subject="s",
        decision=TicketChange.APPROVED,
        decided_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        timezone="Europe/Moscow",
    )
    assert "approved (2026-03-02 12:30 Europe/Moscow)" in decided
    assert "<form" not in decided


def test_an_error_without_a_known_language_speaks_both():
    page = error_page(None, "the approval link has expired")
    assert "Ссылка не сработала / The link did not work" in page
    assert "the approval link has expired" in page
