"""Outcomes on the record: NotificationSent / NotificationFailed events, and dead letters.

Publishes through FastStream publishers (or a broker): JetStream-acknowledged, with
``Nats-Msg-Id`` = the event id, so a republished outcome is stored once. Reads a ticket's
history to tell whether an outcome is already there (recovery after a crash).
"""

from collections.abc import Callable

from nats.js import JetStreamContext

from opora_shared import subjects
from opora_shared.events import DeadLetter, NotificationFailed, NotificationSent
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import Publisher, publish_event


class StreamJournal:
    """The dispatcher's journal on the events stream and the dead-letter stream."""

    def __init__(
        self,
        *,
        sent: Publisher,
        failed: Publisher,
        dead: Publisher,
        js: Callable[[], JetStreamContext],
    ) -> None:
        self._sent = sent
        self._failed = failed
        self._dead = dead
        self._js = js

    async def sent(self, event: NotificationSent) -> None:
        """Publish a NotificationSent."""
        await publish_event(self._sent, event)

    async def failed(self, event: NotificationFailed, letter: DeadLetter, subject: str) -> None:
        """Publish a NotificationFailed, then the dead letter with the reason."""
        await publish_event(self._failed, event)
        await self.dead(letter, subject, event.notification_id)

    async def dead(self, letter: DeadLetter, subject: str, notification_id: str) -> None:
        """Publish a dead letter with the reason (deduplicated per notification)."""
        await self._dead.publish(
            letter,
            subject=subject,
            headers={"Nats-Msg-Id": f"dlq-notify-{notification_id}"},
            stream=subjects.DLQ_STREAM,
        )

    async def recorded(self, tenant: str, ticket_id: str, event_ids: set[str]) -> set[str]:
        """Which of these event ids the ticket's history holds."""
        events = await ticket_events(self._js(), ticket_id, tenant=tenant)
        return {str(e.event_id) for e in events} & event_ids
