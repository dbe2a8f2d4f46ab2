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
