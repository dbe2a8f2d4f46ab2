"""Webhook signatures: HMAC-SHA256 over the timestamp and the body. Pure.

Opora signs every webhook request with the deployment's webhook secret::

    X-Opora-Timestamp: 1767225600
    X-Opora-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

A receiver recomputes the HMAC over the raw bytes it received, compares in constant time,
and refuses a timestamp more than five minutes from its clock (a replayed request). The
header may list several ``v1=`` values separated by commas (during a secret rotation);
one match is enough. ``verify`` is the reference implementation (docs/notifications.md).
"""

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Opora-Timestamp"
SIGNATURE_HEADER = "X-Opora-Signature"
DELIVERY_HEADER = "X-Opora-Delivery"
"""The notification id: the same on every retry of one message, so receivers deduplicate."""
EVENT_HEADER = "X-Opora-Event"
"""The trigger: page, sla_warning, sla_breached, escalated, needs_review, approval_outcome."""
VERSION = "v1"
TOLERANCE_S = 300


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for one request."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def verify(
    secret: bytes,
    *,
    timestamp: str,
    body: bytes,
    header: str,
    now: float,
    tolerance_s: float = TOLERANCE_S,
) -> bool:
    """True when one of the header's signatures matches and the timestamp is recent."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance_s:
        return False
    expected = signature(secret, sent_at, body)
    return any(hmac.compare_digest(candidate.strip(), expected) for candidate in header.split(","))
