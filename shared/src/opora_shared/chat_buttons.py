"""What the buttons of chat alerts carry, written by the notifier and read by the intake.

- **Telegram**: ``callback_data`` ``opora:<verb>:<ticket>`` (at most 64 bytes, so no tenant;
  the bot's webhook is authenticated by its secret token instead).
- **Slack**: ``action_id`` ``opora_<verb>`` and ``value`` ``<tenant>:<ticket>`` (the request is
  signed by Slack with the app's signing secret).
- **Mattermost**: the button's integration ``context`` is ``{"token": ...}``, a token naming
  the tenant, the ticket and the verb, signed with HMAC-SHA256 (itsdangerous) under the
  deployment's signing key with a salt of its own (never an approval or status token), so a
  press forged by anyone who can reach the intake is refused.

Pure apart from nothing: the key is passed in.
"""

import re
from dataclasses import dataclass
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from opora_shared.errors import OporaError
from opora_shared.vocabulary import TicketChange

_SALT = "opora.chat-button.v1"
MATTERMOST_MAX_AGE_S = 90 * 24 * 3600
"""How long a Mattermost button works: longer than any alert should stay unanswered."""


class ChatVerb(StrEnum):
    """What a chat button does to the ticket (the same as an engineer's ``#ack``/``#resolve``)."""

    ACK = "ack"
    """Acknowledged: someone works on it (stops the first-response clock)."""
    RESOLVE = "resolve"
    """Resolved."""

    @property
    def change(self) -> TicketChange:
        """The TicketUpdated change a press records."""
        return TicketChange.ACKNOWLEDGED if self is ChatVerb.ACK else TicketChange.RESOLVED


class ChatButtonError(OporaError):
    """A button's data is forged, altered, expired or not Opora's; the message says which."""


_TICKET = r"[1-9][0-9]{0,11}"
_CALLBACK = re.compile(rf"^opora:(?P<verb>ack|resolve):(?P<ticket>{_TICKET})$")
_SLACK_VALUE = re.compile(rf"^(?P<tenant>[a-z][a-z0-9_-]{{0,31}}):(?P<ticket>{_TICKET})$")


def telegram_callback(verb: ChatVerb, ticket_id: str) -> str:
    """A Telegram button's ``callback_data``."""
    return f"opora:{verb.value}:{ticket_id}"


def parse_telegram_callback(data: str | None) -> tuple[ChatVerb, str] | None:
    """(verb, ticket id) of one of our Telegram buttons, or None for anything else."""
    match = _CALLBACK.match(data or "")
    return (ChatVerb(match["verb"]), match["ticket"]) if match else None


def slack_action_id(verb: ChatVerb) -> str:
    """A Slack button's ``action_id``."""
    return f"opora_{verb.value}"


def slack_value(tenant: str, ticket_id: str) -> str:
    """A Slack button's ``value``."""
    return f"{tenant}:{ticket_id}"


def parse_slack_action(
    action_id: str | None, value: str | None
) -> tuple[ChatVerb, str, str] | None:
    """(verb, tenant, ticket id) of one of our Slack buttons, or None for anything else."""
    verb = {slack_action_id(v): v for v in ChatVerb}.get(action_id or "")
    match = _SLACK_VALUE.match(value or "")
    if verb is None or match is None:
        return None
    return verb, match["tenant"], match["ticket"]


@dataclass(frozen=True, slots=True)
class ButtonClaim:
    """What a valid Mattermost button token says."""

    tenant: str
    ticket_id: str
    verb: ChatVerb


class ButtonSigner:
    """Makes and checks the tokens of Mattermost buttons under one key."""

    def __init__(self, key: bytes, *, max_age_s: int = MATTERMOST_MAX_AGE_S) -> None:
        if len(key) < 16:
            msg = "the signing key must be at least 16 bytes (set OPORA_SIGNING_KEY)"
            raise ValueError(msg)
        self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
        self.max_age_s = max_age_s

    def sign(self, tenant: str, ticket_id: str, verb: ChatVerb) -> str:
        """A token for one verb on one ticket."""
        return str(self._serializer.dumps([tenant, ticket_id, verb.value]))

    def verify(self, token: str) -> ButtonClaim:
        """The claim of a valid token; ChatButtonError saying why otherwise."""
        try:
            payload = self._serializer.loads(token, max_age=self.max_age_s)
        except SignatureExpired:
            msg = f"the button has expired (buttons work {self.max_age_s // 86400} days)"
            raise ChatButtonError(msg) from None
        except BadSignature:
            msg = "the button is not valid (altered or not issued by this Opora)"
            raise ChatButtonError(msg) from None
        if (
            not isinstance(payload, list)
            or len(payload) != 3
            or not all(isinstance(part, str) and part for part in payload)
            or payload[2] not in {v.value for v in ChatVerb}
        ):
            msg = "the button is not valid (unexpected content)"
            raise ChatButtonError(msg)
        tenant, ticket_id, verb = payload
        return ButtonClaim(tenant, ticket_id, ChatVerb(verb))
