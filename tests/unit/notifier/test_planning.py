from urllib.parse import urlsplit

import pytest

from opora_notifier.notices import Audience, Medium, Trigger
from opora_notifier.planning import Planner, Reach, scope_basis
from opora_shared.events import Actor, derive_id
from opora_shared.mail_ids import outbound_message_id, parse_outbound
from opora_shared.team import ChatHandles
from opora_shared.vocabulary import (
    Category,
    Channel,
    Language,
    Priority,
    Scope,
    SlaTarget,
    TicketChange,
)


def who(notices):
    return [(n.trigger, n.recipient.medium, n.recipient.key) for n in notices]


class TestNewTicket:
    def test_an_included_p3_ticket_is_only_acknowledged(self, planner, ticket, romashka):
        armed = ticket.received().classified().armed()
        notices = planner.armed(ticket.facts, romashka, armed)
        assert who(notices) == [(Trigger.ACKNOWLEDGEMENT, Medium.EMAIL, "anna@romashka.ru")]
        ack = notices[0]
        assert ack.recipient.audience is Audience.CLIENT
        assert ack.recipient.language is Language.RU
        assert ack.references == ("<client-1@romashka.ru>",)
        assert ack.context["deadline"]["first_response"] == "26.11.2026 12:00 (Europe/Moscow)"

    def test_the_acknowledgement_keeps_its_walking_skeleton_id(self, planner, ticket, romashka):
        armed = ticket.received().classified().armed()
        (ack,) = planner.armed(ticket.facts, romashka, armed)
        assert ack.notification_id == str(derive_id("1042", "acknowledgement", "anna@romashka.ru"))

    def test_billable_work_asks_the_approver_with_two_signed_links(
        self, planner, ticket, romashka, signer
    ):
        ticket.received().classified(
            scope=Scope.BILLABLE,
            category=Category.ACCOUNTING_SOFTWARE,
            reasons=("accounting_software is billable in ООО «Ромашка»'s contract",),
        )
        notices = planner.armed(ticket.facts, romashka, ticket.armed())
        assert who(notices) == [
            (Trigger.ACKNOWLEDGEMENT, Medium.EMAIL, "anna@romashka.ru"),
            (Trigger.APPROVAL_REQUEST, Medium.EMAIL, "director@romashka.ru"),
        ]
        ack, request = notices
        assert ack.context["approver_asked"] is True
        assert request.recipient.audience is Audience.CLIENT
        claims = {}
        for key in ("approve_url", "decline_url"):
            url = urlsplit(request.context[key])
            assert url.netloc == "support.example.com"
            assert url.path.startswith("/v1/approvals/")
            claims[key] = signer.verify(url.path.rsplit("/", 1)[1])
        assert claims["approve_url"].decision == "approve"
        assert claims["decline_url"].decision == "decline"
        assert {(c.tenant, c.ticket_id, c.approver) for c in claims.values()} == {
            ("romashka", "1042", "director@romashka.ru")
        }

    def test_excluded_work_asks_too_in_the_contracts_language(self, planner, make_ticket, vector):
        ticket = make_ticket(tenant="vector", requester="bob@vector-logistics.com", name=None)
        ticket.received().classified(scope=Scope.EXCLUDED, language=Language.EN)
        notices = planner.armed(ticket.facts, vector, ticket.armed())
        request = notices[1]
        assert request.trigger is Trigger.APPROVAL_REQUEST
        assert request.recipient.address == "it-manager@vector-logistics.com"
        assert request.recipient.language is Language.EN

    def test_without_a_signing_key_nobody_is_asked_and_the_ack_does_not_say_so(
        self, team, ticket, romashka, links
    ):
        unsigned = Planner(
            team=team, reach=Reach(), links=type(links)(links.public_url, links.ticket_url, "x")
        )
        ticket.received().classified(scope=Scope.BILLABLE)
        notices = unsigned.armed(ticket.facts, romashka, ticket.armed())
        assert [n.trigger for n in notices] == [Trigger.ACKNOWLEDGEMENT]
        assert notices[0].context["approver_asked"] is False

    @pytest.mark.parametrize("priority", [Priority.P1, Priority.P2])
    def test_p1_and_p2_page_the_on_duty_engineer_after_the_ack(
        self, planner, ticket, romashka, priority
    ):
        ticket.received().classified(priority=priority)
        notices = planner.armed(ticket.facts, romashka, ticket.armed())
        assert who(notices) == [
            (Trigger.ACKNOWLEDGEMENT, Medium.EMAIL, "anna@romashka.ru"),
            (Trigger.PAGE, Medium.EMAIL, "duty@opora.local"),
        ]
        page = notices[1]
        assert page.urgent
        assert page.recipient.audience is Audience.TEAM
        assert page.references == (outbound_message_id("1042", "thread", "opora.local"),)
        assert parse_outbound(page.references[0], "opora.local") == ("1042", "thread")

    def test_a_ticket_raised_to_p1_later_is_paged_with_the_same_id(
        self, planner, ticket, romashka, now
    ):
        ticket.received().classified(priority=Priority.P1)
        first = planner.armed(ticket.facts, romashka, ticket.armed())
        rearmed = ticket.armed(generation=3, priority=Priority.P1)
        again = planner.armed(ticket.facts, romashka, rearmed)
        assert [n.trigger for n in again] == [Trigger.PAGE]
        assert again[0].notification_id == first[1].notification_id

    def test_a_rearmed_p3_ticket_sends_nothing(self, planner, ticket, romashka):
        ticket.received().classified()
        ticket.armed()
        assert planner.armed(ticket.facts, romashka, ticket.armed(generation=2)) == []

    def test_needs_review_goes_to_the_team_lead(self, planner, ticket, romashka):
        ticket.received().classified(scope=Scope.NEEDS_REVIEW, confidence=0.41)
        notices = planner.armed(ticket.facts, romashka, ticket.armed())
        review = notices[-1]
        assert (review.trigger, review.recipient.key) == (Trigger.NEEDS_REVIEW, "lead@opora.local")
        assert review.context["confidence"] == 41
        assert review.context["known_sender"] is True

    def test_an_unknown_sender_is_acknowledged_without_deadline_and_reviewed(
        self, planner, make_ticket
    ):
        ticket = make_ticket(tenant="unknown", requester="x@gmail.com", name=None)
        ticket.received().classified(scope=Scope.NEEDS_REVIEW)
        classified = ticket.events[-1]
        notices = planner.unknown_sender(ticket.facts, classified)
        assert who(notices) == [
            (Trigger.ACKNOWLEDGEMENT, Medium.EMAIL, "x@gmail.com"),
            (Trigger.NEEDS_REVIEW, Medium.EMAIL, "lead@opora.local"),
        ]
        assert notices[0].context["deadline"]["first_response"] is None
        assert notices[0].context["known_sender"] is False
        assert notices[1].context["known_sender"] is False


