"""Stopping background tasks that talk to NATS, which one ``cancel()`` may not stop."""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


async def stop_tasks(tasks: Sequence[asyncio.Task[Any]], *, rounds: int = 50) -> None:
    """Cancel background tasks and wait until they end, cancelling again those that go on.

    nats-py swallows a CancelledError that lands in its flush (``Client._flush_pending``, on
    every publish and subscribe, and it waits there when its queue is full), so one
    ``cancel()`` may not end a loop that talks to NATS: it would run on and the shutdown would
    wait for ever. A task still running is cancelled again at its next await.
    """
    pending = {task for task in tasks if not task.done()}
    for _ in range(rounds):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.2)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: an error at shutdown is no news
    if pending:
        log.warning("%d background task(s) did not stop", len(pending))


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """``stop_tasks`` for one task, or none."""
    if task is not None:
        await stop_tasks([task])
