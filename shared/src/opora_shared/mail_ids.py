"""The Message-IDs of Opora's own mail: they name the ticket, so replies and bounces find it.

``<opora.<ticket_id>.<notification_id>@<domain>>``: the notifier makes them, the intake reads
them back from In-Reply-To, References and bounces. Pure.
"""

import re

_OURS = re.compile(r"^<?opora\.([1-9][0-9]{0,11})\.([0-9a-zA-Z-]{1,64})@([^>\s]+)>?$")


def outbound_message_id(ticket_id: str, notification_id: str, domain: str) -> str:
    """The Message-ID of one notification mail."""
    return f"<opora.{ticket_id}.{notification_id}@{domain}>"


def parse_outbound(message_id: str | None, domain: str) -> tuple[str, str] | None:
    """(ticket id, notification id) when the Message-ID is one of ours on this domain."""
    if not message_id:
        return None
    match = _OURS.match(message_id.strip())
    if not match or match[3].lower() != domain.lower():
        return None
    return match[1], match[2]
