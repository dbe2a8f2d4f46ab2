"""The routing load projection in the ``opora_load`` KV bucket: one key per engineer id.

Each value is an ``EngineerLoad`` as JSON: ``{"open": {ticket_id: {tenant, priority,
assigned_at, ...}}, "last_assigned_at": ...}``. Every change is a pure function of the current
value, written with compare-and-set and retried on conflict, so replicas never lose each other's
writes. Changes are keyed by ticket id (set an entry, drop an entry), so applying one twice
changes nothing: redeliveries are harmless. It knows nothing of the routing rules.
"""

import asyncio
from collections.abc import Callable, Iterable

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from opora_classifier.routing import EMPTY, EngineerLoad
from opora_shared import subjects

CAS_ATTEMPTS = 20


class LoadConflictError(Exception):
    """The key kept changing under every attempt; the caller fails and the message is retried."""


class LoadStore:
    """Reads and changes engineers' loads."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(subjects.LOAD_BUCKET)
        return self._kv

    async def _read(self, engineer_id: str) -> tuple[EngineerLoad, int]:
        """The load and its revision (an empty load and 0 when absent)."""
        kv = await self._bucket()
        try:
            entry = await kv.get(engineer_id)
        except KeyNotFoundError:
            return EMPTY, 0
        if entry.value is None:  # a delete marker
            return EMPTY, int(entry.revision or 0)
        return EngineerLoad.model_validate_json(entry.value), int(entry.revision or 0)

    async def get(self, engineer_id: str) -> EngineerLoad:
        """One engineer's load (empty when they carry nothing)."""
        load, _ = await self._read(engineer_id)
        return load

    async def get_many(self, engineer_ids: Iterable[str]) -> dict[str, EngineerLoad]:
        """The loads of several engineers, read concurrently."""
        ids = [engineer_id for engineer_id in dict.fromkeys(engineer_ids) if engineer_id]
        loads = await asyncio.gather(*(self.get(engineer_id) for engineer_id in ids))
        return dict(zip(ids, loads, strict=True))

    async def engineer_ids(self) -> list[str]:
        """Every engineer with a key, including any the team file no longer names."""
        kv = await self._bucket()
        try:
            return sorted(await kv.keys())
        except NoKeysError:
            return []

    async def change(
        self, engineer_id: str, change: Callable[[EngineerLoad], EngineerLoad]
    ) -> EngineerLoad:
        """Apply a pure change with compare-and-set, retrying on conflict; the stored load."""
        kv = await self._bucket()
        for _ in range(CAS_ATTEMPTS):
            current, revision = await self._read(engineer_id)
            new = change(current)
            if new == current:
                return current
            data = new.model_dump_json().encode()
            try:
                if revision == 0:
                    await kv.create(engineer_id, data)
                else:
                    await kv.update(engineer_id, data, last=revision)
            except KeyWrongLastSequenceError:
                continue
            return new
        msg = f"load of {engineer_id}: still changing after {CAS_ATTEMPTS} attempts"
        raise LoadConflictError(msg)

    async def delete(self, engineer_id: str) -> None:
        """Forget an engineer's load (tests and operators rebuilding the projection)."""
        kv = await self._bucket()
        await kv.delete(engineer_id)
