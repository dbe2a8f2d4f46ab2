"""Answering chat button presses: Telegram's answerCallbackQuery and Slack's response_url.

An answer is a courtesy (it stops Telegram's spinner, tells a Slack user what happened):
failing to give it changes nothing recorded, so failures are logged and swallowed. The bot
token is part of Telegram's URL and a Slack response_url is a bearer URL: neither ever appears
in a log line (the ``httpx`` logger is kept at WARNING for that reason).
"""

import logging
from urllib.parse import urlsplit

import httpx

from opora_intake.chat_actions import TELEGRAM_ANSWER_MAX
from opora_shared.settings import is_loopback

log = logging.getLogger(__name__)

USER_AGENT = "opora-intake/0.1"


class ChatReplies:
    """Sends the answers; one HTTP client, closed with the app."""

    def __init__(
        self, client: httpx.AsyncClient, *, telegram_api_url: str, telegram_token: str | None
    ) -> None:
        self.client = client
        self._answer_url = (
            f"{telegram_api_url.rstrip('/')}/bot{telegram_token}/answerCallbackQuery"
            if telegram_token
            else None
        )

    async def telegram(self, callback_query_id: str, text: str) -> bool:
        """answerCallbackQuery with a short text; True when Telegram said ok."""
        if self._answer_url is None:
            return False
        body: dict[str, object] = {
            "callback_query_id": callback_query_id,
            "text": text[:TELEGRAM_ANSWER_MAX],
        }
        return await self._post(self._answer_url, body, what="Telegram answerCallbackQuery")

    async def slack(self, response_url: str, text: str) -> bool:
        """An ephemeral message to the Slack user who pressed; True when Slack took it."""
        parts = urlsplit(response_url)
        if not (
            parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))
        ):
            log.warning("Slack response_url refused: not https")
            return False
        body: dict[str, object] = {
            "response_type": "ephemeral",
            "replace_original": False,
            "text": text,
        }
        return await self._post(response_url, body, what="Slack response_url")

    async def _post(self, url: str, body: dict[str, object], *, what: str) -> bool:
        try:
            response = await self.client.post(url, json=body, headers={"User-Agent": USER_AGENT})
        except httpx.HTTPError as exc:
            log.warning("%s failed: %s", what, type(exc).__name__)
            return False
        if not response.is_success:
            log.warning("%s answered HTTP %d", what, response.status_code)
            return False
        return True

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()
