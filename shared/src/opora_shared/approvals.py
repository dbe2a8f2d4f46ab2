"""Signed, expiring approval links: the approver approves or declines billable work by a click.

The notifier puts two links in the approval request; the intake checks the signature and the
age, then records the decision as a TicketUpdated event. The token names the tenant, the ticket,
the approver and the decision, signed with HMAC-SHA256 (itsdangerous) under a key every service
of one deployment shares (``OPORA_SIGNING_KEY``, else ``var/signing.key``, created 0600 on first
use). A token for one ticket or decision is useless for any other. Pure apart from the key file.
"""

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from opora_shared.errors import OporaError

Decision = Literal["approve", "decline"]
_SALT = "opora.approval.v1"


class ApprovalLinkError(OporaError):
    """The link is forged, altered, for another purpose, or expired; the message says which."""


@dataclass(frozen=True, slots=True)
class ApprovalClaim:
    """What a valid approval link says."""

    tenant: str
    ticket_id: str
    approver: str
    decision: Decision


def signing_key(configured: str | None, key_file: Path) -> bytes:
    """The deployment's signing key: the configured one, else the key file (made if absent)."""
    if configured:
        return configured.encode()
    try:
        return key_file.read_bytes().strip()
    except FileNotFoundError:
        pass
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another service made it first
        return key_file.read_bytes().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return key_file.read_bytes().strip()


class ApprovalSigner:
    """Makes and checks approval tokens under one key."""

    def __init__(self, key: bytes, *, max_age_s: int = 7 * 24 * 3600) -> None:
        if len(key) < 16:
            msg = "the signing key must be at least 16 bytes (set OPORA_SIGNING_KEY)"
            raise ValueError(msg)
        self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
        self.max_age_s = max_age_s

    def sign(self, claim: ApprovalClaim) -> str:
        """A URL-safe token for one decision on one ticket."""
        payload = [claim.tenant, claim.ticket_id, claim.approver, claim.decision]
        return str(self._serializer.dumps(payload))

    def verify(self, token: str) -> ApprovalClaim:
        """The claim of a valid token; ApprovalLinkError saying why otherwise."""
        try:
            payload = self._serializer.loads(token, max_age=self.max_age_s)
        except SignatureExpired:
            msg = f"the approval link has expired (links are valid {self.max_age_s // 3600} h)"
            raise ApprovalLinkError(msg) from None
        except BadSignature:
            msg = "the approval link is not valid (altered or not issued by this Opora)"
            raise ApprovalLinkError(msg) from None
        if (
            not isinstance(payload, list)
            or len(payload) != 4
            or not all(isinstance(part, str) for part in payload)
            or payload[3] not in ("approve", "decline")
        ):
            msg = "the approval link is not valid (unexpected content)"
            raise ApprovalLinkError(msg)
        tenant, ticket_id, approver, decision = payload
        return ApprovalClaim(tenant, ticket_id, approver, decision)