class TestLinks:
    def test_the_client_gets_the_signed_status_page_engineers_the_configured_page(
        self, planner, ticket, romashka, status_links
    ):
        ticket.received().classified(priority=Priority.P1)
        ack, page = planner.armed(ticket.facts, romashka, ticket.armed())
        status = urlsplit(ack.context["ticket"]["status_url"])
        assert (status.netloc, status.path.rsplit("/", 2)[1]) == ("support.example.com", "status")
        assert status_links.verify(status.path.rsplit("/", 1)[1]) == ("romashka", "1042")
        assert page.context["ticket"]["open_url"] == (
            "https://support.example.com/tickets/romashka/1042"
        )

    def test_without_a_configured_page_engineers_open_the_status_page(self, links):
        plain = type(links)(
            links.public_url, "", links.mail_domain, status_token=lambda t, i: f"{t}-{i}"
        )
        assert plain.open("romashka", "7") == "https://support.example.com/status/romashka-7"


class TestChannelsOfPeople:
    def test_chat_handles_and_the_webhook_when_configured(self, team, ticket, romashka, links):
        duty = team.duty().model_copy(
            update={"chat": ChatHandles(telegram_chat_id="-100777", slack_channel="@duty")}
        )
        team = team.model_copy(
            update={"engineers": tuple(duty if e.id == "duty" else e for e in team.engineers)}
        )
        planner = Planner(
            team=team, reach=Reach(telegram=True, slack=True, webhook=True), links=links
        )
        ticket.received().classified(priority=Priority.P1)
        notices = planner.armed(ticket.facts, romashka, ticket.armed())
        assert who(notices)[1:] == [
            (Trigger.PAGE, Medium.EMAIL, "duty@opora.local"),
            (Trigger.PAGE, Medium.TELEGRAM, "telegram:-100777"),
            (Trigger.PAGE, Medium.SLACK, "slack:@duty"),
            (Trigger.PAGE, Medium.WEBHOOK, "webhook:default"),
        ]
        assert notices[-1].recipient.audience is Audience.INTEGRATION
        assert len({n.notification_id for n in notices}) == len(notices)

    def test_chat_handles_are_ignored_when_the_channel_is_not_configured(
        self, team, ticket, romashka, links
    ):
        duty = team.duty().model_copy(update={"chat": ChatHandles(telegram_chat_id="1")})
        team = team.model_copy(
            update={"engineers": tuple(duty if e.id == "duty" else e for e in team.engineers)}
        )
        planner = Planner(team=team, reach=Reach(), links=links)
        ticket.received().classified(priority=Priority.P1)
        media = {n.recipient.medium for n in planner.armed(ticket.facts, romashka, ticket.armed())}
        assert media == {Medium.EMAIL}


