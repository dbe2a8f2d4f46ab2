"""SLA timers as NATS message schedules (ADR-51): the server keeps and fires them.

One schedule subject per (ticket, clock, kind); republishing replaces it (the stream keeps one
message per subject), purging cancels it. When due, the server publishes the body to the fire
subject, where a durable consumer shared by every sla-timer replica picks it up: the server
fires each timer once, whichever replicas live, and a timer that fell due while no replica ran
waits in the stream. Chosen over a KV timer wheel in the service: see docs/sla-timers.md.
"""

import json
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.api import PubAck

from opora_shared import subjects
from opora_shared.nats.stage import Record
from opora_shared.vocabulary import SlaTarget
from opora_sla_timer.clocks import SlaState, Timer, TimerKind


def _at(due: datetime) -> str:
    return due.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Schedules:
    """Schedules and cancels a ticket's timers."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def cancel_dropped(
        self, state: SlaState, pending: list[Timer], previous: list[Timer]
    ) -> None:
        """Cancel the timers that were pending before and are no longer."""
        wanted = {(t.target, t.kind) for t in pending}
        for timer in previous:
            if (timer.target, timer.kind) not in wanted:
                await self.cancel(state.ticket_id, timer.target, timer.kind)

    @staticmethod
    def records(state: SlaState, pending: list[Timer]) -> list[Record]:
        """The schedule messages of ``pending`` (publishing one replaces the timer's last)."""
        return [
            Record(
                subjects.sla_schedule(state.ticket_id, timer.target, timer.kind),
                json.dumps(
                    {
                        "ticket_id": state.ticket_id,
                        "tenant": state.tenant,
                        "target": timer.target.value,
                        "kind": timer.kind.value,
                        "generation": timer.generation,
                        "due": timer.due.isoformat(),
                    }
                ).encode(),
                {
                    "Nats-Schedule": f"@at {_at(timer.due)}",
                    "Nats-Schedule-Target": subjects.sla_fire(
                        state.ticket_id, timer.target, timer.kind
                    ),
                    # the state's version: a timer rescheduled at the same instant after a
                    # cancel must not be taken for a duplicate
                    "Nats-Msg-Id": f"sla-{state.ticket_id}-{timer.target}-{timer.kind}-"
                    f"{timer.generation}-{state.version}-{_at(timer.due)}",
                },
            )
            for timer in pending
        ]

    async def publish(self, record: Record) -> PubAck:
        """Publish (or replace) one timer's schedule, acknowledged."""
        return await self._js.publish(
            record.subject, record.data, stream=subjects.SLA_STREAM, headers=record.headers
        )

    async def cancel(self, ticket_id: str, target: SlaTarget, kind: TimerKind) -> None:
        """Remove a timer's schedule, if any (a no-op when there is none)."""
        await self._js.purge_stream(
            subjects.SLA_STREAM, subject=subjects.sla_schedule(ticket_id, target, kind)
        )
