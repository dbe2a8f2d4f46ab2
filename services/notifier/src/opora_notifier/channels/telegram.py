"""Telegram Bot API: sendMessage to an engineer's chat, with an inline keyboard.

Buttons: Acknowledge and Resolve carry ``callback_data`` ``opora:ack:<ticket>`` and
``opora:resolve:<ticket>`` (``opora_shared.chat_buttons``), which the intake's
``/v1/chat/telegram`` webhook acts on; "Open status page" is a link. A notice about no one
ticket (the daily digest) is plain text. The bot token is part of the URL: it never appears in
a reason or a log line.
"""

from typing import Any

import httpx

from opora_notifier.channels import Commit, DeliveryError, Outgoing
from opora_notifier.channels.http import post_json
from opora_notifier.notices import Medium
from opora_shared.chat_buttons import ChatVerb, telegram_callback
from opora_shared.vocabulary import Language

LABELS = {
    Language.RU: ("Принять", "Решено", "Открыть заявку"),
    Language.EN: ("Acknowledge", "Resolve", "Open status page"),
}
MAX_TEXT = 4096


def telegram_payload(out: Outgoing) -> dict[str, Any]:
    """The sendMessage request for one notice."""
    notice = out.notice
    payload: dict[str, Any] = {
        "chat_id": notice.recipient.address,
        "text": out.rendered.chat[:MAX_TEXT],
        "disable_web_page_preview": True,
    }
    if not notice.ticket_id:  # a digest: about many tickets, no buttons
        return payload
    ack, resolve, open_ = LABELS[notice.recipient.language]
    status_url = str(notice.context["ticket"]["open_url"])
    payload["reply_markup"] = {
        "inline_keyboard": [
            [
                {"text": ack, "callback_data": telegram_callback(ChatVerb.ACK, notice.ticket_id)},
                {
                    "text": resolve,
                    "callback_data": telegram_callback(ChatVerb.RESOLVE, notice.ticket_id),
                },
            ],
            [{"text": open_, "url": status_url}],
        ]
    }
    return payload


class TelegramChannel:
    """Sends chat alerts through a Telegram bot."""

    name = "telegram"
    medium = Medium.TELEGRAM
    cte = ""

    def __init__(self, client: httpx.AsyncClient, *, api_url: str, token: str) -> None:
        self.client = client
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        timeout = client.timeout.read or 10.0
        self.deadline_s = timeout * 1.5

    async def send(self, out: Outgoing, commit: Commit) -> str | None:
        """sendMessage; Telegram's message id on success."""
        response = await post_json(
            self.client, self._url, telegram_payload(out), commit, what="Telegram"
        )
        try:
            data = response.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict) or data.get("ok") is not True:
            raise DeliveryError("Telegram answered without ok", temporary=True)
        message_id = data.get("result", {}).get("message_id")
        return str(message_id) if message_id is not None else None

    async def confirm(self, out: Outgoing) -> bool | None:  # noqa: ARG002
        """The Bot API cannot be asked whether a message went out."""
        return None

    async def close(self) -> None:
        """The HTTP client is the app's."""
