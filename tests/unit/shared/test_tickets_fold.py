import uuid
from datetime import UTC, datetime, timedelta

import pytest

from opora_shared.errors import TicketNotFoundError
from opora_shared.events import (
    Actor,
    NotificationSent,
    SlaArmed,
    SlaBreached,
    TicketAssigned,
    TicketClassified,
    TicketUpdated,
)
from opora_shared.testing.factories import make_ticket_received
from opora_shared.tickets import fold
from opora_shared.vocabulary import (
    Category,
    Kind,
    Language,
    Priority,
    Scope,
    SlaTarget,
    TicketChange,
    TicketStatus,
)

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def envelope(received, minutes: int):
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": T0 + timedelta(minutes=minutes),
        "tenant": received.tenant,
        "ticket_id": received.ticket_id,
    }


def history():
    received = make_ticket_received(occurred_at=T0)
    classified = TicketClassified(
        **envelope(received, 1),
        category=Category.PRINTING,
        kind=Kind.INCIDENT,
        scope=Scope.INCLUDED,
        priority=Priority.P3,
        language=Language.RU,
        confidence=0.8,
        reasons=("'принтер' → printing",),
        contract_revision="abc",
        classifier_version="t",
        received_at=T0,
    )
    armed = SlaArmed(
        **envelope(received, 1),
        priority=Priority.P3,
        first_response_due=T0 + timedelta(hours=2),
        resolution_due=T0 + timedelta(hours=27),
        timezone="Europe/Moscow",
    )
    sent = NotificationSent(
        **envelope(received, 2),
        notification_id="n1",
        trigger="acknowledgement",
        channel="outbox",
        recipient="anna@romashka.ru",
        message_id="<n1@opora.local>",
    )
    return received, classified, armed, sent


def update(received, minutes, change, **extra):
    return TicketUpdated(
        **envelope(received, minutes),
        change=change,
        actor=Actor(kind="engineer", id="maria@opora.local"),
        **extra,
    )


class TestFold:
    def test_received_only_is_new(self):
        received, *_ = history()
        view = fold([received])
        assert view.status is TicketStatus.NEW
        assert view.classification is None
        assert view.sla is None
        assert view.assignee is None
        assert view.approval is None

    def test_classified_armed_and_acknowledged(self):
        received, classified, armed, sent = history()
        view = fold([received, classified, armed, sent])
        assert view.status is TicketStatus.OPEN
        assert view.classification.category is Category.PRINTING
        assert view.classification.reasons == ["'принтер' → printing"]
        assert view.sla.first_response_due == T0 + timedelta(hours=2)
        assert view.sla.state == "running"
        assert [n.outcome for n in view.notifications] == ["sent"]
        assert [e["type"] for e in view.events] == [
            "ticket.received",
            "ticket.classified",
            "sla.armed",
            "notification.sent",
        ]
        assert view.updated_at == T0 + timedelta(minutes=2)

    def test_without_the_events_the_view_is_the_same_but_for_them(self):
        events = list(history())
        whole, lean = fold(events), fold(events, with_events=False)
        assert len(whole.events) == 4
        assert lean.events == []
        assert lean.model_dump(exclude={"events"}) == whole.model_dump(exclude={"events"})

    def test_lifecycle_statuses(self):
        received, classified, armed, _ = history()
        events = [received, classified, armed]
        steps = [
            (TicketChange.ACKNOWLEDGED, TicketStatus.IN_PROGRESS),
            (TicketChange.WAITING_ON_CLIENT, TicketStatus.WAITING_ON_CLIENT),
            (TicketChange.CLIENT_REPLIED, TicketStatus.IN_PROGRESS),
            (TicketChange.RESOLVED, TicketStatus.RESOLVED),
            (TicketChange.REOPENED, TicketStatus.OPEN),
        ]
        for minute, (change, status) in enumerate(steps, start=10):
            events.append(update(received, minute, change))
            assert fold(events).status is status, change
        view = fold(events)
        assert view.sla.first_response_at == T0 + timedelta(minutes=10)

    def test_priority_change_and_breach(self):
        received, classified, armed, _ = history()
        breached = SlaBreached(
            **envelope(received, 200),
            target=SlaTarget.FIRST_RESPONSE,
            due_at=T0 + timedelta(hours=2),
        )
        view = fold(
            [
                received,
                classified,
                armed,
                breached,
                update(received, 201, TicketChange.PRIORITY_CHANGED, priority=Priority.P1),
            ]
        )
        assert view.classification.priority is Priority.P1
        assert view.sla.breaches == [SlaTarget.FIRST_RESPONSE]

    def test_no_received_event_is_not_found(self):
        _, classified, *_ = history()
        with pytest.raises(TicketNotFoundError):
            fold([classified])


