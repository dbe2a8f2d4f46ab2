"""Reading every current value of a KV bucket (or of the keys under a pattern) at once.

nats-py's watch marks "no more current values" with a None that it derives from the consumer's
pending count when the watch starts; when the server has already pushed every value but none
has reached the watch's callback yet, that count is 0 and the None comes first, so a reader
that stops at it sees nothing (an API token missing from ``GET /v1/tokens`` now and then). A
snapshot here knows where to stop instead: the stream's newest message under the pattern,
read first by a direct get, is the last value the watch must deliver (it delivers the newest
message of each key in stream order). The contracts store reads its bucket's current values
the same way before it follows the changes (``current_values``).
"""

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

__all__ = ["current_values", "kv_newest", "kv_snapshot"]


async def kv_newest(js: JetStreamContext, bucket: str, pattern: str = ">") -> int:
    """The stream sequence of the bucket's newest message under ``pattern`` (0: none).

    A watch started after this has delivered every value written before it once it has
    delivered an entry of this revision or a later one.
    """
    try:
        newest = await js.get_last_msg(f"KV_{bucket}", f"$KV.{bucket}.{pattern}", direct=True)
    except NotFoundError:
        return 0
    return newest.seq or 0


async def current_values(
    watcher: KeyValue.KeyWatcher, newest: int, *, timeout: float
) -> list[KeyValue.Entry]:
    """A new watch's entries (deletes and purges too) up to revision ``newest`` (``kv_newest``).

    The watcher stays open for the caller to follow later changes, or to stop. Raises nats'
    ``TimeoutError`` when a value takes longer than ``timeout`` to arrive.
    """
    found: list[KeyValue.Entry] = []
    while newest:
        entry = await watcher.updates(timeout=timeout)  # type: ignore[no-untyped-call]
        if entry is None:  # nats-py's end marker, not to be trusted (see above)
            continue
        found.append(entry)
        if (entry.revision or 0) >= newest:
            break
    return found


async def kv_snapshot(
    js: JetStreamContext, bucket: str, pattern: str = ">", *, timeout: float = 5.0
) -> list[KeyValue.Entry]:
    """The live entries (not deleted or purged) of the keys matching ``pattern``, oldest first.

    Everything written before the call is included; a write made meanwhile may be. Raises
    nats' ``TimeoutError`` when a value takes longer than ``timeout`` to arrive.
    """
    newest = await kv_newest(js, bucket, pattern)
    if not newest:
        return []
    watcher = await (await js.key_value(bucket)).watch(pattern)
    try:
        entries = await current_values(watcher, newest, timeout=timeout)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return [e for e in entries if e.operation not in (KV_DEL, KV_PURGE)]
