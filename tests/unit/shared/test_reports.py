"""The monthly client report: figures from events, and the HTML the director reads."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opora_shared.contracts import load_contract
from opora_shared.events import Actor, SlaArmed, SlaBreached, TicketUpdated
from opora_shared.reports import build_report, month_bounds, render_html
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
from opora_shared.vocabulary import Category, Kind, Priority, Scope, SlaTarget, TicketChange

CONTRACTS = Path(__file__).resolve().parents[3] / "deploy" / "contracts"
ROMASHKA = load_contract(CONTRACTS / "romashka.yml")
VECTOR = load_contract(CONTRACTS / "vector.yml")
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ENGINEER = Actor(kind="engineer", id="maria")


def ticket(at, *, tenant="romashka", subject="Принтер не печатает", **classified):
    received = make_ticket_received(tenant=tenant, occurred_at=at, subject=subject)
    verdict = make_ticket_classified(
        tenant=tenant,
        ticket_id=received.ticket_id,
        occurred_at=at + timedelta(seconds=1),
        received_at=at,
        **classified,
    )
    return received, verdict


def armed(received, priority, *, at=None):
    at = at or received.occurred_at + timedelta(seconds=2)
    return SlaArmed(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant=received.tenant,
        ticket_id=received.ticket_id,
        priority=priority,
        first_response_due=at + timedelta(minutes=30),
        resolution_due=at + timedelta(hours=8),
        timezone="Europe/Moscow",
    )


def update(received, change, after, **fields):
    return TicketUpdated(
        event_id=uuid.uuid4(),
        occurred_at=received.occurred_at + after,
        tenant=received.tenant,
        ticket_id=received.ticket_id,
        change=change,
        actor=fields.pop("actor", ENGINEER),
        **fields,
    )


def breach(received, target, after):
    return SlaBreached(
        event_id=uuid.uuid4(),
        occurred_at=received.occurred_at + after,
        tenant=received.tenant,
        ticket_id=received.ticket_id,
        target=target,
        due_at=received.occurred_at + after,
        late_by_s=0.2,
    )


@pytest.fixture
def november():
    """Four Romashka tickets in November 2026, one in October, one of Vector's."""
    events = []
    t1, c1 = ticket(datetime(2026, 11, 2, 7, 0, tzinfo=UTC), priority=Priority.P2)
    events += [t1, c1, armed(t1, Priority.P2)]
    events += [update(t1, TicketChange.ACKNOWLEDGED, timedelta(minutes=10))]
    events += [update(t1, TicketChange.RESOLVED, timedelta(hours=3))]
    t2, c2 = ticket(
        datetime(2026, 11, 10, 8, 0, tzinfo=UTC),
        subject="<b>Купить картриджи</b>",
        category=Category.PRINTING,
        scope=Scope.EXCLUDED,
        priority=Priority.P4,
    )
    events += [t2, c2, armed(t2, Priority.P4)]
    events += [
        update(
            t2,
            TicketChange.DECLINED,
            timedelta(hours=1),
            actor=Actor(kind="client", id="director@romashka.ru"),
        )
    ]
    t3, c3 = ticket(
        datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        subject="Отчёт в 1С",
        category=Category.ACCOUNTING_SOFTWARE,
        scope=Scope.BILLABLE,
        priority=Priority.P3,
    )
    events += [t3, c3, armed(t3, Priority.P3)]
    events += [
        update(
            t3,
            TicketChange.APPROVED,
            timedelta(minutes=30),
            actor=Actor(kind="client", id="director@romashka.ru"),
        )
    ]
    events += [update(t3, TicketChange.REPLIED, timedelta(hours=3), time_spent_minutes=90)]
    events += [breach(t3, SlaTarget.FIRST_RESPONSE, timedelta(hours=2))]
    events += [update(t3, TicketChange.RESOLVED, timedelta(days=1), time_spent_minutes=60)]
    t4, c4 = ticket(
        datetime(2026, 11, 30, 21, 30, tzinfo=UTC),  # 1 December in Moscow: not November
        category=Category.MONITORING,
        kind=Kind.ALERT,
        priority=Priority.P2,
    )
    events += [t4, c4]
    t5, c5 = ticket(
        datetime(2026, 11, 25, 3, 0, tzinfo=UTC), category=Category.MONITORING, kind=Kind.ALERT
    )
    events += [t5, c5, armed(t5, Priority.P3)]
    t0, c0 = ticket(datetime(2026, 10, 30, 10, 0, tzinfo=UTC))
    events += [t0, c0, update(t0, TicketChange.RESOLVED, timedelta(days=5))]
    tv, cv = ticket(datetime(2026, 11, 5, 10, 0, tzinfo=UTC), tenant="vector")
    events += [tv, cv]
    return events


