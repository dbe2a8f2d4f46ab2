"""The embedded default's mail channel: one .eml file per message under ``var/outbox/``.

Idempotent by construction: the file name is the notification id, written to a temporary name
and renamed into place, so a redelivered event finds the file there and writes nothing twice.
"""

import os
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path


class OutboxChannel:
    """Writes mails as .eml files."""

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, ticket_id: str, notification_id: str) -> Path:
        """Where one notification's file lives."""
        return self.directory / f"{ticket_id}-{notification_id}.eml"

    def send(self, msg: EmailMessage, *, ticket_id: str, notification_id: str) -> bool:
        """Write the mail unless it is already there; True when written now."""
        target = self.path_for(ticket_id, notification_id)
        if target.exists():
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as handle:
            handle.write(msg.as_bytes(policy=SMTP))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        return True
