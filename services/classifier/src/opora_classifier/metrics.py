"""Classifier metrics, on the registry the composition root passes in."""

from prometheus_client import CollectorRegistry, Counter


class ClassifierMetrics:
    """Counters of what the classifier decided (bounded labels only)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.classified = Counter(
            "opora_tickets_classified_total",
            "Tickets classified, by tenant and verdict",
            ["tenant", "category", "scope", "priority"],
            registry=registry,
        )
