"""Classifier subscribers: TicketReceived in, TicketClassified out. Thin: the work is in decide."""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from opora_classifier.decide import decide
from opora_classifier.metrics import ClassifierMetrics
from opora_classifier.model import TicketModel
from opora_classifier.settings import ClassifierSettings
from opora_shared import subjects
from opora_shared.contract_store import ContractStore
from opora_shared.events import TicketClassified, TicketReceived, decode, derive_id
from opora_shared.events.base import Event
from opora_shared.nats.broker import EVENTS, NatsBatch, durable_consumer
from opora_shared.nats.stage import EventWriter, prompt, run_stage

DURABLE = "classifier"
SERVICE = "classifier"
"""The service's name: its dead letters go to ``opora.dlq.classifier``."""


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
    # Declared for the AsyncAPI document; the stage stores the verdicts itself (EventWriter).
    broker.publisher(
        subjects.event_template(TicketClassified),
        stream=EVENTS,
        schema=TicketClassified,
        title="ticket.classified",
        description="Category, kind, scope, priority and language of a ticket, with reasons.",
    )
    writer = EventWriter(broker)

    async def verdict(raw: Msg) -> list[TicketClassified]:
        event = decode(TicketReceived, raw.data)
        contract = contracts.book.get(event.tenant)
        verdict = decide(
            model.get(),
            event.subject,
            event.body,
            contract,
            sender=event.requester.email,
            review_threshold=settings.review_threshold,
        )
        return [
            TicketClassified(
                event_id=derive_id(
                    event.ticket_id, TicketClassified.event_type(), str(event.event_id)
                ),
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
        ]

    def count(result: Event, duplicate: bool) -> None:
        if not duplicate and isinstance(result, TicketClassified):
            metrics.classified.labels(
                result.tenant, result.category, result.scope, result.priority
            ).inc()

    subscriber = prompt(
        broker.subscriber(
            subjects.event_pattern(TicketReceived),
            title="ticket.received:classify",
            description="Classifies each new ticket against its tenant's contract (a fetched "
            "batch at a time, the verdicts stored with one commit).",
            **durable_consumer(settings, DURABLE, batch=True),
        ),
        payload=TicketReceived,
    )

    @subscriber
    async def classify(batch: NatsBatch) -> None:
        """Classify each new ticket of the batch and publish the verdicts together."""
        await run_stage(
            batch.raw_message,
            verdict,
            writer=writer,
            consumer=SERVICE,
            max_deliver=settings.max_deliver,
            stored=count,
        )
