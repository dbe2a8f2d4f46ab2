"""The generic webhook: engineer alerts as signed JSON, for the provider's own tools.

Body: the notification (id, trigger, urgency), the ticket (id, tenant, subject, priority,
category, scope, link) and the rendered subject and text. Headers: the signature over
timestamp and body (``opora_notifier.signing``), the notification id as
``X-Opora-Delivery`` (the same on every retry: receivers deduplicate by it) and the trigger as
``X-Opora-Event``.
"""

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from opora_notifier import signing
from opora_notifier.channels import Commit, Outgoing
from opora_notifier.channels.http import post_json
from opora_notifier.notices import Medium


def webhook_body(out: Outgoing, *, sent_at: datetime) -> dict[str, Any]:
    """The JSON document one webhook request carries."""
    notice = out.notice
    ticket = notice.context["ticket"]
    return {
        "type": "opora.notification",
        "version": 1,
        "notification_id": out.notification_id,
        "trigger": notice.trigger.value,
        "urgent": notice.urgent,
        "occurred_at": notice.occurred_at.isoformat(),
        "sent_at": sent_at.isoformat(),
        "tenant": notice.tenant,
        "ticket": {
            "id": notice.ticket_id,
            "subject": ticket["subject"],
            "priority": ticket["priority"],
            "category": ticket["category"],
            "scope": ticket["scope"],
            "url": ticket["open_url"],
        },
        "subject": out.rendered.subject,
        "text": out.rendered.chat,
    }


class WebhookChannel:
    """POSTs signed JSON to the configured URL."""

    name = "webhook"
    medium = Medium.WEBHOOK
    cte = ""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        url: str,
        secret: bytes,
        clock: Callable[[], datetime],
    ) -> None:
        self.client = client
        self._url = url
        self._secret = secret
        self._clock = clock
        self.deadline_s = (client.timeout.read or 10.0) * 1.5

    async def send(self, out: Outgoing, commit: Commit) -> str | None:
        """Sign and POST; any 2xx is a delivery."""
        now = self._clock()
        body = json.dumps(webhook_body(out, sent_at=now), ensure_ascii=False).encode()
        timestamp = int(now.timestamp())
        headers = {
            signing.TIMESTAMP_HEADER: str(timestamp),
            signing.SIGNATURE_HEADER: signing.signature(self._secret, timestamp, body),
            signing.DELIVERY_HEADER: out.notification_id,
            signing.EVENT_HEADER: out.notice.trigger.value,
        }
        await post_json(self.client, self._url, body, commit, headers=headers, what="webhook")
        return None

    async def confirm(self, out: Outgoing) -> bool | None:  # noqa: ARG002
        """A receiver cannot be asked (it deduplicates by X-Opora-Delivery instead)."""
        return None

    async def close(self) -> None:
        """The HTTP client is the app's."""
