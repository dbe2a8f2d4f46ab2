"""What the three FastStream services share: the app around a broker, and running it."""

import asyncio
import gc
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from faststream import FastStream
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from prometheus_client import CollectorRegistry

from opora_shared import __version__
from opora_shared.contract_store import ContractStore
from opora_shared.errors import NotReadyError
from opora_shared.logging import setup_logging
from opora_shared.metrics import serve_metrics
from opora_shared.nats.broker import jetstream, reconnect_forever
from opora_shared.nats.consumer_metrics import ConsumerGauges
from opora_shared.nats.history import tap, untap
from opora_shared.nats.streams import check_ready
from opora_shared.settings import OporaSettings
from opora_shared.tasks import stop_tasks

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
S = TypeVar("S", bound=OporaSettings)
T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a service's main coroutine on uvloop (the event loop uvicorn also picks).

    uvloop's sockets, timers and callbacks cost a fraction of the pure-Python loop's, which the
    NATS client exercises on every publish, fetch and ack. Without uvloop (a platform it does
    not support) the standard loop runs the same code.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def freeze_heap() -> None:
    """Put everything a started service holds out of the cyclic garbage collector's sight.

    A service's heap after start-up (FastStream, pydantic, the classifier's model, the
    contracts: about 140,000 tracked objects) lives as long as the process; every full
    collection walked all of it again, a 30-160 ms pause of the event loop that held every
    message in flight (measured with ``gc.callbacks`` at 100 tickets/s: a pause of that size
    in some service every few seconds). Frozen objects are still freed when their last
    reference goes; only cycles among them are left alone.
    """
    gc.collect()
    gc.freeze()
    log.info("start-up heap frozen (%d objects)", gc.get_freeze_count())


def utc_now() -> datetime:
    """The real clock; tests pass their own."""
    return datetime.now(UTC)


def build_app(
    broker: NatsBroker,
    *,
    title: str,
    description: str,
    on_start: Callable[[], Awaitable[object] | object] | None = None,
    contracts: ContractStore | None = None,
    registry: CollectorRegistry | None = None,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    tap_history: bool = False,
) -> FastStream:
    """A FastStream app that checks the streams exist, then keeps reconnecting for ever.

    With ``contracts``, the app loads the local files before the broker starts and follows
    the contracts bucket once it is connected (hot reload). With ``registry``, it exports
    its durable consumers' lag, redeliveries and dead letters, read from JetStream.
    ``background`` coroutines (periodic checks) start once the app is ready and are cancelled
    when it shuts down. ``tap_history`` feeds the tickets' histories this process reads from
    every new event (``opora_shared.nats.history.tap``), for services that read most tickets'.
    """
    gauges = ConsumerGauges(registry) if registry is not None else None
    tasks: list[asyncio.Task[None]] = []
    taps: list[Subscription] = []
    app = FastStream(
        broker,
        specification=AsyncAPI(title=title, version=__version__, description=description),
        logger=logging.getLogger(title),
    )

    @app.on_startup
    async def _prepare() -> None:
        if contracts is not None:
            contracts.load()
        if on_start is not None:
            result = on_start()
            if inspect.isawaitable(result):
                await result

    @app.after_startup
    async def _check() -> None:
        reconnect_forever(broker)
        missing = await check_ready(jetstream(broker))
        if missing:
            msg = f"missing {', '.join(missing)}: run 'opora provision' (make run does)"
            raise NotReadyError(msg)
        if contracts is not None:
            await contracts.watch(jetstream(broker))
        if gauges is not None:
            gauges.start(broker, jetstream(broker))
        tasks.extend(asyncio.create_task(run()) for run in background)
        if tap_history:
            taps.append(await tap(jetstream(broker)))
        log.info("%s ready", title)

    @app.on_shutdown
    async def _close() -> None:
        await stop_tasks(tasks)
        tasks.clear()
        for subscription in taps:
            try:
                await untap(jetstream(broker), subscription)
            except NatsError as exc:  # closing anyway
                log.debug("history tap not stopped cleanly: %s", exc)
        taps.clear()
        if gauges is not None:
            await gauges.stop()
        if contracts is not None:
            await contracts.close()

    return app


def main(
    service: str,
    settings_cls: type[S],
    create_app: Callable[..., FastStream],
) -> None:
    """A service's ``__main__``: settings from the environment, logs, metrics, run until stopped.

    FastStream handles SIGINT/SIGTERM: it stops fetching, lets handlers finish, then exits.
    """
    settings = settings_cls()
    setup_logging(settings.log_level, service=service)
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry)
    app.after_startup(freeze_heap)
    serve_metrics(registry, settings.metrics_host, settings.metrics_port)
    run_loop(app.run())
