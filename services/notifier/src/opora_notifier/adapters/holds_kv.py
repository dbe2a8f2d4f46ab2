"""Triggers whose notices wait (quiet hours, a rate limit, another replica's claim).

A held trigger is acknowledged to JetStream at once and remembered here instead, as
``hold.<consumer>.<stream sequence>`` in the ``opora_notifications`` bucket with the time it
is due. Holding a message unacknowledged for hours would count against the consumer's
``max_ack_pending`` (a night of alerts could stall new pages) and show as consumer lag. Every
replica scans the due holds; one claims each with compare-and-set, replays the trigger from
the stream, and deletes the hold, or moves it on if its notices still wait.
"""

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from opora_shared import subjects
from opora_shared.nats.kv import kv_snapshot

_CAS_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class Held:
    """One waiting trigger."""

    consumer: str
    stream_seq: int
    due: datetime
    revision: int

    @property
    def key(self) -> str:
        """Its KV key."""
        return hold_key(self.consumer, self.stream_seq)


def hold_key(consumer: str, stream_seq: int) -> str:
    """The KV key of a held trigger."""
    return f"hold.{consumer}.{stream_seq}"


class KvHolds:
    """Held triggers in JetStream KV."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(subjects.NOTIFY_BUCKET)
        return self._kv

    async def hold(self, consumer: str, stream_seq: int, due: datetime) -> None:
        """Remember a trigger until ``due`` (the earlier time, if it is held already)."""
        kv = await self._bucket()
        key = hold_key(consumer, stream_seq)
        for _ in range(_CAS_ATTEMPTS):
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                entry = None
            try:
                if entry is None:
                    await kv.create(key, _encode(due))
                    return
                current = _decode(entry.value) if entry.value else None
                if current is not None and current <= due:
                    return
                await kv.update(key, _encode(due), last=entry.revision)
                return
            except KeyWrongLastSequenceError:
                continue

    async def due(self, now: datetime, *, limit: int = 500) -> list[Held]:
        """Held triggers due by ``now`` (at most ``limit``), earliest first."""
        try:
            entries = await kv_snapshot(self._js, subjects.NOTIFY_BUCKET, "hold.>")
        except NatsTimeoutError:  # the next scan looks again
            return []
        found: list[Held] = []
        for entry in entries:
            if not entry.value:
                continue
            _, consumer, seq = entry.key.split(".", 2)
            due = _decode(entry.value)
            if due <= now:
                found.append(Held(consumer, int(seq), due, entry.revision or 0))
        return sorted(found, key=lambda h: h.due)[:limit]

    async def claim(self, held: Held, until: datetime) -> Held | None:
        """Take a due hold for a while (other replicas skip it); None if someone was first."""
        kv = await self._bucket()
        try:
            revision = await kv.update(held.key, _encode(until), last=held.revision)
        except KeyWrongLastSequenceError:
            return None
        return Held(held.consumer, held.stream_seq, until, revision)

    async def release(self, held: Held) -> None:
        """Done: forget the hold (unless it was held again meanwhile)."""
        kv = await self._bucket()
        with contextlib.suppress(KeyWrongLastSequenceError):
            await kv.delete(held.key, last=held.revision)

    async def postpone(self, held: Held, due: datetime) -> None:
        """Its notices still wait: look again at ``due``."""
        kv = await self._bucket()
        with contextlib.suppress(KeyWrongLastSequenceError):
            await kv.update(held.key, _encode(due), last=held.revision)


def _encode(due: datetime) -> bytes:
    return json.dumps({"due": due.isoformat()}).encode()


def _decode(value: bytes) -> datetime:
    return datetime.fromisoformat(json.loads(value)["due"])
