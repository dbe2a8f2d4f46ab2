"""Every stream, subject and bucket name Opora uses, built in one place.

Event subjects are ``opora.ev.<tenant>.<family>.<ticket_id>.<name>``, so that

- one tenant's events are ``opora.ev.<tenant>.>`` (a tenant credential can be limited to it),
- one ticket's whole history is ``opora.ev.*.*.<ticket_id>.*``,
- one kind of event for every tenant is e.g. ``opora.ev.*.ticket.*.received``.

Dead letters live apart, on ``opora.dlq.<consumer>``, in their own stream.
"""

from opora_shared.events.base import Event

EVENTS_STREAM = "OPORA_EVENTS"
"""The system of record: every ticket event, the audit trail."""
EVENTS_PREFIX = "opora.ev"

DLQ_STREAM = "OPORA_DLQ"
"""Messages a consumer gave up on, each with the reason."""
DLQ_PREFIX = "opora.dlq"

SLA_STREAM = "OPORA_SLA"
"""SLA timers as NATS message schedules, and the messages they fire."""
SLA_PREFIX = "opora.sla"
SLA_BUCKET = "opora_sla"
"""KV: each ticket's SLA clocks (the sla-timer's state), by ticket id."""

INTAKE_STREAM = "OPORA_INTAKE"
"""What the intake did with every inbound mail, including those that made no ticket."""
INTAKE_PREFIX = "opora.intake"

INBOUND_STREAM = "OPORA_INBOUND"
"""What integrators publish on NATS (the generic integrator event), read by the intake."""
INBOUND_PREFIX = "opora.in"

TICKET_IDS_BUCKET = "opora_ticket_ids"
"""KV: the ticket number counter and the index of channel ids (Message-ID...) to tickets."""
TOKENS_BUCKET = "opora_tokens"
"""KV: API tokens, by the SHA-256 of the token (never the token itself)."""
MAIL_GUARD_BUCKET = "opora_mail_guard"
"""KV: daily counters of automatic mail per sender and per ticket (loop guard); keys expire."""
CONTRACTS_BUCKET = "opora_contracts"
"""KV: each tenant's contract (the YAML text) by tenant id; services watch it and hot-reload."""
TEAM_KEY = "_team"
"""Key in CONTRACTS_BUCKET holding the provider's team file (YAML), watched like a contract."""
TICKETS_BUCKET = "opora_tickets"
"""KV: each ticket's summary (status, verdict, assignee, deadlines) by ``<tenant>.<ticket id>``."""
LOAD_BUCKET = "opora_load"
"""KV: each engineer's open assigned tickets (the routing load projection), by engineer id."""
NOTIFY_BUCKET = "opora_notifications"
"""KV: the notifier's idempotency records (one per notification) and per-recipient rate windows."""
ATTACHMENTS_BUCKET = "opora_attachments"
"""Object store: attachments and original messages, by ticket."""


def event_subject(event: Event) -> str:
    """The subject one event is published on."""
    return f"{EVENTS_PREFIX}.{event.tenant}.{event.family}.{event.ticket_id}.{event.name}"


def event_pattern(event_cls: type[Event], *, tenant: str = "*", ticket_id: str = "*") -> str:
    """A filter for one event class, for every tenant and ticket unless narrowed."""
    family, name = event_cls.event_type().split(".")
    return f"{EVENTS_PREFIX}.{tenant}.{family}.{ticket_id}.{name}"


def event_template(event_cls: type[Event]) -> str:
    """The documented shape of an event class's subject, as AsyncAPI shows it."""
    family, name = event_cls.event_type().split(".")
    return f"{EVENTS_PREFIX}.{{tenant}}.{family}.{{ticket_id}}.{name}"


def ticket_history(ticket_id: str, *, tenant: str = "*") -> str:
    """A filter for every event of one ticket."""
    return f"{EVENTS_PREFIX}.{tenant}.*.{ticket_id}.*"


def tenant_events(tenant: str) -> str:
    """A filter for every event of one tenant."""
    return f"{EVENTS_PREFIX}.{tenant}.>"


def sla_schedule(ticket_id: str, target: str, kind: str) -> str:
    """The schedule subject of one timer: one subject per (ticket, target, kind)."""
    return f"{SLA_PREFIX}.sched.{ticket_id}.{target}.{kind}"


def sla_fire(ticket_id: str, target: str, kind: str) -> str:
    """Where a timer's message goes when it falls due."""
    return f"{SLA_PREFIX}.fire.{ticket_id}.{target}.{kind}"


SLA_FIRE_ALL = f"{SLA_PREFIX}.fire.>"


def mail_record(outcome: str) -> str:
    """The subject of an inbound mail's record."""
    return f"{INTAKE_PREFIX}.mail.{outcome}"


def integrator_events(tenant: str) -> str:
    """Where integrators of a tenant publish alerts (``*``: every tenant, for the consumer)."""
    return f"{INBOUND_PREFIX}.{tenant}.events"


def dead_letter(consumer: str) -> str:
    """The dead-letter subject of one consumer."""
    return f"{DLQ_PREFIX}.{consumer}"


def metric_subject(subject: str) -> str:
    """A subject with its tenant, ticket and other unbounded tokens replaced by ``*``.

    Metric labels must come from a bounded set and carry no ids: this is the form in which
    subjects appear in them.
    """
    tokens = subject.split(".")
    if subject.startswith(EVENTS_PREFIX + ".") and len(tokens) == 6:
        tokens[2] = tokens[4] = "*"
    elif subject.startswith(SLA_PREFIX + ".") and len(tokens) == 6:
        tokens[3] = "*"
    else:
        tokens = ["*" if t.isdigit() or not t.isascii() else t for t in tokens]
    return ".".join(tokens)