class TestRearm:
    def test_a_later_sla_armed_moves_deadlines_but_keeps_history(self):
        received, classified, armed, _ = history()
        ack = update(received, 5, TicketChange.ACKNOWLEDGED)
        later = SlaArmed(
            **envelope(received, 6),
            priority=Priority.P3,
            first_response_due=T0 + timedelta(hours=2),
            resolution_due=T0 + timedelta(hours=30),
            timezone="Europe/Moscow",
            generation=2,
        )
        view = fold([received, classified, armed, ack, later])
        assert view.sla.resolution_due == T0 + timedelta(hours=30)
        assert view.sla.state == "responded"
        assert view.sla.first_response_at == T0 + timedelta(minutes=5)


def assignment(received, minutes, assignee, rule, previous=None):
    return TicketAssigned(
        **envelope(received, minutes),
        assignee=assignee,
        assignee_email=f"{assignee}@opora.local",
        team="service-desk",
        priority=Priority.P2,
        rule=rule,
        previous_assignee=previous,
        reasons=("printing → service-desk", f"{assignee} takes it"),
    )


class TestAssignee:
    def test_the_latest_assignment_with_its_rule_and_reasons(self):
        received, classified, armed, _ = history()
        first = assignment(received, 2, "maria", "skill_least_load")
        view = fold([received, classified, armed, first])
        assert view.assignee.id == "maria"
        assert view.assignee.email == "maria@opora.local"
        assert view.assignee.team == "service-desk"
        assert view.assignee.rule == "skill_least_load"
        assert view.assignee.reasons == ["printing → service-desk", "maria takes it"]
        assert view.assignee.assigned_at == T0 + timedelta(minutes=2)
        moved = assignment(received, 600, "duty", "shift_end", previous="maria")
        view = fold([received, classified, armed, first, moved])
        assert (view.assignee.id, view.assignee.rule, view.assignee.previous) == (
            "duty",
            "shift_end",
            "maria",
        )


class TestApproval:
    def classified_as(self, scope: Scope):
        received, classified, _, _ = history()
        return received, classified.model_copy(update={"scope": scope})

    @pytest.mark.parametrize(
        ("scope", "approval"),
        [
            (Scope.BILLABLE, "requested"),
            (Scope.EXCLUDED, "requested"),
            (Scope.INCLUDED, None),
            (Scope.NEEDS_REVIEW, None),
        ],
    )
    def test_billable_or_excluded_work_waits_for_the_approver(self, scope, approval):
        received, classified = self.classified_as(scope)
        assert fold([received, classified]).approval == approval

    @pytest.mark.parametrize(
        ("change", "approval"),
        [(TicketChange.APPROVED, "approved"), (TicketChange.DECLINED, "declined")],
    )
    def test_the_decision_is_recorded(self, change, approval):
        received, classified = self.classified_as(Scope.BILLABLE)
        view = fold([received, classified, update(received, 30, change)])
        assert view.approval == approval

    def test_a_decision_outlives_a_later_classification(self):
        received, classified = self.classified_as(Scope.BILLABLE)
        approved = update(received, 30, TicketChange.APPROVED)
        again = classified.model_copy(update={"event_id": uuid.uuid4()})
        assert fold([received, classified, approved, again]).approval == "approved"

    def test_a_reclassification_as_included_withdraws_the_request(self):
        received, classified = self.classified_as(Scope.BILLABLE)
        included = classified.model_copy(update={"scope": Scope.INCLUDED})
        assert fold([received, classified, included]).approval is None
