"""Reading what a stream holds on a subject, for assertions in tests."""

from collections import Counter
from typing import TypeVar

from nats.js import JetStreamContext
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


async def stored(
    js: JetStreamContext, subject: str, model: type[M], *, timeout: float = 5.0
) -> list[M]:
    """Every message stored on ``subject`` (wildcards allowed), as ``model``, oldest first."""
    # Count first, from the stream's subject index: a push consumer's num_pending shrinks as
    # it delivers, so it cannot say how many there are.
    stream = await js.find_stream_name_by_subject(subject)
    info = await js.stream_info(stream, subjects_filter=subject)
    total = sum((info.state.subjects or {}).values())
    sub = await js.subscribe(subject, ordered_consumer=True)
    try:
        found: list[M] = []
        for _ in range(total):
            msg = await sub.next_msg(timeout=timeout)
            found.append(model.model_validate_json(msg.data))
        return found
    finally:
        await sub.unsubscribe()


async def event_counts(js: JetStreamContext, pattern: str) -> dict[str, Counter[str]]:
    """Per ticket, how many events of each name the events stream holds under ``pattern``."""
    from opora_shared import subjects

    info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=pattern)
    per_ticket: dict[str, Counter[str]] = {}
    for subject, n in (info.state.subjects or {}).items():
        *_, ticket_id, name = subject.split(".")
        per_ticket.setdefault(ticket_id, Counter())[name] += n
    return per_ticket
