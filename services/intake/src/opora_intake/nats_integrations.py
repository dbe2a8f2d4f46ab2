"""Integrators on NATS: the generic integrator event on ``opora.in.<tenant>.events``.

A durable consumer (``intake-integrations``, on the ``OPORA_INBOUND`` stream) shared by every
intake replica reads what integrators publish and does exactly what ``POST /v1/events`` does:
opens, updates, acknowledges or resolves the ticket of (tenant, source, dedup key). The tenant
is the subject's; NATS permissions decide who may publish on it (``deploy/nats/``). A message
that is not a valid event, or names a tenant without a contract, goes to the dead-letter subject
``opora.dlq.intake`` at once with the validation error (field names, never values); one that
fails for a passing reason (NATS busy) is retried with back-off first.
"""

from faststream.nats import JStream, NatsBroker
from nats.aio.msg import Msg

from opora_intake.integrations.models import IntegrationEvent
from opora_intake.integrations.normalize import from_event, source_name
from opora_intake.runtime import IntakeRuntime
from opora_shared import subjects
from opora_shared.errors import PoisonMessageError
from opora_shared.events import Actor
from opora_shared.nats.stage import each_message
from opora_shared.settings import OporaSettings

DURABLE = "intake-integrations"
SERVICE = "intake"
"""The service's name: its dead letters go to ``opora.dlq.intake``."""
INBOUND = JStream(subjects.INBOUND_STREAM, declare=False)
"""The integrators' stream, bound but never declared here (``opora provision`` does that)."""


def register(broker: NatsBroker, settings: OporaSettings, runtime: IntakeRuntime) -> None:
    """Attach the integrators' subscriber to the intake's broker."""

    async def ingest(raw: Msg) -> None:
        """Open, update or resolve the ticket of this integrator event's dedup key."""
        event = IntegrationEvent.model_validate_json(raw.data)
        parts = raw.subject.split(".")
        tenant = parts[2] if len(parts) == 4 else ""
        if tenant not in runtime.contracts.book:
            reason = f"tenant {tenant[:32]!r} of the subject has no contract"
            raise PoisonMessageError(reason)
        actor = Actor(kind="integration", id=f"nats:{source_name(event.source)}")
        await runtime.alerts.ingest(tenant, from_event(event), actor)

    each_message(
        broker,
        settings,
        ingest,
        subject=subjects.integrator_events("*"),
        durable=DURABLE,
        service=SERVICE,
        payload=IntegrationEvent,
        title="opora.in.{tenant}.events:ingest",
        description="An integrator's alert (the generic integrator event of docs/api.md): "
        "opens, updates, acknowledges or resolves the ticket of its dedup_key, like "
        "POST /v1/events (each event of a fetched batch in flight together).",
        stream=INBOUND,
    )
