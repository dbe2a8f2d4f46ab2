"""Reading one tenant's history from the events stream, from an instant on."""

import logging
from datetime import datetime

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from opora_shared import subjects
from opora_shared.events import Event, parse_event

log = logging.getLogger(__name__)

BATCH = 1000


async def tenant_events(
    js: JetStreamContext, tenant: str, since: datetime, *, limit: int = 5_000_000
) -> list[Event]:
    """Every event of a tenant stored at or after ``since``, oldest first.

    An ephemeral pull consumer (no acks, removed after use) filtered on the tenant's subjects;
    reads until nothing is pending, so it ends even while new events arrive.
    """
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=since,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
        filter_subject=subjects.tenant_events(tenant),
    )
    sub = await js.pull_subscribe(
        subjects.tenant_events(tenant), stream=subjects.EVENTS_STREAM, config=config
    )
    events: list[Event] = []
    try:
        pending = (await sub.consumer_info()).num_pending
        while pending and len(events) < limit:
            try:
                batch = await sub.fetch(min(BATCH, pending), timeout=5)
            except (TimeoutError, NatsTimeoutError):
                break
            for msg in batch:
                pending = msg.metadata.num_pending
                try:
                    events.append(parse_event(msg.data))
                except ValueError:
                    log.warning("unreadable event at seq %s skipped", msg.metadata.sequence.stream)
    finally:
        await sub.unsubscribe()
    return events
