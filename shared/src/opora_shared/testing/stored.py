"""Reading what a stream holds on a subject, for assertions in tests."""

from typing import TypeVar

from nats.js import JetStreamContext
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


async def stored(
    js: JetStreamContext, subject: str, model: type[M], *, timeout: float = 5.0
) -> list[M]:
    """Every message stored on ``subject`` (wildcards allowed), as ``model``, oldest first."""
    sub = await js.subscribe(subject, ordered_consumer=True)
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        found: list[M] = []
        for _ in range(pending):
            msg = await sub.next_msg(timeout=timeout)
            found.append(model.model_validate_json(msg.data))
        return found
    finally:
        await sub.unsubscribe()
