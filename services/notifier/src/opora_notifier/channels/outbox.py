"""The embedded default's mail channel: one .eml file per message under ``var/outbox/``.

Client mail goes to ``var/outbox/``, the team's to ``var/outbox/team/``, each named
``<ticket>-<notification id>.eml`` (a digest: ``digest-<notification id>.eml``). Idempotent
by construction: the file name is the notification id, written to a temporary name and renamed
into place (fsynced), so after a crash ``confirm`` can tell whether a message was written,
and a redelivery never writes it twice. A crash mid-write leaves ``<name>.tmp<pid>``; the
channel removes those of processes that no longer run when it starts (the chaos run found them).
"""

import asyncio
import os
from email.message import EmailMessage
from pathlib import Path

from opora_notifier.channels import Commit, DeliveryError, Outgoing
from opora_notifier.notices import Audience, Medium
from opora_notifier.rendering import WIRE


class OutboxChannel:
    """Writes mails as .eml files."""

    name = "outbox"
    medium = Medium.EMAIL
    deadline_s = 10.0
    cte = "8bit"  # readable in var/outbox

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.removed_leftovers = remove_leftovers(directory)

    def path_for(self, out: Outgoing) -> Path:
        """Where one notification's file lives."""
        folder = self.directory
        if out.notice.recipient.audience is not Audience.CLIENT:
            folder = folder / "team"
        about = out.notice.ticket_id or out.notice.trigger.value  # digest-<id>.eml
        return folder / f"{about}-{out.notification_id}.eml"

    async def send(self, out: Outgoing, commit: Commit) -> str | None:  # noqa: ARG002
        """Write the mail unless it is there already (the rename is the commit)."""
        if out.mail is None:
            msg = "the outbox channel sends mail only"
            raise DeliveryError(msg, temporary=False, undelivered=True)
        try:
            await asyncio.to_thread(write_eml, out.mail, self.path_for(out))
        except OSError as exc:
            raise DeliveryError(f"outbox: {exc.strerror or exc}", temporary=True) from exc
        return out.message_id

    async def confirm(self, out: Outgoing) -> bool | None:
        """True when the file is there."""
        return self.path_for(out).exists()

    async def close(self) -> None:
        """Nothing to release."""


def remove_leftovers(directory: Path) -> int:
    """Delete temporary files that crashed writers left behind; how many there were."""
    removed = 0
    for folder in (directory, directory / "team"):
        for path in folder.glob("*.tmp*") if folder.is_dir() else ():
            pid = path.suffix.removeprefix(".tmp")
            if pid.isdigit() and not _running(int(pid)):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_eml(mail: EmailMessage, target: Path) -> bool:
    """Write a mail atomically unless the file exists; True when written now."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as handle:
        handle.write(mail.as_bytes(policy=WIRE))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    return True
