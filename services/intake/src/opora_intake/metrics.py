"""Intake metrics, on the registry the composition root passes in."""

from prometheus_client import CollectorRegistry, Counter


class IntakeMetrics:
    """Tickets received by channel and tenant (bounded labels only)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "opora_tickets_received_total",
            "Tickets received, by channel and tenant",
            ["channel", "tenant"],
            registry=registry,
        )
        self.mail = Counter(
            "opora_mail_total",
            "Inbound mail, by channel and outcome",
            ["channel", "outcome"],
            registry=registry,
        )
        self.rejected = Counter(
            "opora_intake_rejected_total",
            "Requests refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.approvals = Counter(
            "opora_approvals_total",
            "Approval link answers, by tenant and outcome (approved, declined, conflict, invalid)",
            ["tenant", "outcome"],
            registry=registry,
        )
        self.chat_actions = Counter(
            "opora_chat_actions_total",
            "Chat button presses, by medium (telegram, slack, mattermost) and outcome "
            "(acted, duplicate, refused, ignored, unauthenticated)",
            ["medium", "outcome"],
            registry=registry,
        )
