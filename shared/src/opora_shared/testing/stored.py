"""Reading what a stream holds on a subject, for assertions in tests."""

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
