"""Building a service's broker: bounded first connect, endless reconnects, metrics, DLQ.

TECH-NOTES: nats-py's first connect to a down server blocks ~120 s by default, FastStream's
per-message logs are costly, the default pull batch is 1 and the default ack policy never
retries. Every service gets the same, safer settings from here.
"""

import logging
import math
from typing import Annotated, Any

from faststream import AckPolicy, Context
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage as _NatsBatchMessage
from faststream.nats.message import NatsMessage as _NatsMessage
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from prometheus_client import CollectorRegistry

from opora_shared import subjects
from opora_shared.nats.deadletter import dead_letter_middleware
from opora_shared.nats.metrics import bounded_prometheus_middleware
from opora_shared.settings import OporaSettings

log = logging.getLogger(__name__)

RECONNECT_WAIT_S = 0.5

FETCH_TIMEOUT_S = 1.0
"""How long one pull fetch may wait for messages (its ``expires``).

With 5 s, every second ticket at 50 a second waited 10-20 ms more at each hop (the classify hop:
p90 23 ms against 4 ms), around the lingering pull requests nats-py leaves on the server; with
1 s the acknowledgement's p50 / p90 went from 23 / 46 ms to 16 / 26 ms (``docs/benchmarks.md``).
An idle consumer asks again every second: two small messages a second each.
"""

EVENTS = JStream(subjects.EVENTS_STREAM, declare=False)
"""The events stream, bound but never declared by services (``opora provision`` does that)."""


_ContextField: type = type(Context("message"))
"""The class behind ``faststream.Context()`` (a fast_depends custom field)."""


class _LoopContext(_ContextField):  # type: ignore[misc]
    """FastStream's ``Context``, resolved on the event loop instead of in a worker thread.

    fast_depends runs a custom field's synchronous ``use`` through ``anyio.to_thread`` on every
    message, so a handler taking FastStream's ``NatsMessage`` annotation paid a thread hand-off
    (and GIL contention) per message: 8 % of the intake's CPU under load (py-spy). Looking a
    name up in the context never blocks, so the coroutine version is the same lookup, inline.
    """

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:
        """The context value under the parameter's name, as ``Context.use`` gives it."""
        found: dict[str, Any] = super().use(**kwargs)
        return found


NatsMessage = Annotated[_NatsMessage, _LoopContext("message")]
"""The message being handled, for a handler's signature (FastStream's, without the thread)."""

NatsBatch = Annotated[_NatsBatchMessage, _LoopContext("message")]
"""The fetched batch a batch handler (``durable_consumer(..., batch=True)``) is given."""


class _IdleFetchTimeoutFilter(logging.Filter):
    """Drop FastStream's supervisor report of an idle pull fetch timing out.

    FastStream 0.7.8 suppresses ``nats.errors.TimeoutError`` around ``fetch``, but nats-py 2.16
    can raise the builtin ``TimeoutError`` when a lingering pull request expires; the supervisor
    then logs an ERROR with a traceback and restarts the fetch loop. Nothing is lost (no message
    was taken), so the report is noise; any other failure is still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (type(exc) is TimeoutError and "retrying" in record.getMessage())


def make_broker(
    settings: OporaSettings, *, service: str, registry: CollectorRegistry | None = None
) -> NatsBroker:
    """A NatsBroker for one service, with dead-lettering and (optionally) Prometheus metrics."""
    broker: NatsBroker

    async def on_error(exc: Exception) -> None:
        log.warning("NATS connection problem: %s", type(exc).__name__)

    middlewares: list[Any] = [
        dead_letter_middleware(lambda: broker, consumer=service, max_deliver=settings.max_deliver)
    ]
    if registry is not None:
        middlewares.insert(0, bounded_prometheus_middleware(registry, service))
    broker_logger = logging.getLogger(f"opora.{service}.broker")
    broker_logger.addFilter(_IdleFetchTimeoutFilter())
    broker = NatsBroker(
        settings.nats_servers,
        name=f"opora-{service}",
        # FastStream annotates these as int; nats-py takes (and we mean) float seconds.
        connect_timeout=min(2.0, settings.connect_timeout_s),  # type: ignore[arg-type]
        reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]
        max_reconnect_attempts=max(1, math.ceil(settings.connect_timeout_s / RECONNECT_WAIT_S)),
        error_cb=on_error,
        middlewares=middlewares,
        # Per-message "Received"/"Processed" lines go out at DEBUG: off unless asked for.
        log_level=logging.DEBUG,
        logger=broker_logger,
    )
    return broker


def reconnect_forever(broker: NatsBroker) -> None:
    """After the first connection: never give up reconnecting (a NATS restart must not kill us)."""
    broker.connection.options["max_reconnect_attempts"] = -1


def jetstream(broker: NatsBroker) -> JetStreamContext:
    """The JetStream context of a started broker."""
    return broker.config.connection_state.stream  # type: ignore[no-any-return]


def durable_consumer(
    settings: OporaSettings,
    durable: str,
    *,
    batch: bool = False,
    filter_subjects: list[str] | None = None,
) -> dict[str, Any]:
    """Subscriber arguments for a durable pull consumer shared by every replica of a service.

    ``max_deliver`` stays unlimited on the server: the dead-letter middleware decides when to
    give up, after it has stored the dead letter, so the server never drops a message silently.
    ``batch``: the handler gets each fetched batch whole (``NatsBatch``), once, instead of one
    call per message; it settles the messages that fail itself
    (``opora_shared.nats.deadletter.settle_failed``), FastStream acknowledges the others.
    ``filter_subjects``: the consumer takes only these subjects (within the subscriber's), so
    the server does not deliver events the handler would only skip. nats-py sets a consumer's
    filter when it creates it: one that exists already keeps its filter, and works the same.
    """
    return {
        "stream": EVENTS,
        "durable": durable,
        "pull_sub": PullSub(batch_size=settings.batch_size, timeout=FETCH_TIMEOUT_S, batch=batch),
        "config": ConsumerConfig(
            ack_wait=settings.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=max(1000, settings.batch_size * 10),
            deliver_policy=DeliverPolicy.ALL,
            filter_subjects=filter_subjects,
        ),
        "ack_policy": AckPolicy.NACK_ON_ERROR,
    }
