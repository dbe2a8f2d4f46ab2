"""Ticket numbers from a JetStream KV counter, and the index of channel ids to tickets.

Numbers are reserved in blocks with compare-and-set, so that replicas never collide and most
tickets cost no KV round trip. A channel id (an email's Message-ID, an Idempotency-Key) is
claimed with ``create`` (fails if present), which makes a resubmission find its first ticket.
"""

import asyncio
import hashlib

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from opora_shared import subjects

COUNTER_KEY = "counter"
MAX_CAS_TRIES = 50


class TicketIds:
    """Allocates ticket numbers and remembers which channel id made which ticket."""

    def __init__(self, js: JetStreamContext, *, block_size: int = 50) -> None:
        self._js = js
        self._block = block_size
        self._kv: KeyValue | None = None
        self._next = 0
        self._end = 0
        self._lock = asyncio.Lock()

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(subjects.TICKET_IDS_BUCKET)
        return self._kv

    async def next_id(self) -> str:
        """A fresh ticket number, never given out before."""
        async with self._lock:
            if self._next >= self._end:
                self._next, self._end = await self._reserve()
            value = self._next
            self._next += 1
            return str(value)

    async def _reserve(self) -> tuple[int, int]:
        kv = await self._bucket()
        for _ in range(MAX_CAS_TRIES):
            try:
                entry = await kv.get(COUNTER_KEY)
            except KeyNotFoundError:
                try:
                    await kv.create(COUNTER_KEY, str(self._block).encode())
                except KeyWrongLastSequenceError:
                    continue
                return 1, 1 + self._block
            last = int(entry.value or b"0")
            try:
                await kv.update(COUNTER_KEY, str(last + self._block).encode(), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            return last + 1, last + 1 + self._block
        msg = "could not reserve ticket numbers (counter contended)"
        raise RuntimeError(msg)

    async def claim(self, source_ref: str) -> tuple[str, bool]:
        """The ticket of a channel id: (id, True) when new, (existing id, False) when seen."""
        kv = await self._bucket()
        key = "src." + hashlib.sha256(source_ref.encode()).hexdigest()[:40]
        for _ in range(MAX_CAS_TRIES):
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                ticket_id = await self.next_id()
                try:
                    await kv.create(key, ticket_id.encode())
                except KeyWrongLastSequenceError:
                    continue  # another replica claimed it first: read theirs
                return ticket_id, True
            if entry.value:
                return entry.value.decode(), False
        msg = "could not claim the channel id"
        raise RuntimeError(msg)