class TestSlaAlerts:
    def test_a_warning_goes_to_the_assignee_with_their_shift(self, planner, ticket, romashka):
        ticket.received().classified().assigned("maria")
        ticket.armed()
        (alert,) = planner.sla_warning(ticket.facts, romashka, ticket.warning())
        assert (alert.trigger, alert.recipient.key) == (Trigger.SLA_WARNING, "maria@opora.local")
        assert alert.recipient.shift is not None
        assert alert.recipient.shift.timezone == "Europe/Moscow"
        assert not alert.urgent
        assert alert.context["left"] == "24 мин"
        assert alert.context["target"] == "first_response"

    def test_without_an_assignee_the_on_duty_engineer_hears(self, planner, ticket, romashka):
        ticket.received().classified(priority=Priority.P2)
        ticket.armed()
        (alert,) = planner.sla_warning(ticket.facts, romashka, ticket.warning())
        assert alert.recipient.key == "duty@opora.local"
        assert alert.urgent

    def test_each_warning_is_its_own_notification(self, planner, ticket, romashka):
        ticket.received().classified().assigned()
        ticket.armed()
        first = planner.sla_warning(ticket.facts, romashka, ticket.warning())
        second = planner.sla_warning(
            ticket.facts, romashka, ticket.warning(target=SlaTarget.RESOLUTION)
        )
        assert first[0].notification_id != second[0].notification_id

    def test_a_breach_goes_to_the_owner_and_says_how_late(self, planner, ticket, romashka):
        ticket.received().classified().assigned("alexey")
        ticket.armed()
        (alert,) = planner.sla_breached(ticket.facts, romashka, ticket.breached())
        assert alert.recipient.key == "alexey@opora.local"
        assert alert.context["late"] == "3 мин"

    def test_an_escalation_reaches_the_levels_people_by_address_or_role(
        self, planner, ticket, romashka
    ):
        ticket.received().classified(priority=Priority.P1)
        ticket.armed()
        event = ticket.escalated(("lead@opora.local", "account_manager", "cto@romashka.ru"))
        notices = planner.escalated(ticket.facts, romashka, event)
        assert [n.recipient.key for n in notices] == [
            "lead@opora.local",
            "am@opora.local",
            "cto@romashka.ru",
        ]
        assert all(n.urgent and n.cause == str(event.event_id) for n in notices)
        assert notices[0].recipient.shift is None  # the lead has no shift: never held


class TestUpdates:
    def test_an_engineers_reply_is_relayed_to_the_client_threaded(self, planner, ticket, romashka):
        ticket.received().classified()
        ticket.armed()
        event = ticket.updated(TicketChange.REPLIED, text="Перезагрузите принтер, пожалуйста.")
        (reply,) = planner.updated(ticket.facts, romashka, event)
        assert (reply.trigger, reply.recipient.key) == (Trigger.REPLY, "anna@romashka.ru")
        assert reply.context["text"] == "Перезагрузите принтер, пожалуйста."
        assert reply.cause == str(event.event_id)
        assert not reply.automatic
        ack_id = derive_id("1042", "acknowledgement", "anna@romashka.ru")
        assert reply.references == (
            "<client-1@romashka.ru>",
            outbound_message_id("1042", str(ack_id), "opora.local"),
        )

    @pytest.mark.parametrize(
        ("change", "text", "actor"),
        [
            (TicketChange.NOTE, "внутренняя заметка", "engineer"),
            (TicketChange.REPLIED, "", "engineer"),
            (TicketChange.REPLIED, "a reply", "service"),
            (TicketChange.CLIENT_REPLIED, "спасибо", "client"),
            (TicketChange.ACKNOWLEDGED, None, "engineer"),
            (TicketChange.WAITING_ON_CLIENT, None, "engineer"),
            (TicketChange.REOPENED, None, "client"),
            (TicketChange.AUTOMATIC_REPLY, "Я в отпуске", "client"),
        ],
    )
    def test_nothing_else_reaches_the_client(self, planner, ticket, romashka, change, text, actor):
        ticket.received().classified()
        event = ticket.updated(change, text=text, actor=Actor(kind=actor, id="x"))
        assert planner.updated(ticket.facts, romashka, event) == []

    def test_waiting_on_the_client_carries_the_question(self, planner, ticket, romashka):
        ticket.received().classified()
        event = ticket.updated(TicketChange.WAITING_ON_CLIENT, text="Пришлите фото ошибки")
        (notice,) = planner.updated(ticket.facts, romashka, event)
        assert notice.trigger is Trigger.WAITING_ON_CLIENT
        assert notice.context["text"] == "Пришлите фото ошибки"

    def test_every_resolution_is_told_with_or_without_a_note(self, planner, ticket, romashka):
        ticket.received().classified()
        first = planner.updated(ticket.facts, romashka, ticket.updated(TicketChange.RESOLVED))
        ticket.updated(TicketChange.REOPENED)
        second = planner.updated(
            ticket.facts, romashka, ticket.updated(TicketChange.RESOLVED, text="Заменили ролик")
        )
        assert first[0].context["text"] is None
        assert second[0].context["text"] == "Заменили ролик"
        assert first[0].notification_id != second[0].notification_id

    def test_a_decision_goes_to_the_requester_and_the_assignee(self, planner, ticket, romashka):
        ticket.received().classified(scope=Scope.BILLABLE).assigned("oleg")
        event = ticket.updated(
            TicketChange.APPROVED, actor=Actor(kind="client", id="director@romashka.ru")
        )
        notices = planner.updated(ticket.facts, romashka, event)
        assert who(notices) == [
            (Trigger.APPROVAL_DECIDED, Medium.EMAIL, "anna@romashka.ru"),
            (Trigger.APPROVAL_OUTCOME, Medium.EMAIL, "oleg@opora.local"),
        ]
        assert {n.context["decision"] for n in notices} == {"approved"}


