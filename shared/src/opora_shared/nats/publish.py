"""Publishing events: every publish is acknowledged by JetStream and carries Nats-Msg-Id."""

from typing import Any, Protocol

from nats.js.api import PubAck

from opora_shared import subjects
from opora_shared.events.base import Event

TYPE_HEADER = "Opora-Type"


class Publisher(Protocol):
    """A FastStream broker or publisher: both publish with these arguments."""

    async def publish(
        self,
        message: Any,
        subject: str,
        headers: dict[str, str] | None = None,
        reply_to: str = "",
        correlation_id: str | None = None,
        stream: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Publish one message."""


def event_headers(event: Event) -> dict[str, str]:
    """The headers every stored event carries: its id (deduplication) and its type."""
    return {"Nats-Msg-Id": str(event.event_id), TYPE_HEADER: event.type}


async def publish_event(
    publisher: Publisher,
    event: Event,
    *,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
) -> PubAck:
    """Publish an event on its subject; a retry with the same event id is deduplicated."""
    all_headers = {**event_headers(event), **(headers or {})}
    ack: PubAck = await publisher.publish(
        event,
        subject=subjects.event_subject(event),
        headers=all_headers,
        stream=subjects.EVENTS_STREAM,
        timeout=timeout,
    )
    return ack
