"""The ledger in the ``opora_notifications`` KV bucket.

Keys: ``n.<notification id>`` for records, ``rate.<medium>.<sha256 of the address>`` for rate
windows (a list of send times; addresses never appear in keys). Every write is a
compare-and-set; a rate window lost to a race is read again and retried.
"""

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
        """Count one message in the recipient's sliding window (compare-and-set, retried)."""
        if limit <= 0:
            return Admission(True, ())
        kv = await self._bucket()
        name = rate_key(key)
        decision = Admission(True, ())
        for _ in range(_CAS_ATTEMPTS):
            try:
                entry = await kv.get(name)
                revision: int | None = entry.revision  # a marker's too: write over it
                window = [datetime.fromisoformat(t) for t in json.loads(entry.value or b"[]")]
            except KeyNotFoundError:
                revision, window = None, []
            decision = admit(
                window, now=now, limit=limit, period=timedelta(seconds=period_s), urgent=urgent
            )
            if not decision.admitted:
                return decision
            data = json.dumps([t.isoformat() for t in decision.window]).encode()
            try:
                if revision is None:
                    await kv.create(name, data)
                else:
                    await kv.update(name, data, last=revision)
            except KeyWrongLastSequenceError:
                continue
            return decision
        return decision  # contended for ten rounds: let it through rather than stall
