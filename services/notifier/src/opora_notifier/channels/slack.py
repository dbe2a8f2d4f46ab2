"""Slack or Mattermost incoming webhook: the alert as text, with buttons.

- **Slack** (``OPORA_SLACK_WEBHOOK_KIND=slack``, the default) reads ``blocks``: a section and
  Acknowledge / Resolve / Open buttons. Presses go to the Slack app's interactivity URL, the
  intake's ``/v1/chat/slack`` (``action_id`` ``opora_ack``/``opora_resolve``, ``value``
  ``<tenant>:<ticket>``).
- **Mattermost** (``mattermost``) ignores blocks: it shows ``text``, which also carries the
  ticket's link, and message-attachment buttons whose integration posts to the intake's
  ``/v1/chat/mattermost`` with a signed token in the context (``opora_shared.chat_buttons``).

``channel`` sends it to the person's channel or handle. A notice about no one ticket (the
daily digest) is text without buttons.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from opora_notifier.channels import Commit, Outgoing
from opora_notifier.channels.http import post_json
from opora_notifier.channels.telegram import LABELS
from opora_notifier.notices import Medium
from opora_shared.chat_buttons import ChatVerb, slack_action_id, slack_value


@dataclass(frozen=True, slots=True)
class MattermostButtons:
    """Where Mattermost buttons post (the intake's endpoint) and how their tokens are made."""

    url: str
    """``{public_url}/v1/chat/mattermost``: the Mattermost server must reach it."""
    sign: Callable[[str, str, ChatVerb], str]
    """A token for (tenant, ticket id, verb)."""


def _escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(out: Outgoing, mattermost: MattermostButtons | None = None) -> dict[str, Any]:
    """The incoming-webhook request for one notice (Mattermost's when ``mattermost`` is set)."""
    notice = out.notice
    payload: dict[str, Any]
    if not notice.ticket_id:  # a digest: text only
        payload = {"text": out.rendered.chat}
    elif mattermost is not None:
        payload = _mattermost(out, mattermost)
    else:
        payload = _slack(out)
    if notice.recipient.address:
        payload["channel"] = notice.recipient.address
    return payload


def _slack(out: Outgoing) -> dict[str, Any]:
    notice = out.notice
    ack, resolve, open_ = LABELS[notice.recipient.language]
    status_url = str(notice.context["ticket"]["open_url"])
    value = slack_value(notice.tenant, notice.ticket_id)
    return {
        "text": f"{out.rendered.chat}\n{status_url}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": _escape(out.rendered.chat)}},
            {
                "type": "actions",
                "block_id": f"opora-{notice.ticket_id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": slack_action_id(ChatVerb.ACK),
                        "text": {"type": "plain_text", "text": ack},
                        "value": value,
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "action_id": slack_action_id(ChatVerb.RESOLVE),
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


def _mattermost(out: Outgoing, buttons: MattermostButtons) -> dict[str, Any]:
    notice = out.notice
    ack, resolve, _ = LABELS[notice.recipient.language]
    status_url = str(notice.context["ticket"]["open_url"])

    def button(verb: ChatVerb, label: str, style: str) -> dict[str, Any]:
        # Mattermost action ids must be letters and digits only
        token = buttons.sign(notice.tenant, notice.ticket_id, verb)
        return {
            "id": f"opora{verb.value}",
            "name": label,
            "style": style,
            "integration": {"url": buttons.url, "context": {"token": token}},
        }

    return {
        "text": f"{out.rendered.chat}\n{status_url}",
        "attachments": [
            {
                "fallback": out.rendered.chat.splitlines()[0] if out.rendered.chat else "",
                "actions": [
                    button(ChatVerb.ACK, ack, "primary"),
                    button(ChatVerb.RESOLVE, resolve, "default"),
                ],
            }
        ],
    }


class SlackChannel:
    """Posts chat alerts to a Slack or Mattermost incoming webhook."""

    name = "slack"
    medium = Medium.SLACK
    cte = ""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        webhook_url: str,
        mattermost: MattermostButtons | None = None,
    ) -> None:
        self.client = client
        self._url = webhook_url
        self._mattermost = mattermost
        self.deadline_s = (client.timeout.read or 10.0) * 1.5

    async def send(self, out: Outgoing, commit: Commit) -> str | None:
        """POST the payload; Slack answers 'ok', Mattermost an empty 200."""
        payload = slack_payload(out, self._mattermost)
        await post_json(self.client, self._url, payload, commit, what="chat webhook")
        return None

    async def confirm(self, out: Outgoing) -> bool | None:  # noqa: ARG002
        """An incoming webhook cannot be asked."""
        return None

    async def close(self) -> None:
        """The HTTP client is the app's."""
