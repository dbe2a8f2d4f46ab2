"""Notifier metrics, on the registry the composition root passes in.

Labels come from bounded sets (channel, trigger, outcome, result, tenant); never an address,
a ticket or a notification id.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram


class NotifierMetrics:
    """Notifications by outcome, delivery attempts, send time, intake-to-acknowledgement time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "opora_notifications_total",
            "Notifications by channel, trigger and outcome (sent, failed, uncertain, duplicate, "
            "held, stale)",
            ["channel", "trigger", "outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "opora_notification_attempts_total",
            "Delivery attempts by channel and result (ok, temporary, permanent)",
            ["channel", "result"],
            registry=registry,
        )
        self.send_seconds = Histogram(
            "opora_notification_send_seconds",
            "Time one delivery attempt took, by channel",
            ["channel"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.ack_seconds = Histogram(
            "opora_intake_to_ack_seconds",
            "From ticket received to acknowledgement written",
            ["tenant"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