class TestIntegrationTickets:
    """A ticket an integration raised has a tool for requester: no client mail, ever."""

    @pytest.fixture
    def alert(self, make_ticket):
        return make_ticket(
            tenant="vector",
            requester="alertmanager@vector",
            name=None,
            message_id=None,
            channel=Channel.INTEGRATION,
            subject="[FIRING:1] HostDown srv-db01",
        )

    def test_a_p1_alert_pages_on_duty_without_acknowledging_the_tool(self, planner, alert, vector):
        alert.received().classified(priority=Priority.P1, category=Category.MONITORING)
        notices = planner.armed(alert.facts, vector, alert.armed())
        assert who(notices) == [(Trigger.PAGE, Medium.EMAIL, "duty@opora.local")]

    def test_a_p3_alert_sends_nothing_when_armed(self, planner, alert, vector):
        alert.received().classified(priority=Priority.P3, category=Category.MONITORING)
        assert planner.armed(alert.facts, vector, alert.armed()) == []

    @pytest.mark.parametrize(
        ("change", "text"),
        [
            (TicketChange.REPLIED, "Перезапустили сервис"),
            (TicketChange.WAITING_ON_CLIENT, "Какой сервер?"),
            (TicketChange.RESOLVED, "Диск расширен"),
        ],
    )
    def test_status_notices_are_not_mailed_to_the_tool(self, planner, alert, vector, change, text):
        alert.received().classified(category=Category.MONITORING)
        event = alert.updated(change, text=text)
        assert planner.updated(alert.facts, vector, event) == []

    def test_an_approval_reaches_the_assignee_only(self, planner, alert, vector):
        alert.received().classified(scope=Scope.BILLABLE, category=Category.MONITORING)
        alert.assigned("alexey")
        notices = planner.updated(alert.facts, vector, alert.updated(TicketChange.APPROVED))
        assert who(notices) == [(Trigger.APPROVAL_OUTCOME, Medium.EMAIL, "alexey@opora.local")]

    def test_the_same_ticket_by_mail_is_acknowledged(self, planner, make_ticket, vector):
        ticket = make_ticket(tenant="vector", requester="bob@vector-logistics.com")
        ticket.received().classified(category=Category.MONITORING)
        notices = planner.armed(ticket.facts, vector, ticket.armed())
        assert who(notices) == [(Trigger.ACKNOWLEDGEMENT, Medium.EMAIL, "bob@vector-logistics.com")]


class TestScopeBasis:
    def test_reads_the_condition_or_category_the_verdict_rests_on(self):
        assert scope_basis(["x → printing", "consumables is excluded in A's contract"]) == (
            "consumables"
        )
        assert (
            scope_basis(["personal device is excluded in ООО «Ромашка»'s contract"])
            == "personal_device"
        )
        assert scope_basis(["accounting_software is billable in B's contract"]) == (
            "accounting_software"
        )
        assert scope_basis(["incident → P3"]) is None
