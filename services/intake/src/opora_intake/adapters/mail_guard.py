"""Daily counters of automatic mail, the last guard against mail loops (KV with expiring keys)."""

import hashlib
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from opora_shared import subjects

MAX_TRIES = 20


class MailGuard:
    """Counts automatic mails per sender and per ticket per UTC day."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(subjects.MAIL_GUARD_BUCKET)
        return self._kv

    async def count(self, scope: str, who: str, now: datetime) -> int:
        """Add one to today's counter of ``scope``/``who`` and return the new value."""
        kv = await self._bucket()
        digest = hashlib.sha256(who.lower().encode()).hexdigest()[:32]
        key = f"{scope}.{digest}.{now:%Y%m%d}"
        for _ in range(MAX_TRIES):
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                try:
                    await kv.create(key, b"1")
                except KeyWrongLastSequenceError:
                    continue
                return 1
            value = int(entry.value or b"0") + 1
            try:
                await kv.update(key, str(value).encode(), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            return value
        msg = "mail guard counter contended"
        raise RuntimeError(msg)