class TestMonthBounds:
    def test_the_month_is_the_contracts_not_utcs(self):
        start, end = month_bounds("2026-11", "Europe/Moscow")
        assert start == datetime(2026, 10, 31, 21, 0, tzinfo=UTC)
        assert end == datetime(2026, 11, 30, 21, 0, tzinfo=UTC)

    def test_december_rolls_into_the_next_year(self):
        assert month_bounds("2026-12", "UTC")[1] == datetime(2027, 1, 1, tzinfo=UTC)

    @pytest.mark.parametrize("month", ["2026-13", "26-11", "November"])
    def test_a_bad_month_names_the_format(self, month):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_bounds(month, "UTC")


class TestBuild:
    def test_counts_only_this_tenants_tickets_received_in_the_month(self, november):
        report = build_report(ROMASHKA, "2026-11", november, now=NOW)
        assert report.tickets == 4
        assert report.resolved == 2
        assert report.open == 2
        assert sum(report.per_day.values()) == 4
        assert len(report.per_day) == 30
        assert report.by_scope == {"included": 2, "billable": 1, "excluded": 1}
        assert report.proactive == 1

    def test_sla_rows_say_met_and_breached_per_priority(self, november):
        report = build_report(ROMASHKA, "2026-11", november, now=NOW)
        rows = {row.priority: row for row in report.sla}
        assert rows[Priority.P2].first_response_met == 1
        assert rows[Priority.P2].median_first_response_min == 10.0
        assert rows[Priority.P2].resolution_kept == 1.0
        assert rows[Priority.P3].first_response_breached == 1
        assert rows[Priority.P3].first_response_kept == 0.0
        assert rows[Priority.P3].median_resolution_h == 24.0

    def test_billable_work_lists_who_asked_the_decision_and_time_spent(self, november):
        report = build_report(ROMASHKA, "2026-11", november, now=NOW)
        items = {item.subject: item for item in report.billable}
        assert items["Отчёт в 1С"].decision == "approved"
        assert items["Отчёт в 1С"].minutes_spent == 150
        assert items["<b>Купить картриджи</b>"].decision == "declined"
        assert report.billable_minutes_approved == 150
        assert report.prepaid_hours is None

    def test_a_prepaid_block_shows_hours_used_left_and_overrun(self, november):
        contract = ROMASHKA.model_copy(update={"prepaid_hours_per_month": 2.0})
        report = build_report(contract, "2026-11", november, now=NOW)
        assert report.prepaid_hours_used == 2.5
        assert report.prepaid_hours_left == 0.0
        assert report.prepaid_overrun == 0.5

    def test_an_empty_month_is_a_report_of_zeros(self):
        report = build_report(VECTOR, "2026-02", [], now=NOW)
        assert (report.tickets, report.sla, report.billable) == (0, (), ())
        assert len(report.per_day) == 28


class TestRender:
    def test_russian_for_romashka_with_charts_and_escaped_text(self, november):
        html = render_html(build_report(ROMASHKA, "2026-11", november, now=NOW))
        assert '<html lang="ru">' in html
        assert "Отчёт об обслуживании" in html
        assert "ООО «Ромашка»" in html
        assert "согласовано" in html
        assert "&lt;b&gt;Купить картриджи&lt;/b&gt;" in html
        assert "<b>Купить" not in html
        assert html.count('<rect class="bar"') >= 30
        assert "<script" not in html

    def test_english_for_vector_and_no_billable_line(self):
        html = render_html(build_report(VECTOR, "2026-11", [], now=NOW))
        assert '<html lang="en">' in html
        assert "No work outside the contract this month." in html

    def test_prepaid_block_is_shown_when_the_contract_has_one(self, november):
        contract = ROMASHKA.model_copy(update={"prepaid_hours_per_month": 2.0})
        html = render_html(build_report(contract, "2026-11", november, now=NOW))
        assert "Предоплаченный пакет часов" in html
        assert "сверх пакета 0.5" in html
