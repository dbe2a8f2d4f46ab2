"""The IMAP channel: the mailboxes file, and one poller per mailbox feeding the mail intake.

``OPORA_IMAP_MAILBOXES_FILE`` names a YAML list of mailboxes (fields of ``ImapMailbox``). A
password is never written in the file: ``password_env: NAME`` names the environment variable
that holds it.
"""

import asyncio
import logging
import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from opora_intake.adapters.imap import ImapMailbox, ImapPoller
from opora_intake.mail_intake import MailIntake
from opora_shared.errors import ConfigError

log = logging.getLogger(__name__)


def load_mailboxes(path: Path) -> list[ImapMailbox]:
    """Read and validate the mailboxes file; errors name the file, the entry and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        msg = f"{path}: cannot read the mailboxes file ({exc})"
        raise ConfigError(msg) from None
    if not isinstance(data, list):
        msg = f"{path}: expected a list of mailboxes"
        raise ConfigError(msg)
    mailboxes = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            msg = f"{path}: entry {index} is not a mapping"
            raise ConfigError(msg)
        entry = dict(entry)
        if "password_env" in entry:
            name = str(entry.pop("password_env"))
            if name not in os.environ:
                msg = f"{path}: entry {index}: environment variable {name} is not set"
                raise ConfigError(msg)
            entry["password"] = os.environ[name]
        try:
            mailboxes.append(ImapMailbox.model_validate(entry))
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            msg = f"{path}: entry {index}: {fields}"
            raise ConfigError(msg) from None
    return mailboxes


class ImapChannel:
    """Runs one poller per mailbox until stopped."""

    def __init__(self, mailboxes: list[ImapMailbox], intake: MailIntake) -> None:
        self._intake = intake
        self._stop = asyncio.Event()
        self.pollers = [ImapPoller(box, self._on_message) for box in mailboxes]
        self._tasks: list[asyncio.Task[None]] = []

    async def _on_message(self, raw: bytes) -> None:
        # Raises when NATS cannot store it: the poller leaves the mail in place and retries.
        await self._intake.receive(raw, channel="imap")

    def start(self) -> None:
        """Start every poller in the running loop."""
        self._tasks = [asyncio.create_task(p.run(self._stop)) for p in self.pollers]
        log.info("IMAP: %d mailbox(es) watched", len(self._tasks))

    async def stop(self) -> None:
        """Stop the pollers and wait for them."""
        self._stop.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
