"""The ledger in the ``opora_notifications`` KV bucket.

Keys: ``n.<notification id>`` for records, ``rate.<medium>.<sha256 of the address>`` for rate
windows (a list of send times; addresses never appear in keys). Every write is a
compare-and-set; a rate window lost to a race is read again and retried.
"""

import asyncio
import hashlib
import json
from datetime import datetime, timedelta

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from opora_notifier.ledger import LedgerConflict, Record
from opora_notifier.policy import Admission, admit
from opora_shared import subjects

_CAS_ATTEMPTS = 10
_REMEMBERED_WINDOWS = 4096


def rate_key(recipient_key: str) -> str:
    """The KV key of one recipient's rate window."""
    medium, _, address = recipient_key.rpartition(":")
    digest = hashlib.sha256(address.encode()).hexdigest()[:32]
    return f"rate.{medium or 'email'}.{digest}"


class KvLedger:
    """Records and rate windows in JetStream KV."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None
        self._stripes = tuple(asyncio.Lock() for _ in range(64))
        self._windows: dict[str, tuple[int | None, tuple[datetime, ...]]] = {}
        """The rate windows this process wrote last, with their revisions (oldest first)."""

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(subjects.NOTIFY_BUCKET)
        return self._kv

    async def get(self, notification_id: str) -> tuple[Record | None, int | None]:
        """The record and its revision, or (None, None)."""
        kv = await self._bucket()
        try:
            entry = await kv.get(f"n.{notification_id}")
        except KeyNotFoundError:
            return None, None
        if entry.value is None:  # an expired key's marker (TECH-NOTES): absent, but write over it
            return None, entry.revision
        return Record.model_validate_json(entry.value), entry.revision

    async def put(self, notification_id: str, record: Record, revision: int | None) -> int:
        """Compare-and-set; LedgerConflict when someone else wrote first."""
        kv = await self._bucket()
        data = record.model_dump_json().encode()
        try:
            if revision is None:
                return await kv.create(f"n.{notification_id}", data)
            return await kv.update(f"n.{notification_id}", data, last=revision)
        except KeyWrongLastSequenceError as exc:
            msg = f"notification {notification_id} changed meanwhile"
            raise LedgerConflict(msg) from exc

    async def admit(
        self, key: str, *, now: datetime, limit: int, period_s: float, urgent: bool
    ) -> Admission:
        """Count one message in the recipient's sliding window (compare-and-set, retried).

        Notices to one recipient take turns within this process (an alert storm pages the
        on-duty engineer hundreds of times at once, and every concurrent compare-and-set but
        one failed and went round again: 20 reads and 22 writes of the window per ticket), and
        the window this process wrote last is remembered with its revision, so the next notice
        writes without reading first unless another replica wrote meanwhile.
        """
        if limit <= 0:
            return Admission(True, ())
        name = rate_key(key)
        async with self._stripes[hash(name) % len(self._stripes)]:
            return await self._admit(name, now, limit, timedelta(seconds=period_s), urgent)

    async def _admit(
        self, name: str, now: datetime, limit: int, period: timedelta, urgent: bool
    ) -> Admission:
        kv = await self._bucket()
        decision = Admission(True, ())
        for _ in range(_CAS_ATTEMPTS):
            known = self._windows.pop(name, None)
            if known is not None:
                revision, window = known
            else:
                try:
                    entry = await kv.get(name)
                    revision = entry.revision  # a marker's too: write over it
                    window = tuple(
                        datetime.fromisoformat(t) for t in json.loads(entry.value or b"[]")
                    )
                except KeyNotFoundError:
                    revision, window = None, ()
            decision = admit(window, now=now, limit=limit, period=period, urgent=urgent)
            if not decision.admitted:
                self._remember(name, revision, window)
                return decision
            data = json.dumps([t.isoformat() for t in decision.window]).encode()
            try:
                if revision is None:
                    written = await kv.create(name, data)
                else:
                    written = await kv.update(name, data, last=revision)
            except KeyWrongLastSequenceError:
                continue  # another replica wrote it: read it again
            self._remember(name, written, decision.window)
            return decision
        return decision  # contended for ten rounds: let it through rather than stall

    def _remember(self, name: str, revision: int | None, window: tuple[datetime, ...]) -> None:
        self._windows[name] = (revision, window)
        while len(self._windows) > _REMEMBERED_WINDOWS:
            self._windows.pop(next(iter(self._windows)))
