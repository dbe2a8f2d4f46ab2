"""Classifier subscribers: TicketReceived in, TicketClassified out. Thin: the work is in decide."""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from faststream.nats import NatsBroker

from opora_classifier.decide import decide
from opora_classifier.metrics import ClassifierMetrics
from opora_classifier.model import TicketModel
from opora_classifier.settings import ClassifierSettings
from opora_shared import subjects
from opora_shared.contract_store import ContractStore
from opora_shared.events import TicketClassified, TicketReceived, derive_id
from opora_shared.nats.broker import EVENTS, durable_consumer
from opora_shared.nats.publish import publish_event

DURABLE = "classifier"


class ModelHolder:
    """The loaded model; loaded at start-up, so a broken artifact stops the service at once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._model: TicketModel | None = None

    def load(self) -> TicketModel:
        """Load (or reload) the model from its directory."""
        self._model = TicketModel.load(self.directory)
        return self._model

    def get(self) -> TicketModel:
        """The loaded model (loading it on first use)."""
        return self._model if self._model is not None else self.load()


def register(
    broker: NatsBroker,
    settings: ClassifierSettings,
    *,
    contracts: ContractStore,
    model: "ModelHolder",
    metrics: ClassifierMetrics,
    clock: Callable[[], datetime],
) -> None:
    """Attach the classifier's subscribers and publishers to a broker."""
    classified = broker.publisher(
        subjects.event_template(TicketClassified),
        stream=EVENTS,
        schema=TicketClassified,
        title="ticket.classified",
        description="Category, kind, scope, priority and language of a ticket, with reasons.",
    )

    @broker.subscriber(
        subjects.event_pattern(TicketReceived),
        title="ticket.received:classify",
        **durable_consumer(settings, DURABLE),
    )
    async def classify(event: TicketReceived) -> None:
        """Classify a new ticket against its tenant's contract and publish the verdict."""
        contract = contracts.book.get(event.tenant)
        verdict = decide(
            model.get(),
            event.subject,
            event.body,
            contract,
            sender=event.requester.email,
            review_threshold=settings.review_threshold,
        )
        result = TicketClassified(
            event_id=derive_id(event.ticket_id, TicketClassified.event_type(), str(event.event_id)),
            occurred_at=clock(),
            tenant=event.tenant,
            ticket_id=event.ticket_id,
            category=verdict.category,
            kind=verdict.kind,
            scope=verdict.scope,
            priority=verdict.priority,
            language=verdict.language,
            confidence=verdict.confidence,
            received_at=event.occurred_at,
            reasons=verdict.reasons,
            contract_revision=contract.revision if contract else "none",
            classifier_version=model.get().version,
        )
        ack = await publish_event(classified, result)
        if not ack.duplicate:
            metrics.classified.labels(
                event.tenant, result.category, result.scope, result.priority
            ).inc()
