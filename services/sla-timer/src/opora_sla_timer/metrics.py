"""SLA timer metrics, on the registry the composition root passes in."""

from prometheus_client import CollectorRegistry, Counter


class SlaMetrics:
    """Counters of clocks armed and SLA events emitted (bounded labels only)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.armed = Counter(
            "opora_sla_armed_total",
            "SLA clocks armed, by tenant and priority",
            ["tenant", "priority"],
            registry=registry,
        )
        self.events = Counter(
            "opora_sla_events_total",
            "SLA events emitted (warning, breach, escalation)",
            ["tenant", "kind"],
            registry=registry,
        )
