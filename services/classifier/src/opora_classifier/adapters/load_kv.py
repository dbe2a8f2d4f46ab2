"""The routing load projection in the ``opora_load`` KV bucket: one key per open ticket.

Keys:

- ``open.<engineer>.<ticket>``: an ``OpenTicket`` the engineer carries (JSON);
- ``meta.<engineer>``: ``{"last_assigned_at": ...}``, the round-robin mark.

Changes are keyed by ticket (set an entry, drop an entry), so applying one twice changes
nothing: redeliveries are harmless. A change writes only the keys it changes, so its cost does
not grow with the engineer's open tickets. (The first layout, one JSON value per engineer
holding all of their open tickets, was rewritten whole on every change: in an alert storm, with
thousands of open tickets per engineer, routing became the pipeline's bottleneck, measured by
``bench/bench_e2e.py``. Values in that layout, a key ``<engineer>``, are moved to the new one
the first time they are read.)

Each process keeps the bucket in memory: before every read it catches up by reading the
bucket's stream from where it stopped (direct gets, in order, no consumer), so a read sees
every write that was stored before it started, its own and other replicas' (its own writes are
in memory as soon as they are stored, and the catch-up steps over them). It knows nothing of
the routing rules.
"""

import asyncio
import json
from collections.abc import Callable, Iterable
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from opora_classifier.routing import EngineerLoad, OpenTicket
from opora_shared import subjects

STREAM = f"KV_{subjects.LOAD_BUCKET}"
PREFIX = f"$KV.{subjects.LOAD_BUCKET}."
MAX_CATCH_UP = 1_000_000
"""A bound on one catch-up read, so that no read can loop for ever."""


def open_key(engineer_id: str, ticket_id: str) -> str:
    """The key of one open ticket of one engineer."""
    return f"open.{engineer_id}.{ticket_id}"


def meta_key(engineer_id: str) -> str:
    """The key of an engineer's round-robin mark."""
    return f"meta.{engineer_id}"


