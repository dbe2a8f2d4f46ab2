"""Signed status links: the client follows one from the acknowledgement to see the ticket's work.

A token names a tenant and a ticket, signed with HMAC-SHA256 (itsdangerous) under the
deployment's signing key, the one approval links use (``OPORA_SIGNING_KEY``, else
``var/signing.key``), with a salt of its own, so that an approval token is never a status token
and the other way round. It is a bearer link: whoever holds it sees that one ticket's status
page (never another ticket, never another tenant's), so the page shows no addresses and no
internal notes. Tokens carry the time they were made; the intake refuses them after
``max_age_s`` (a year by default). Pure apart from reading the key file.

The notifier builds one ``StatusLinks`` at start and puts
``status_url(settings.public_url, links.sign(tenant, ticket_id))`` in the acknowledgement.
"""

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from opora_shared.approvals import signing_key
from opora_shared.errors import OporaError
from opora_shared.settings import OporaSettings

_SALT = "opora.status.v1"
DEFAULT_MAX_AGE_S = 365 * 24 * 3600
"""How long a status link works: a year, longer than any ticket should stay open."""


class StatusLinkError(OporaError):
    """The status link is forged, altered, for another purpose, or expired; the message says why."""


class StatusLinks:
    """Makes and checks status-page tokens under one key."""

    def __init__(self, key: bytes, *, max_age_s: int = DEFAULT_MAX_AGE_S) -> None:
        if len(key) < 16:
            msg = "the signing key must be at least 16 bytes (set OPORA_SIGNING_KEY)"
            raise ValueError(msg)
        if max_age_s <= 0:
            msg = "a status link's validity must be positive"
            raise ValueError(msg)
        self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
        self.max_age_s = max_age_s

    @classmethod
    def from_settings(
        cls, settings: OporaSettings, *, max_age_s: int = DEFAULT_MAX_AGE_S
    ) -> "StatusLinks":
        """Status links under the deployment's key (``OPORA_SIGNING_KEY`` or the key file)."""
        secret = settings.signing_key.get_secret_value() if settings.signing_key else None
        return cls(signing_key(secret, settings.signing_key_file), max_age_s=max_age_s)

    def sign(self, tenant: str, ticket_id: str) -> str:
        """A URL-safe token for one ticket's status page."""
        return str(self._serializer.dumps([tenant, ticket_id]))

    def verify(self, token: str) -> tuple[str, str]:
        """``(tenant, ticket_id)`` of a valid token; StatusLinkError saying why otherwise."""
        try:
            payload = self._serializer.loads(token, max_age=self.max_age_s)
        except SignatureExpired:
            days = self.max_age_s // 86400
            msg = f"the status link has expired (links are valid {days} days)"
            raise StatusLinkError(msg) from None
        except BadSignature:
            msg = "the status link is not valid (altered or not issued by this Opora)"
            raise StatusLinkError(msg) from None
        if (
            not isinstance(payload, list)
            or len(payload) != 2
            or not all(isinstance(part, str) and part for part in payload)
        ):
            msg = "the status link is not valid (unexpected content)"
            raise StatusLinkError(msg)
        tenant, ticket_id = payload
        return tenant, ticket_id


def status_url(public_url: str, token: str) -> str:
    """The status page's address as clients see it: ``{public_url}/status/{token}``."""
    return f"{public_url.rstrip('/')}/status/{token}"


def status_link(settings: OporaSettings, tenant: str, ticket_id: str) -> str:
    """The full status link of one ticket (for a message): key, token and public address."""
    return status_url(
        settings.public_url, StatusLinks.from_settings(settings).sign(tenant, ticket_id)
    )
