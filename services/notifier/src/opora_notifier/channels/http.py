"""Posting JSON over HTTP, with failures sorted the way the dispatcher needs them.

Shared by the Telegram, Slack/Mattermost and webhook channels. ``commit()`` is called right
before the request goes out. A connection that never opened means the message surely did not
arrive; a timeout or a connection reset after the request was sent may hide a delivery. 429
and 5xx are temporary (429 with the receiver's Retry-After), other 4xx final. Reasons never
carry the URL: Telegram's holds the bot token, a Slack webhook's is itself a secret.
"""

import json
from typing import Any

import httpx

from opora_notifier.channels import Commit, DeliveryError

USER_AGENT = "opora-notifier/0.1"


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any] | bytes,
    commit: Commit,
    *,
    headers: dict[str, str] | None = None,
    what: str,
) -> httpx.Response:
    """POST a JSON body; DeliveryError on anything but a 2xx answer."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    await commit()
    try:
        response = await client.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                **(headers or {}),
            },
        )
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise DeliveryError(
            f"{what} unreachable: {type(exc).__name__}", temporary=True, undelivered=True
        ) from exc
    except httpx.TransportError as exc:  # read/write timeouts, resets, protocol errors
        raise DeliveryError(f"{what}: no answer ({type(exc).__name__})", temporary=True) from exc
    if response.is_success:
        return response
    status = response.status_code
    reason = f"{what} answered HTTP {status}{_detail(response)}"
    if status == 429 or status == 408 or status >= 500:
        raise DeliveryError(
            reason, temporary=True, undelivered=True, retry_after=_retry_after(response)
        )
    raise DeliveryError(reason, temporary=False, undelivered=True)


def _retry_after(response: httpx.Response) -> float | None:
    header = response.headers.get("Retry-After")
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    try:  # Telegram: {"ok": false, "parameters": {"retry_after": 5}}
        value = response.json().get("parameters", {}).get("retry_after")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _detail(response: httpx.Response) -> str:
    """Telegram's and Slack's short error text (never the URL, never our payload)."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return f": {text[:100]}" if text and len(text) < 100 and "\n" not in text else ""
    if isinstance(data, dict) and isinstance(data.get("description"), str):
        return f": {data['description'][:200]}"
    return ""
