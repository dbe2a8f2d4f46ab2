"""Retry with back-off, then dead-letter: no message is lost silently, none loops for ever.

A broker middleware. When a handler (or its decoding, or its publishing) fails:

- a message that can never succeed (it does not decode, or it raised PoisonMessageError) goes
  to ``opora.dlq.<consumer>`` at once, with the reason, and is terminated;
- any other failure is retried with exponential back-off (``nak`` with a delay) until
  ``max_deliver`` deliveries, then dead-lettered the same way;
- NATS itself being unavailable (the connection down or reconnecting, a JetStream request
  timing out, no stream leader yet) is not the message's fault: such failures are retried up
  to ``TRANSPORT_PATIENCE`` times ``max_deliver`` deliveries (about eight minutes of back-off
  with the defaults), so a cluster's leader election (measured up to 9.5 s in
  ``tests/e2e/test_nats_cluster.py``) or a restart of nats-server dead-letters nothing.

The dead letter is published (and acknowledged by JetStream) before the original is terminated;
if that publish fails the original is redelivered later instead. Reasons never carry the
payload's values: pydantic errors are rendered without their input.
"""

import base64
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from faststream import BaseMiddleware
from faststream.exceptions import HandlerException, NackMessage, RejectMessage
from faststream.nats import NatsBroker
from nats import errors as nats_errors
from nats.js import errors as js_errors
from pydantic import ValidationError

from opora_shared import subjects
from opora_shared.errors import PoisonMessageError
from opora_shared.events import DeadLetter
from opora_shared.nats.metrics import count_failure

log = logging.getLogger(__name__)

POISON = (ValidationError, json.JSONDecodeError, UnicodeDecodeError, PoisonMessageError)
TRANSPORT = (
    nats_errors.ConnectionClosedError,
    nats_errors.ConnectionReconnectingError,
    nats_errors.StaleConnectionError,
    nats_errors.NoServersError,
    nats_errors.TimeoutError,
    nats_errors.FlushTimeoutError,
    js_errors.ServiceUnavailableError,
)
"""NATS unavailable for a while: retried longer, because the message is not at fault."""
TRANSPORT_PATIENCE = 4


def describe(exc: BaseException) -> str:
    """A reason without personal data: pydantic errors lose their input values."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        ]
        return f"{exc.title} invalid: " + "; ".join(parts)
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} at position {exc.pos}"
    return f"{type(exc).__name__}: {exc}"[:1000]


def backoff_s(num_delivered: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Delay before the next delivery: 0.5 s, 1 s, 2 s... up to ``cap``."""
    return float(min(cap, base * 2 ** max(0, num_delivered - 1)))


def retry_delay(consumer: str, exc: Exception, delivered: int, max_deliver: int) -> float | None:
    """The back-off before the next delivery after ``exc`` (logged), or None: dead-letter it."""
    limit = max_deliver * (TRANSPORT_PATIENCE if isinstance(exc, TRANSPORT) else 1)
    if isinstance(exc, POISON) or delivered >= limit:
        return None
    delay = backoff_s(delivered)
    log.warning(
        "%s failed (delivery %d/%d), retry in %.1fs: %s",
        consumer,
        delivered,
        limit,
        delay,
        type(exc).__name__,
    )
    return delay


def delivery_count(raw: Any) -> int:
    """How many times JetStream has delivered this message (1 when it cannot tell)."""
    return int(getattr(getattr(raw, "metadata", None), "num_delivered", 1) or 1)


async def dead_letter(broker: NatsBroker, consumer: str, raw: Any, exc: Exception) -> None:
    """Store the dead letter of ``raw`` (acknowledged by JetStream, deduplicated by position)."""
    metadata = getattr(raw, "metadata", None)
    letter = DeadLetter(
        consumer=consumer,
        subject=str(getattr(raw, "subject", "")),
        stream=getattr(metadata, "stream", None),
        stream_seq=getattr(getattr(metadata, "sequence", None), "stream", None),
        num_delivered=delivery_count(raw),
        error_type=type(exc).__name__,
        reason=describe(exc),
        failed_at=datetime.now(UTC),
        headers={str(k): str(v) for k, v in (getattr(raw, "headers", None) or {}).items()},
        payload_b64=base64.b64encode(bytes(getattr(raw, "data", b"") or b"")).decode(),
    )
    await broker.publish(
        letter,
        subjects.dead_letter(consumer),
        headers={"Nats-Msg-Id": f"dlq-{consumer}-{letter.stream}-{letter.stream_seq}"},
        stream=subjects.DLQ_STREAM,
    )
    log.error(
        "%s dead-lettered %s seq %s after %d deliveries: %s",
        consumer,
        letter.stream,
        letter.stream_seq,
        letter.num_delivered,
        letter.error_type,
    )


async def settle_failed(
    broker: NatsBroker, consumer: str, raw: Any, exc: Exception, *, max_deliver: int
) -> None:
    """What the middleware does for one message, for handlers that settle their own batch.

    Retried with back-off (``nak`` with a delay) or dead-lettered and terminated; a dead letter
    that cannot be stored leaves the message to be redelivered when its ack wait runs out.
    Counted in ``faststream_received_processed_messages_exceptions_total`` like a raise.
    """
    count_failure(broker, str(getattr(raw, "subject", "")), exc)
    delay = retry_delay(consumer, exc, delivery_count(raw), max_deliver)
    if delay is not None:
        await raw.nak(delay=delay)
        return
    await dead_letter(broker, consumer, raw, exc)
    await raw.term()


def dead_letter_middleware(
    broker_ref: Callable[[], NatsBroker], *, consumer: str, max_deliver: int
) -> Callable[..., BaseMiddleware]:
    """A middleware factory for one service's broker (``consumer`` names its DLQ subject)."""

    class _DeadLetterMiddleware(BaseMiddleware):
        async def after_processed(
            self,
            exc_type: type[BaseException] | None = None,  # noqa: ARG002 - FastStream's signature
            exc_val: BaseException | None = None,
            exc_tb: TracebackType | None = None,  # noqa: ARG002
        ) -> bool | None:
            if exc_val is None or isinstance(exc_val, HandlerException):
                return False
            if not isinstance(exc_val, Exception):  # cancellation, exit: not ours to judge
                return False
            raw: Any = self.msg
            delay = retry_delay(consumer, exc_val, delivery_count(raw), max_deliver)
            if delay is not None:
                raise NackMessage(delay=delay) from exc_val
            await dead_letter(broker_ref(), consumer, raw, exc_val)
            raise RejectMessage from exc_val

    return _DeadLetterMiddleware
