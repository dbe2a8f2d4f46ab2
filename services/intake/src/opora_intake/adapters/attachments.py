"""Attachments and original messages in the JetStream object store, named by ticket."""

import hashlib
import re

from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from opora_shared import subjects
from opora_shared.events import AttachmentRef

_UNSAFE = re.compile(r"[^0-9A-Za-zА-Яа-яЁё._ -]+")


class AttachmentStore:
    """Stores files for tickets; returns references for the ticket events."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._obs: ObjectStore | None = None

    async def _store(self) -> ObjectStore:
        if self._obs is None:
            self._obs = await self._js.object_store(subjects.ATTACHMENTS_BUCKET)
        return self._obs

    async def put(
        self, ticket_id: str, filename: str, content_type: str, data: bytes, *, inline: bool = False
    ) -> AttachmentRef:
        """Store one file (idempotent: the name is derived from the ticket and the content)."""
        digest = hashlib.sha256(data).hexdigest()
        safe = _UNSAFE.sub("_", filename)[:120] or "file"
        name = f"{ticket_id}/{digest[:16]}/{safe}"
        await (await self._store()).put(name, data)
        return AttachmentRef(
            filename=filename,
            content_type=content_type,
            size=len(data),
            sha256=digest,
            object_name=name,
            inline=inline,
        )

    async def put_original(self, ticket_id: str, message_key: str, raw: bytes) -> str:
        """Store the raw message as received; returns its object name."""
        digest = hashlib.sha256(message_key.encode()).hexdigest()[:16]
        name = f"{ticket_id}/original-{digest}.eml"
        await (await self._store()).put(name, raw)
        return name

    async def get(self, name: str) -> bytes:
        """Read a stored file back."""
        result = await (await self._store()).get(name)
        return bytes(result.data or b"")