class LoadStore:
    """Reads and changes engineers' loads."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._open: dict[str, dict[str, OpenTicket]] = {}
        self._last: dict[str, datetime | None] = {}
        self._revisions: dict[str, int] = {}
        """key -> the revision the memory holds (a deleted key's until ``_seen`` passes it)."""
        self._deleted: set[str] = set()
        self._seen = 0
        """The bucket's stream has been read up to this sequence."""
        self._own: set[int] = set()
        """Sequences of this process's own writes not yet passed by a catch-up: they are in
        memory already, so the catch-up steps over them instead of reading them back (two
        direct gets per routed ticket)."""
        self._catching_up = asyncio.Lock()
        self._locks: dict[str, asyncio.Lock] = {}
        self._legacy: set[str] = set()
        """Engineers whose load is still in the first layout."""

    # -- reading -----------------------------------------------------------------------

    async def catch_up(self) -> None:
        """Read what was stored in the bucket since the last catch-up."""
        async with self._catching_up:
            seq = self._seen + 1
            for _ in range(MAX_CATCH_UP):
                while seq in self._own:  # this process's own write, applied when it was made
                    self._own.discard(seq)
                    seq += 1
                try:
                    raw = await self._js.get_msg(
                        STREAM, seq=seq, subject=f"{PREFIX}>", next=True, direct=True
                    )
                except NotFoundError:
                    break
                if raw.seq is None or raw.subject is None:
                    break
                operation = (raw.headers or {}).get("KV-Operation")
                marker = (raw.headers or {}).get("Nats-Marker-Reason")
                gone = operation in ("DEL", "PURGE") or marker is not None
                self._apply(raw.subject[len(PREFIX) :], raw.seq, None if gone else raw.data)
                seq = raw.seq + 1
            self._seen = max(self._seen, seq - 1)
            self._own = {own for own in self._own if own > self._seen}
            # a deleted key's revision is only needed until the catch-up has passed it
            for key in [k for k in self._deleted if self._revisions.get(k, 0) <= self._seen]:
                self._deleted.discard(key)
                self._revisions.pop(key, None)
        if self._legacy:
            await self._migrate()

    def _apply(self, key: str, revision: int, value: bytes | None) -> None:
        """Take one stored key into memory, unless memory already holds a newer revision."""
        if revision <= self._revisions.get(key, 0):
            return
        self._revisions[key] = revision
        if value is None:
            self._deleted.add(key)
        else:
            self._deleted.discard(key)
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "open":
            engineer_id, ticket_id = parts[1], parts[2]
            if value is None:
                self._open.get(engineer_id, {}).pop(ticket_id, None)
            else:
                entry = OpenTicket.model_validate_json(value)
                self._open.setdefault(engineer_id, {})[ticket_id] = entry
        elif len(parts) == 2 and parts[0] == "meta":
            if value is None:
                self._last.pop(parts[1], None)
            else:
                mark = json.loads(value).get("last_assigned_at")
                self._last[parts[1]] = datetime.fromisoformat(mark) if mark else None
        elif len(parts) == 1 and value is not None:
            # the first layout: the whole load in one value
            old = EngineerLoad.model_validate_json(value)
            self._open.setdefault(key, {}).update(old.open)
            marks = [m for m in (old.last_assigned_at, self._last.get(key)) if m is not None]
            self._last[key] = max(marks) if marks else None
            self._legacy.add(key)

    async def _migrate(self) -> None:
        """Write first-layout loads as per-ticket keys, then delete the old value.

        Idempotent (every write is keyed), so it needs no lock: replicas may both do it.
        """
        legacy, self._legacy = self._legacy, set()
        for engineer_id in legacy:
            for ticket_id, entry in list(self._open.get(engineer_id, {}).items()):
                await self._put(open_key(engineer_id, ticket_id), entry.model_dump_json())
            await self._put_mark(engineer_id, self._last.get(engineer_id))
            await self._delete_key(engineer_id)

    def _snapshot(self, engineer_id: str) -> EngineerLoad:
        return EngineerLoad.model_construct(
            open=dict(self._open.get(engineer_id, {})),
            last_assigned_at=self._last.get(engineer_id),
        )

    async def get(self, engineer_id: str) -> EngineerLoad:
        """One engineer's load (empty when they carry nothing)."""
        await self.catch_up()
        return self._snapshot(engineer_id)

    async def get_many(self, engineer_ids: Iterable[str]) -> dict[str, EngineerLoad]:
        """The loads of several engineers, after one catch-up."""
        ids = [engineer_id for engineer_id in dict.fromkeys(engineer_ids) if engineer_id]
        await self.catch_up()
        return {engineer_id: self._snapshot(engineer_id) for engineer_id in ids}

    async def engineer_ids(self) -> list[str]:
        """Every engineer with a key, including any the team file no longer names."""
        await self.catch_up()
        holders = {engineer_id for engineer_id, open_ in self._open.items() if open_}
        return sorted(holders | set(self._last))

    # -- writing -----------------------------------------------------------------------

    def _lock(self, engineer_id: str) -> asyncio.Lock:
        return self._locks.setdefault(engineer_id, asyncio.Lock())

    async def _put(self, key: str, value: str) -> None:
        data = value.encode()
        ack = await self._js.publish(f"{PREFIX}{key}", data)
        self._apply(key, ack.seq, data)
        self._wrote(ack.seq)

    async def _delete_key(self, key: str) -> None:
        ack = await self._js.publish(f"{PREFIX}{key}", b"", headers={"KV-Operation": "DEL"})
        self._apply(key, ack.seq, None)
        self._wrote(ack.seq)

    def _wrote(self, seq: int) -> None:
        if seq > self._seen:
            self._own.add(seq)

    async def _put_mark(self, engineer_id: str, mark: datetime | None) -> None:
        value = json.dumps({"last_assigned_at": mark.isoformat() if mark else None})
        await self._put(meta_key(engineer_id), value)

    async def change(
        self, engineer_id: str, change: Callable[[EngineerLoad], EngineerLoad]
    ) -> EngineerLoad:
        """Apply a pure change of one engineer's load; write the keys it changed; the load."""
        async with self._lock(engineer_id):
            await self.catch_up()
            current = self._snapshot(engineer_id)
            new = change(current)
            if new is current:
                return current
            writes = []
            for ticket_id, entry in new.open.items():
                old = current.open.get(ticket_id)
                if old is not entry and old != entry:
                    key = open_key(engineer_id, ticket_id)
                    writes.append(self._put(key, entry.model_dump_json()))
            for ticket_id in current.open.keys() - new.open.keys():
                writes.append(self._delete_key(open_key(engineer_id, ticket_id)))
            if new.last_assigned_at != current.last_assigned_at:
                writes.append(self._put_mark(engineer_id, new.last_assigned_at))
            await asyncio.gather(*writes)
            return self._snapshot(engineer_id)

    async def delete(self, engineer_id: str) -> None:
        """Forget an engineer's load (tests and operators rebuilding the projection)."""
        async with self._lock(engineer_id):
            await self.catch_up()
            keys = [open_key(engineer_id, t) for t in self._open.get(engineer_id, {})]
            if engineer_id in self._last:
                keys.append(meta_key(engineer_id))
            await asyncio.gather(*(self._delete_key(key) for key in keys))
            self._last.pop(engineer_id, None)
