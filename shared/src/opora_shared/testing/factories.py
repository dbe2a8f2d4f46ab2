"""Factories for tests: events and contracts with sensible defaults, overridable per field."""

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from opora_shared.contracts import Contract
from opora_shared.events import Requester, TicketClassified, TicketReceived
from opora_shared.vocabulary import Category, Channel, Kind, Language, Priority, Scope


def unique_ticket_id() -> str:
    """A ticket id no other test uses (random, 9 to 12 digits)."""
    return str(random.randint(10**8, 10**12 - 1))  # noqa: S311 - not security relevant


def make_ticket_received(**overrides: Any) -> TicketReceived:
    """A TicketReceived for Romashka about a printer, unless overridden."""
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "occurred_at": datetime.now(UTC),
        "tenant": "romashka",
        "ticket_id": unique_ticket_id(),
        "channel": Channel.WEB,
        "requester": Requester(email="anna@romashka.ru", name="Анна"),
        "subject": "Принтер не печатает",
        "body": "Замяло бумагу в принтере на втором этаже",
    }
    fields.update(overrides)
    return TicketReceived(**fields)


def make_contract(**overrides: Any) -> Contract:
    """A small valid contract (tenant ``acme``), overridable per field."""
    data: dict[str, Any] = {
        "tenant": "acme",
        "name": "ACME",
        "language": "en",
        "domains": ["acme.test"],
        "services": {"included": ["email", "printing"], "billable": ["accounting_software"]},
        "sla": {
            "first_response": {"P1": "15m", "P2": "30m", "P3": "2h", "P4": "8h"},
            "resolution": {"P1": "4h", "P2": "8h", "P3": "3d", "P4": "10d"},
            "round_the_clock": ["P1"],
        },
        "calendar": {"timezone": "Europe/Moscow", "hours": {"mon": ["09:00-18:00"]}},
        "escalation": [{"level": 1, "when": "assigned", "notify": ["duty@opora.local"]}],
        "approver": "boss@acme.test",
    }
    data.update(overrides)
    return Contract.model_validate(data)


def make_ticket_classified(**overrides: Any) -> TicketClassified:
    """A TicketClassified (network incident, P3, received now), overridable per field."""
    now = overrides.get("occurred_at") or datetime.now(UTC)
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "occurred_at": now,
        "tenant": "romashka",
        "ticket_id": unique_ticket_id(),
        "category": Category.NETWORK,
        "kind": Kind.INCIDENT,
        "scope": Scope.INCLUDED,
        "priority": Priority.P3,
        "language": Language.EN,
        "confidence": 0.9,
        "received_at": now,
        "contract_revision": "test",
        "classifier_version": "test",
    }
    fields.update(overrides)
    return TicketClassified(**fields)
