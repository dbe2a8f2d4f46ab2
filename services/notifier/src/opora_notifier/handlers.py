"""Notifier subscribers: acknowledge every new ticket to its requester, once."""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from email.headerregistry import Address

from faststream.nats import NatsBroker

from opora_notifier.channels.outbox import OutboxChannel
from opora_notifier.metrics import NotifierMetrics
from opora_notifier.rendering import Acknowledgement, render_acknowledgement
from opora_notifier.settings import NotifierSettings
from opora_shared import subjects
from opora_shared.errors import PoisonMessageError
from opora_shared.events import (
    NotificationSent,
    SlaArmed,
    TicketClassified,
    TicketReceived,
    derive_id,
)
from opora_shared.mail_ids import outbound_message_id
from opora_shared.nats.broker import EVENTS, durable_consumer, jetstream
from opora_shared.nats.history import last_event
from opora_shared.nats.publish import publish_event
from opora_shared.types import UNKNOWN_TENANT

log = logging.getLogger(__name__)

TRIGGER_ACK = "acknowledgement"


def register(
    broker: NatsBroker,
    settings: NotifierSettings,
    *,
    outbox: OutboxChannel,
    metrics: NotifierMetrics,
    clock: Callable[[], datetime],
) -> None:
    """Attach the notifier's subscribers and publishers to a broker."""
    sent = broker.publisher(
        subjects.event_template(NotificationSent),
        stream=EVENTS,
        schema=NotificationSent,
        title="notification.sent",
        description="A notification left Opora.",
    )
    sender = Address(display_name=settings.support_name, addr_spec=settings.support_address)

    async def acknowledge(tenant: str, ticket_id: str, armed: SlaArmed | None) -> None:
        js = jetstream(broker)
        received = await last_event(js, TicketReceived, tenant, ticket_id)
        classified = await last_event(js, TicketClassified, tenant, ticket_id)
        if received is None or classified is None:
            msg = f"ticket {ticket_id}: received or classified event not found"
            raise PoisonMessageError(msg)
        recipient = received.requester.email
        notification_id = str(derive_id(ticket_id, TRIGGER_ACK, recipient))
        now = clock()
        mail = render_acknowledgement(
            Acknowledgement(
                ticket_id=ticket_id,
                language=classified.language,
                requester_email=recipient,
                requester_name=received.requester.name,
                subject=received.subject,
                scope=classified.scope,
                first_response_due=armed.first_response_due if armed else None,
                timezone=armed.timezone if armed else "UTC",
                in_reply_to=received.message_id,
            ),
            sender=sender,
            message_id=outbound_message_id(ticket_id, notification_id, settings.mail_domain),
            now=now,
        )
        written = await asyncio.to_thread(
            outbox.send, mail, ticket_id=ticket_id, notification_id=notification_id
        )
        ack = await publish_event(
            sent,
            NotificationSent(
                event_id=derive_id(notification_id, NotificationSent.event_type()),
                occurred_at=now,
                tenant=tenant,
                ticket_id=ticket_id,
                notification_id=notification_id,
                trigger=TRIGGER_ACK,
                channel=outbox.name,
                recipient=recipient,
                message_id=str(mail["Message-ID"]),
            ),
        )
        if written and not ack.duplicate:
            metrics.notifications.labels(outbox.name, "sent").inc()
            metrics.ack_seconds.labels(tenant).observe(
                max(0.0, (now - received.occurred_at).total_seconds())
            )

    @broker.subscriber(
        subjects.event_pattern(SlaArmed),
        title="sla.armed:acknowledge",
        **durable_consumer(settings, "notifier-ack"),
    )
    async def on_armed(event: SlaArmed) -> None:
        """Acknowledge a ticket to its requester with the real first-response deadline."""
        if event.generation != 1:
            return  # re-armed (paused, resumed, priority changed): acknowledged already
        await acknowledge(event.tenant, event.ticket_id, event)

    @broker.subscriber(
        subjects.event_pattern(TicketClassified, tenant=UNKNOWN_TENANT),
        title="ticket.classified:acknowledge-unknown",
        **durable_consumer(settings, "notifier-unknown"),
    )
    async def on_unknown(event: TicketClassified) -> None:
        """Acknowledge a ticket from a sender no contract knows (no deadline promised)."""
        await acknowledge(event.tenant, event.ticket_id, None)
