"""Notifier metrics, on the registry the composition root passes in."""

from prometheus_client import CollectorRegistry, Counter, Histogram


class NotifierMetrics:
    """Notifications by channel and outcome; intake-to-acknowledgement time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "opora_notifications_total",
            "Notifications, by channel and outcome",
            ["channel", "outcome"],
            registry=registry,
        )
        self.ack_seconds = Histogram(
            "opora_intake_to_ack_seconds",
            "From ticket received to acknowledgement written",
            ["tenant"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
