"""The notifier's composition root: settings in, a runnable FastStream app out."""

from faststream import FastStream
from prometheus_client import CollectorRegistry

from opora_notifier import handlers
from opora_notifier.channels.outbox import OutboxChannel
from opora_notifier.metrics import NotifierMetrics
from opora_notifier.settings import NotifierSettings
from opora_shared.nats.broker import make_broker
from opora_shared.service import Clock, build_app, utc_now


def create_app(
    settings: NotifierSettings,
    *,
    clock: Clock = utc_now,
    registry: CollectorRegistry | None = None,
) -> FastStream:
    """Wire the notifier: broker, channels, metrics and handlers."""
    registry = registry if registry is not None else CollectorRegistry()
    broker = make_broker(settings, service="notifier", registry=registry)
    outbox = OutboxChannel(settings.outbox)
    handlers.register(
        broker, settings, outbox=outbox, metrics=NotifierMetrics(registry), clock=clock
    )
    return build_app(
        broker,
        title="opora-notifier",
        description="Tells engineers and clients what they need to know, once.",
        on_start=lambda: settings.outbox.mkdir(parents=True, exist_ok=True),
    )
