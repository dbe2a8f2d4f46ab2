"""SLA timer metrics, on the registry the composition root passes in."""

from prometheus_client import CollectorRegistry, Counter, Histogram


class SlaMetrics:
    """Clocks armed, SLA events emitted and timer lateness (bounded labels only)."""

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
        self.clocks = Counter(
            "opora_sla_clocks_total",
            "SLA clocks decided: met (stopped in time) or breached, by target and priority",
            ["tenant", "priority", "target", "outcome"],
            registry=registry,
        )
        self.lateness = Histogram(
            "opora_sla_fire_lateness_seconds",
            "How late SLA timers fired after their due time",
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
        )
