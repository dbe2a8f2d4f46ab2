"""Each ticket's SLA clocks in the ``opora_sla`` KV bucket, updated with compare-and-set."""

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from opora_shared import subjects
from opora_shared.nats.stage import Record, kv_record
from opora_sla_timer.clocks import SlaState


class StateConflictError(Exception):
    """Another replica changed the state first; the caller retries (the message is redelivered)."""


class SlaStateStore:
    """Load and save SlaState with its KV revision."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(subjects.SLA_BUCKET)
        return self._kv

    async def load(self, ticket_id: str) -> tuple[SlaState | None, int]:
        """The state and its revision (0 when absent)."""
        kv = await self._bucket()
        try:
            entry = await kv.get(ticket_id)
        except KeyNotFoundError:
            return None, 0
        if entry.value is None:
            return None, 0
        return SlaState.model_validate_json(entry.value), int(entry.revision or 0)

    @staticmethod
    def record(state: SlaState, revision: int) -> Record:
        """The write ``save`` makes, as a message for an atomic batch (compared and set)."""
        return kv_record(
            subjects.SLA_BUCKET, state.ticket_id, state.model_dump_json().encode(), revision
        )

    async def save(self, state: SlaState, revision: int) -> int:
        """Write the state if nobody wrote since ``revision`` (0: create); the new revision."""
        kv = await self._bucket()
        data = state.model_dump_json().encode()
        try:
            if revision == 0:
                return int(await kv.create(state.ticket_id, data))
            return int(await kv.update(state.ticket_id, data, last=revision))
        except KeyWrongLastSequenceError as exc:
            raise StateConflictError(state.ticket_id) from exc
