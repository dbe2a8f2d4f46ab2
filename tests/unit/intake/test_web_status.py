"""The status page: what the client sees of a ticket, and what never reaches them."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from opora_intake.web import public_view, status_page, verdict_text
from opora_shared.events import (
    Actor,
    SlaArmed,
    SlaBreached,
    TicketAssigned,
    TicketEscalated,
    TicketUpdated,
)
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
from opora_shared.vocabulary import Language, Priority, Scope, SlaTarget, TicketChange

T0 = datetime(2025, 3, 12, 8, 0, tzinfo=UTC)  # 11:00 in Moscow
TICKET = "1042"
SECRET_NOTE = "Пароль админа qwerty, клиенту не говорить"
ENGINEER = "maria@opora.local"


def envelope(minutes: int) -> dict:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": T0 + timedelta(minutes=minutes),
        "tenant": "romashka",
        "ticket_id": TICKET,
    }


def update(minutes: int, change: TicketChange, text: str | None = None, **extra):
    return TicketUpdated(
        **envelope(minutes),
        change=change,
        actor=Actor(kind="engineer", id="maria"),
        text=text,
        **extra,
    )


def history(scope: Scope = Scope.INCLUDED) -> list:
    return [
        make_ticket_received(
            ticket_id=TICKET, occurred_at=T0, subject="Принтер не печатает", event_id=uuid.uuid4()
        ),
        make_ticket_classified(
            ticket_id=TICKET, occurred_at=T0 + timedelta(minutes=1), scope=scope
        ),
        SlaArmed(
            **envelope(2),
            priority=Priority.P3,
            first_response_due=T0 + timedelta(hours=2),
            resolution_due=T0 + timedelta(days=3),
            timezone="Europe/Moscow",
        ),
        TicketAssigned(
            **envelope(3),
            assignee="maria",
            assignee_email=ENGINEER,
            priority=Priority.P3,
            rule="skill_least_load",
            reasons=("printing is maria's skill",),
        ),
        update(10, TicketChange.ACKNOWLEDGED),
        update(11, TicketChange.NOTE, SECRET_NOTE),
        update(12, TicketChange.AUTOMATIC_REPLY, "Я в отпуске до понедельника"),
        update(20, TicketChange.REPLIED, "Перезагрузите принтер, пожалуйста"),
        SlaBreached(**envelope(30), target=SlaTarget.RESOLUTION, due_at=T0 + timedelta(minutes=29)),
        TicketEscalated(
            **envelope(31),
            level=2,
            target=SlaTarget.RESOLUTION,
            notify=("am@opora.local",),
            reason="resolution breach",
        ),
        update(40, TicketChange.CLIENT_REPLIED, "Перезагрузила, не помогло"),
    ]


class TestPublicView:
    def test_status_verdict_and_deadlines_in_the_contracts_timezone(self):
        view = public_view(history(), Language.RU, "Europe/Moscow")
        assert view.ticket_id == TICKET
        assert view.subject == "Принтер не печатает"
        assert view.status_text == "В работе"
        assert view.verdict == "Входит в ваш договор обслуживания"
        assert view.first_response == "дан 12 марта 2025, 11:10"
        assert view.resolution == "до 15 марта 2025, 11:00"
        assert view.engineer == "назначен"
        assert view.timezone == "Europe/Moscow"

    def test_history_shows_public_updates_in_order(self):
        view = public_view(history(), Language.EN, "Europe/Moscow")
        titles = [entry.title for entry in view.history]
        assert titles == [
            "Ticket received through the web form",
            "Checked against your contract",
            "Deadlines set",
            "An engineer is assigned",
            "An engineer took up the ticket",
            "Answer from support",
            "Your reply",
        ]
        texts = {entry.title: entry.text for entry in view.history}
        assert texts["Answer from support"] == "Перезагрузите принтер, пожалуйста"
        assert texts["Your reply"] == "Перезагрузила, не помогло"
        assert texts["Checked against your contract"] == "Covered by your support contract"
        assert view.history[0].when == "12 March 2025, 11:00"

    def test_notes_automatic_replies_escalations_and_addresses_never_show(self):
        page = status_page(public_view(history(), Language.RU, "Europe/Moscow"), Language.RU)
        for secret in (
            SECRET_NOTE,
            "отпуске",
            ENGINEER,
            "maria",
            "am@opora.local",
            "resolution breach",
            "printing is maria's skill",
            "anna@romashka.ru",
            "Замяло бумагу",
        ):
            assert secret not in page, secret

    @pytest.mark.parametrize(
        ("scope", "approval", "language", "text"),
        [
            (None, None, Language.EN, "Not decided yet"),
            (Scope.INCLUDED, None, Language.EN, "Covered by your support contract"),
            (
                Scope.BILLABLE,
                "requested",
                Language.RU,
                "Оплачивается отдельно: ждём согласия ответственного лица вашей компании",
            ),
            (
                Scope.BILLABLE,
                "approved",
                Language.EN,
                "Billed separately: approved by your company's approver",
            ),
            (
                Scope.EXCLUDED,
                "declined",
                Language.EN,
                "Not covered by your support contract: declined by your company's approver",
            ),
            (
                Scope.NEEDS_REVIEW,
                None,
                Language.RU,
                "Уточняется: руководитель проверит, входит ли работа в договор",
            ),
        ],
    )
    def test_verdict_in_plain_words(self, scope, approval, language, text):
        assert verdict_text(language, scope, approval) == text

    def test_billable_awaiting_then_approved(self):
        events = history(Scope.BILLABLE)
        assert public_view(events, Language.EN, None).verdict == (
            "Billed separately: awaiting your company approver's consent"
        )
        events.append(update(50, TicketChange.APPROVED))
        view = public_view(events, Language.EN, None)
        assert view.verdict == "Billed separately: approved by your company's approver"
        assert view.history[-1].title == "Work approved"

    def test_a_new_ticket_has_no_deadlines_yet(self):
        view = public_view([history()[0]], Language.EN, None)
        assert view.status_text == "Received, being sorted"
        assert view.verdict == "Not decided yet"
        assert view.first_response == "deadlines appear once the ticket is sorted"
        assert view.engineer == "not assigned yet"
        assert view.timezone == "UTC"

    def test_resolved_shows_when_and_the_resolution_note(self):
        events = [*history(), update(60, TicketChange.RESOLVED, "Заменили ролик подачи")]
        view = public_view(events, Language.RU, "Europe/Moscow")
        assert view.status_text == "Решена"
        assert view.resolution == "решена 12 марта 2025, 12:00"
        assert view.history[-1].title == "Заявка решена"
        assert view.history[-1].text == "Заменили ролик подачи"

    def test_waiting_on_client_shows_the_question(self):
        events = [*history(), update(60, TicketChange.WAITING_ON_CLIENT, "Пришлите фото ошибки")]
        view = public_view(events, Language.EN, None)
        assert view.status_text == "Waiting for your answer"
        assert view.history[-1].text == "Пришлите фото ошибки"

    def test_priority_change_and_rearm(self):
        events = [
            *history(),
            update(70, TicketChange.PRIORITY_CHANGED, priority=Priority.P2),
            SlaArmed(
                **envelope(71),
                priority=Priority.P2,
                first_response_due=T0 + timedelta(hours=1),
                resolution_due=T0 + timedelta(hours=9),
                timezone="Europe/Moscow",
                generation=2,
            ),
        ]
        view = public_view(events, Language.EN, "Europe/Moscow")
        assert [e.title for e in view.history[-2:]] == [
            "Urgency changed: high",
            "Deadlines recalculated",
        ]
        assert view.resolution == "by 12 March 2025, 20:00"

    def test_a_reassignment_is_not_news(self):
        events = history()
        events.append(
            TicketAssigned(
                **envelope(80),
                assignee="oleg",
                assignee_email="oleg@opora.local",
                priority=Priority.P3,
                rule="manual",
                previous_assignee="maria",
            )
        )
        view = public_view(events, Language.EN, None)
        assert [e.title for e in view.history].count("An engineer is assigned") == 1


class TestStatusPage:
    def test_page_has_language_title_and_escaped_texts(self):
        events = history()
        events.append(update(90, TicketChange.REPLIED, "<script>alert(1)</script>"))
        page = status_page(public_view(events, Language.EN, "Europe/Moscow"), Language.EN)
        assert '<html lang="en">' in page
        assert "<h1>Ticket #1042</h1>" in page
        assert "<script>" not in page
        assert "&lt;script&gt;" in page
        assert "Times are in the Europe/Moscow time zone." in page
        assert '<time datetime="2025-03-12T08:00:00+00:00">12 March 2025, 11:00</time>' in page
        assert 'href="../static/web.css"' in page
