"""What an engineer's reply to an alert asks for: a command (``#ack``...) or an answer. Pure.

The first non-empty line of the reply's new text (quoted history and signature already cut by
the parser) decides. ``#ack``, ``#wait``, ``#resolve``, ``#note`` and ``#assign <engineer>``
act on the ticket; the text after the command word (the rest of its line, then the following
lines) goes with it. Anything else is an answer for the client. A first line that starts like a
command (``#`` and a word) but names none is refused, never sent to the client: a mistyped
``#reslove`` must not reach the client as text. ``#1042`` (a number) is ordinary text.

Nothing here decides who may send commands (the mail intake does: team members only).
"""

import re
from dataclasses import dataclass
from enum import StrEnum

from opora_intake.errors import EngineerCommandError
from opora_shared.vocabulary import TicketChange

MAX_TEXT = 100_000


class Verb(StrEnum):
    """What an engineer's mail does to the ticket."""

    ACK = "ack"
    """Acknowledged: someone works on it (stops the first-response clock)."""
    WAIT = "wait"
    """Waiting on the client (pauses the resolution clock); the text is the question."""
    RESOLVE = "resolve"
    """Resolved; the text is the resolution note."""
    NOTE = "note"
    """An internal note: recorded, never sent to the client."""
    ASSIGN = "assign"
    """Hand the ticket to another engineer (``#assign maria``)."""
    REPLY = "reply"
    """No command: the text is the provider's answer to the client."""


CHANGES: dict[Verb, TicketChange] = {
    Verb.ACK: TicketChange.ACKNOWLEDGED,
    Verb.WAIT: TicketChange.WAITING_ON_CLIENT,
    Verb.RESOLVE: TicketChange.RESOLVED,
    Verb.NOTE: TicketChange.NOTE,
    Verb.REPLY: TicketChange.REPLIED,
}
"""The TicketUpdated change of every verb but ``assign`` (which is a TicketAssigned)."""

COMMANDS = tuple(f"#{v.value}" for v in Verb if v is not Verb.REPLY)

# "#" then a word starting with a letter, in any script; "#1042" is not a command.
_COMMAND = re.compile(r"^#(?P<word>[^\W\d_][\w-]*)(?P<rest>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class EngineerCommand:
    """One engineer mail, understood."""

    verb: Verb
    text: str
    """What goes with it: the note, the question, the answer ('' when nothing)."""
    argument: str | None = None
    """The engineer named by ``#assign`` (an id or an address, as written)."""

    @property
    def change(self) -> TicketChange | None:
        """The TicketUpdated change this command records (None for ``#assign``)."""
        return CHANGES.get(self.verb)


def parse_command(text: str) -> EngineerCommand:
    """Read an engineer's reply; EngineerCommandError (its message says why) when unusable."""
    lines = text.strip().splitlines()
    if not lines:
        msg = "an empty reply (nothing above the quoted text)"
        raise EngineerCommandError(msg)
    first = lines[0].strip()
    match = _COMMAND.match(first)
    if match is None:
        return EngineerCommand(Verb.REPLY, text.strip()[:MAX_TEXT])
    word = match["word"].lower()
    try:
        verb = Verb(word)
    except ValueError:
        verb = None
    if verb is None or verb is Verb.REPLY:
        msg = f"unknown command #{_printable(match['word'])}; use one of {', '.join(COMMANDS)}"
        raise EngineerCommandError(msg)
    rest = match["rest"]
    if rest and not rest[0].isspace() and rest[0] not in ":.,;!":
        # "#acknowledged" or "#ack-now": a longer word, not this command
        msg = f"unknown command #{_printable(match['word'])}; use one of {', '.join(COMMANDS)}"
        raise EngineerCommandError(msg)
    rest = rest.lstrip(":.,;! \t")
    argument: str | None = None
    if verb is Verb.ASSIGN:
        argument, _, rest = rest.strip().partition(" ")
        argument = argument.strip().lstrip("@").rstrip(",.;:!")
        if not argument:
            msg = "#assign needs an engineer: #assign maria"
            raise EngineerCommandError(msg)
    body = "\n".join([rest.strip(), *lines[1:]]).strip()[:MAX_TEXT]
    if verb is Verb.NOTE and not body:
        msg = "#note needs the note's text"
        raise EngineerCommandError(msg)
    return EngineerCommand(verb, body, argument)


def _printable(word: str) -> str:
    """A command word as a reason may quote it: bounded and single-line."""
    return word[:32]
