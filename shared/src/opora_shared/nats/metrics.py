"""FastStream's NATS Prometheus middleware with bounded labels.

FastStream labels its message metrics with the concrete subject, and Opora's subjects carry
tenant and ticket ids: one label set per ticket would grow for ever (measured: about 16 KB of
the sla-timer's memory per ticket) and put ids into metric labels. Subjects are reduced to
their shape (``opora.ev.*.ticket.*.received``) first.
"""

from collections.abc import Sequence
from typing import Any

from faststream.nats.prometheus.provider import (
    BatchNatsMetricsSettingsProvider,
    NatsMetricsSettingsProvider,
)
from faststream.prometheus import ConsumeAttrs, PrometheusMiddleware
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from opora_shared.subjects import metric_subject


class _BoundedProvider(NatsMetricsSettingsProvider):
    def get_consume_attrs_from_message(self, msg: Any) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        attrs["destination_name"] = metric_subject(attrs["destination_name"])
        return attrs

    def get_publish_destination_name_from_cmd(self, cmd: Any) -> str:
        return metric_subject(super().get_publish_destination_name_from_cmd(cmd))


class _BoundedBatchProvider(BatchNatsMetricsSettingsProvider):
    def get_consume_attrs_from_message(self, msg: Any) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        attrs["destination_name"] = metric_subject(attrs["destination_name"])
        return attrs

    def get_publish_destination_name_from_cmd(self, cmd: Any) -> str:
        return metric_subject(super().get_publish_destination_name_from_cmd(cmd))


def _provider(msg: Msg | Sequence[Msg] | None) -> Any:
    if isinstance(msg, Sequence):
        return _BoundedBatchProvider()
    if isinstance(msg, Msg) or msg is None:
        return _BoundedProvider()
    return None


def bounded_prometheus_middleware(registry: CollectorRegistry, app_name: str) -> Any:
    """FastStream's NATS Prometheus middleware, labelling subjects by their shape."""
    return PrometheusMiddleware(
        settings_provider_factory=_provider, registry=registry, app_name=app_name
    )


def metrics_manager(broker: Any) -> Any:
    """The message metrics of a broker built with ``bounded_prometheus_middleware``, or None."""
    for middleware in getattr(broker, "middlewares", ()):
        if isinstance(middleware, PrometheusMiddleware):
            return middleware._metrics_manager  # the middleware's own counters
    return None


def count_failure(broker: Any, subject: str, exc: BaseException) -> None:
    """Count a message a batch handler failed on, as the middleware counts a handler's raise.

    A batch handler settles its failed messages itself, so no exception reaches FastStream's
    middleware; ``OporaHandlerErrors`` alerts on this counter all the same.
    """
    manager = metrics_manager(broker)
    if manager is not None:
        manager.add_received_processed_message_exception(
            exception_type=type(exc).__name__, broker="nats", handler=metric_subject(subject)
        )
