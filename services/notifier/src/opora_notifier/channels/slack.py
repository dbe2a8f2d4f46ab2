"""Slack or Mattermost incoming webhook: the alert as text, with buttons.

Slack reads ``blocks`` (a section and Acknowledge / Resolve / Open buttons whose presses go to
the Slack app's interactivity URL); Mattermost, which ignores blocks, shows ``text``, which
also carries the ticket's link. ``channel`` sends it to the person's channel or handle.
"""

from typing import Any

import httpx

from opora_notifier.channels import Commit, Outgoing
from opora_notifier.channels.http import post_json
from opora_notifier.channels.telegram import LABELS
from opora_notifier.notices import Medium


def _escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(out: Outgoing) -> dict[str, Any]:
    """The incoming-webhook request for one notice."""
    notice = out.notice
    ack, resolve, open_ = LABELS[notice.recipient.language]
    status_url = str(notice.context["ticket"]["open_url"])
    value = f"{notice.tenant}:{notice.ticket_id}"
    text = f"{out.rendered.chat}\n{status_url}"
    payload: dict[str, Any] = {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": _escape(out.rendered.chat)}},
            {
                "type": "actions",
                "block_id": f"opora-{notice.ticket_id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "opora_ack",
                        "text": {"type": "plain_text", "text": ack},
                        "value": value,
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "action_id": "opora_resolve",
                        "text": {"type": "plain_text", "text": resolve},
                        "value": value,
                    },
                    {
                        "type": "button",
                        "action_id": "opora_open",
                        "text": {"type": "plain_text", "text": open_},
                        "url": status_url,
                    },
                ],
            },
        ],
    }
    if notice.recipient.address:
        payload["channel"] = notice.recipient.address
    return payload


class SlackChannel:
    """Posts chat alerts to a Slack or Mattermost incoming webhook."""

    name = "slack"
    medium = Medium.SLACK
    cte = ""

    def __init__(self, client: httpx.AsyncClient, *, webhook_url: str) -> None:
        self.client = client
        self._url = webhook_url
        self.deadline_s = (client.timeout.read or 10.0) * 1.5

    async def send(self, out: Outgoing, commit: Commit) -> str | None:
        """POST the payload; Slack answers 'ok', Mattermost an empty 200."""
        await post_json(self.client, self._url, slack_payload(out), commit, what="chat webhook")
        return None

    async def confirm(self, out: Outgoing) -> bool | None:  # noqa: ARG002
        """An incoming webhook cannot be asked."""
        return None

    async def close(self) -> None:
        """The HTTP client is the app's."""
