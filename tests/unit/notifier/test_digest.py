"""The daily digest, pure: when a tenant's is due, who hears of which tickets, and its ids."""

from datetime import UTC, date, datetime

import pytest

from opora_notifier.digest import bundles, digest_day, due_at
from opora_notifier.notices import Medium, Trigger
from opora_shared.contracts import DigestPolicy
from opora_shared.events import Actor
from opora_shared.ticket_index import summarize
from opora_shared.tickets import fold
from opora_shared.vocabulary import Priority, TicketChange, TicketStatus

THURSDAY_0859_MSK = datetime(2026, 11, 26, 5, 59, tzinfo=UTC)
THURSDAY_0900_MSK = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
THURSDAY_2330_MSK = datetime(2026, 11, 26, 20, 30, tzinfo=UTC)
SATURDAY_1000_MSK = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


class TestWhenItIsDue:
    def test_from_its_local_time_on_and_for_that_local_day(self, romashka):
        policy = DigestPolicy(at="09:00")
        assert digest_day(policy, romashka.calendar, THURSDAY_0859_MSK) is None
        assert digest_day(policy, romashka.calendar, THURSDAY_0900_MSK) == date(2026, 11, 26)
        assert digest_day(policy, romashka.calendar, THURSDAY_2330_MSK) == date(2026, 11, 26)

    def test_the_local_day_not_the_utc_day(self, romashka):
        just_after_midnight_msk = datetime(2026, 11, 26, 21, 30, tzinfo=UTC)  # Fri 00:30 MSK
        policy = DigestPolicy(at="00:15")
        assert digest_day(policy, romashka.calendar, just_after_midnight_msk) == date(2026, 11, 27)

    def test_no_digest_on_a_day_off_unless_asked(self, romashka):
        assert digest_day(DigestPolicy(), romashka.calendar, SATURDAY_1000_MSK) is None
        every_day = DigestPolicy(business_days_only=False)
        assert digest_day(every_day, romashka.calendar, SATURDAY_1000_MSK) == date(2026, 11, 28)

    def test_due_at_is_the_local_time_of_that_day(self, romashka):
        due = due_at(DigestPolicy(at="09:30"), romashka.calendar, date(2026, 11, 26))
        assert due.astimezone(UTC) == datetime(2026, 11, 26, 6, 30, tzinfo=UTC)

    @pytest.mark.parametrize("at", ["9:00", "24:00", "09:60", "noon"])
    def test_a_bad_time_is_refused(self, at):
        with pytest.raises(ValueError, match="at"):
            DigestPolicy(at=at)


def summary(make_ticket, ticket_id, priority, assignee=None, change=None):
    ticket = make_ticket(ticket_id=ticket_id).received()
    ticket.classified(priority=priority)
    if assignee:
        ticket.assigned(assignee)
    if change:
        ticket.updated(change, actor=Actor(kind="engineer", id="maria"))
    return summarize(fold(ticket.events), ticket.events)


class TestWhoHearsOfWhat:
    @pytest.fixture
    def summaries(self, make_ticket):
        return [
            summary(make_ticket, "11", Priority.P4, "maria"),
            summary(make_ticket, "12", Priority.P3, "maria"),
            summary(make_ticket, "13", Priority.P3, "alexey", TicketChange.WAITING_ON_CLIENT),
            summary(make_ticket, "14", Priority.P3),  # nobody's
            summary(make_ticket, "15", Priority.P3, "ivan"),  # no longer in the team
            summary(make_ticket, "16", Priority.P1, "maria"),  # urgent: not in a digest
            summary(make_ticket, "17", Priority.P3, "maria", TicketChange.RESOLVED),
        ]

    def test_each_engineer_their_own_and_the_lead_what_is_nobodys(self, summaries, team):
        found = bundles(summaries, DigestPolicy(), team)
        assert [(b.person.id, [s.id for s in b.tickets], b.everyone) for b in found] == [
            ("maria", ["12", "11"], False),  # P3 before P4
            ("alexey", ["13"], False),
            ("lead", ["14", "15"], True),
        ]
        assert found[1].tickets[0].status is TicketStatus.WAITING_ON_CLIENT

    def test_to_the_lead_everything_in_one(self, summaries, team):
        (only,) = bundles(summaries, DigestPolicy(to="lead"), team)
        assert only.person.id == "lead"
        assert [s.id for s in only.tickets] == ["12", "13", "14", "15", "11"]

    def test_the_priorities_listed_are_the_contracts(self, summaries, team):
        found = bundles(summaries, DigestPolicy(priorities=(Priority.P4,)), team)
        assert [(b.person.id, [s.id for s in b.tickets]) for b in found] == [("maria", ["11"])]

    def test_nothing_open_nobody_hears(self, make_ticket, team):
        done = summary(make_ticket, "21", Priority.P3, "maria", TicketChange.RESOLVED)
        assert bundles([done], DigestPolicy(), team) == []


class TestDigestNotices:
    def test_once_per_tenant_person_and_day(self, planner, make_ticket, team, romashka):
        found = bundles([summary(make_ticket, "31", Priority.P3, "maria")], DigestPolicy(), team)
        thursday = planner.digest(romashka, found, date(2026, 11, 26), THURSDAY_0900_MSK)
        again = planner.digest(romashka, found, date(2026, 11, 26), THURSDAY_2330_MSK)
        friday = planner.digest(romashka, found, date(2026, 11, 27), THURSDAY_0900_MSK)
        (notice,) = thursday
        assert notice.trigger is Trigger.DIGEST
        assert notice.ticket_id == ""
        assert notice.recipient.medium is Medium.EMAIL
        assert notice.recipient.key == "maria@opora.local"
        assert notice.recipient.shift is None  # goes at the contract's time, never held
        assert not notice.urgent
        assert [n.notification_id for n in again] == [notice.notification_id]
        assert [n.notification_id for n in friday] != [notice.notification_id]

    def test_lists_each_ticket_with_its_link_and_deadline(self, planner, make_ticket, romashka):
        ticket = make_ticket(ticket_id="41").received()
        ticket.classified(priority=Priority.P3)
        ticket.armed()
        ticket.assigned("maria")
        ticket.breached()
        found = bundles(
            [summarize(fold(ticket.events), ticket.events)], DigestPolicy(), planner.team
        )
        (notice,) = planner.digest(romashka, found, date(2026, 11, 27), THURSDAY_0900_MSK)
        (line,) = notice.context["tickets"]
        assert line["id"] == "41"
        assert line["open_url"] == "https://support.example.com/tickets/romashka/41"
        assert line["breached"] is True
        assert line["resolution_due"] == "29.11.2026 10:00"
        assert line["assignee"] == "Мария"
        assert notice.context["digest"]["count"] == 1
        assert notice.context["digest"]["tenant_name"] == romashka.name
