"""Which inbound Message-ID made (or threaded into) which ticket, in the ticket-ids KV bucket.

A mail is claimed before anything is published: the first delivery creates the key (with the
ticket number it will use), a second delivery of the same Message-ID finds it. The claim is
marked done after the effect; a claim found pending means a crash mid-way, and the mail is
processed again with the same ticket number and event ids, so nothing is made twice.
"""

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from opora_shared import subjects

MAX_TRIES = 20


@dataclass(frozen=True, slots=True)
class MailClaim:
    """The state of one Message-ID."""

    ticket_id: str
    new: bool
    done: bool = False
    outcome: str | None = None
    tenant: str | None = None


def _key(message_id: str) -> str:
    return "mail." + hashlib.sha256(message_id.strip().lower().encode()).hexdigest()[:40]


class MailIndex:
    """Claims and looks up Message-IDs."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(subjects.TICKET_IDS_BUCKET)
        return self._kv

    async def claim(
        self, message_id: str, new_ticket_id: Callable[[], Awaitable[str]]
    ) -> MailClaim:
        """Claim a Message-ID; a fresh claim reserves the ticket number a new ticket would get."""
        kv = await self._bucket()
        key = _key(message_id)
        for _ in range(MAX_TRIES):
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                ticket_id = await new_ticket_id()
                try:
                    await kv.create(key, json.dumps({"ticket": ticket_id, "done": False}).encode())
                except KeyWrongLastSequenceError:
                    continue
                return MailClaim(ticket_id=ticket_id, new=True)
            if entry.value:
                data = json.loads(entry.value)
                return MailClaim(
                    ticket_id=str(data["ticket"]),
                    new=False,
                    done=bool(data.get("done")),
                    outcome=data.get("outcome"),
                    tenant=data.get("tenant"),
                )
        msg = "could not claim the Message-ID"
        raise RuntimeError(msg)

    async def finish(
        self, message_id: str, *, ticket_id: str | None, tenant: str | None, outcome: str
    ) -> None:
        """Mark a claim done, with the ticket it ended up in (None: it made no ticket)."""
        kv = await self._bucket()
        record = {"ticket": ticket_id or "0", "done": True, "outcome": outcome, "tenant": tenant}
        await kv.put(_key(message_id), json.dumps(record).encode())

    async def ticket_of(self, message_id: str) -> tuple[str, str | None] | None:
        """The ticket (and tenant) a Message-ID made or threaded into, if any."""
        kv = await self._bucket()
        try:
            entry = await kv.get(_key(message_id))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        data = json.loads(entry.value)
        if not data.get("done") or str(data.get("ticket", "0")) == "0":
            return None
        return str(data["ticket"]), data.get("tenant")
