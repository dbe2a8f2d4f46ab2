"""Factories for the notifier's unit tests: the demo contracts and team, tickets as events."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opora_notifier.planning import Links, Planner, Reach, TicketFacts
from opora_shared.approvals import ApprovalSigner
from opora_shared.contracts import Contract, ContractBook
from opora_shared.events import (
    Actor,
    Event,
    Requester,
    SlaArmed,
    SlaBreached,
    SlaWarning,
    TicketAssigned,
    TicketClassified,
    TicketEscalated,
    TicketReceived,
    TicketUpdated,
)
from opora_shared.status_links import StatusLinks
from opora_shared.team import Team, load_team
from opora_shared.vocabulary import (
    Category,
    Channel,
    Kind,
    Language,
    Priority,
    Scope,
    SlaTarget,
    TicketChange,
)

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
"""Thursday 26 November 2026, 10:00 in Moscow: everyone is on shift."""
NIGHT = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
"""Friday 02:00 in Moscow: the day shift is off, on-duty is not."""
SIGNER = ApprovalSigner(b"unit-test-signing-key-0123456789")
STATUS = StatusLinks(b"unit-test-signing-key-0123456789")
LINKS = Links(
    public_url="https://support.example.com",
    ticket_url="{public_url}/tickets/{tenant}/{ticket_id}",
    mail_domain="opora.local",
    sign=SIGNER.sign,
    status_token=STATUS.sign,
)


@dataclass
class Ticket:
    """A ticket told as events, built up by the test."""

    tenant: str = "romashka"
    ticket_id: str = "1042"
    subject: str = "Принтер не печатает"
    body: str = "Замяло бумагу в принтере на втором этаже"
    requester: str = "anna@romashka.ru"
    name: str | None = "Анна"
    message_id: str | None = "<client-1@romashka.ru>"
    channel: Channel = Channel.EMAIL
    events: list[Event] = field(default_factory=list)

    def received(self, at: datetime = NOW) -> "Ticket":
        self.events.append(
            TicketReceived(
                event_id=uuid.uuid4(),
                occurred_at=at,
                tenant=self.tenant,
                ticket_id=self.ticket_id,
                channel=self.channel,
                requester=Requester(email=self.requester, name=self.name),
                subject=self.subject,
                body=self.body,
                message_id=self.message_id,
            )
        )
        return self

    def classified(self, at: datetime = NOW, **overrides: Any) -> "Ticket":
        fields: dict[str, Any] = {
            "event_id": uuid.uuid4(),
            "occurred_at": at,
            "tenant": self.tenant,
            "ticket_id": self.ticket_id,
            "category": Category.PRINTING,
            "kind": Kind.INCIDENT,
            "scope": Scope.INCLUDED,
            "priority": Priority.P3,
            "language": Language.RU,
            "confidence": 0.93,
            "received_at": at,
            "reasons": ("'принтер' → printing (93%)", "incident → P3"),
            "contract_revision": "test",
            "classifier_version": "test",
        }
        fields.update(overrides)
        self.events.append(TicketClassified(**fields))
        return self

    def armed(self, at: datetime = NOW, generation: int = 1, **overrides: Any) -> SlaArmed:
        fields: dict[str, Any] = {
            "event_id": uuid.uuid4(),
            "occurred_at": at,
            "tenant": self.tenant,
            "ticket_id": self.ticket_id,
            "priority": self.priority,
            "first_response_due": at + timedelta(hours=2),
            "resolution_due": at + timedelta(days=3),
            "timezone": "Europe/Moscow",
            "generation": generation,
        }
        fields.update(overrides)
        event = SlaArmed(**fields)
        self.events.append(event)
        return event

    def assigned(self, engineer: str = "maria", at: datetime = NOW) -> "Ticket":
        self.events.append(
            TicketAssigned(
                event_id=uuid.uuid4(),
                occurred_at=at,
                tenant=self.tenant,
                ticket_id=self.ticket_id,
                assignee=engineer,
                assignee_email=f"{engineer}@opora.local",
                priority=self.priority,
                rule="skill_least_load",
            )
        )
        return self

    def updated(
        self,
        change: TicketChange,
        *,
        text: str | None = None,
        actor: Actor | None = None,
        at: datetime = NOW,
    ) -> TicketUpdated:
        event = TicketUpdated(
            event_id=uuid.uuid4(),
            occurred_at=at,
            tenant=self.tenant,
            ticket_id=self.ticket_id,
            change=change,
            actor=actor or Actor(kind="engineer", id="maria"),
            text=text,
        )
        self.events.append(event)
        return event

    def warning(
        self, at: datetime = NOW, target: SlaTarget = SlaTarget.FIRST_RESPONSE
    ) -> SlaWarning:
        event = SlaWarning(
            event_id=uuid.uuid4(),
            occurred_at=at,
            tenant=self.tenant,
            ticket_id=self.ticket_id,
            target=target,
            due_at=at + timedelta(minutes=24),
            threshold=0.8,
        )
        self.events.append(event)
        return event

    def breached(self, at: datetime = NOW, target: SlaTarget = SlaTarget.RESOLUTION) -> SlaBreached:
        event = SlaBreached(
            event_id=uuid.uuid4(),
            occurred_at=at,
            tenant=self.tenant,
            ticket_id=self.ticket_id,
            target=target,
            due_at=at - timedelta(minutes=3),
        )
        self.events.append(event)
        return event

    def escalated(
        self, notify: tuple[str, ...] = ("lead@opora.local",), at: datetime = NOW
    ) -> TicketEscalated:
        event = TicketEscalated(
            event_id=uuid.uuid4(),
            occurred_at=at,
            tenant=self.tenant,
            ticket_id=self.ticket_id,
            level=2,
            target=SlaTarget.FIRST_RESPONSE,
            notify=notify,
            reason="first_response breach of first_response",
        )
        self.events.append(event)
        return event

    @property
    def priority(self) -> Priority:
        for event in reversed(self.events):
            if isinstance(event, TicketClassified):
                return event.priority
        return Priority.P3

    @property
    def facts(self) -> TicketFacts:
        return TicketFacts.from_events(self.events)


@pytest.fixture(scope="session")
def book() -> ContractBook:
    return ContractBook.from_dir(ROOT / "deploy" / "contracts")


@pytest.fixture(scope="session")
def romashka(book) -> Contract:
    return book.get("romashka")


@pytest.fixture(scope="session")
def vector(book) -> Contract:
    return book.get("vector")


@pytest.fixture(scope="session")
def team() -> Team:
    return load_team(ROOT / "deploy" / "team.yml")


@pytest.fixture
def planner(team) -> Planner:
    return Planner(team=team, reach=Reach(), links=LINKS)


@pytest.fixture
def ticket() -> Ticket:
    """Romashka's ticket 1042 from anna@romashka.ru, no events yet."""
    return Ticket()


@pytest.fixture
def make_ticket():
    """Another ticket: ``make_ticket(tenant="vector", requester=...)``."""
    return Ticket


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def night() -> datetime:
    return NIGHT


@pytest.fixture
def links() -> Links:
    return LINKS


@pytest.fixture
def signer() -> ApprovalSigner:
    return SIGNER


@pytest.fixture
def status_links() -> StatusLinks:
    return STATUS
