"""One hop of the bare nats-py floor chain, run as its own process.

    python -m bench.floor.hop_raw --url URL --stream S --subject-in A --subject-out B \
        --durable D --index-out N

The same work as ``hop_faststream`` without FastStream, batched the way plain nats-py allows:
fetch a batch from the durable pull consumer (Opora's consumer settings), decode and validate
each ticket, ``publish_async`` every one to the next subject with ``Nats-Msg-Id``, wait for the
batch's publish acknowledgements, then ack the batch (nak what failed to publish). The
practical limit of Python on this bus.
"""

import asyncio
import contextlib
import dataclasses
import logging
import signal

import nats
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy

from bench.floor.common import CONNECT_OPTIONS, MSG_ID, hop_arguments, msg_id
from opora_shared.events import TicketReceived
from opora_shared.nats.broker import durable_consumer
from opora_shared.nats.publish import TYPE_HEADER
from opora_shared.service import run_loop
from opora_shared.settings import OporaSettings

log = logging.getLogger("bench.floor.hop_raw")

PUBLISH_TIMEOUT_S = 5.0


async def forward_forever(
    js: JetStreamContext,
    settings: OporaSettings,
    *,
    stream: str,
    subject_in: str,
    subject_out: str,
    durable: str,
    index_out: int,
) -> None:
    """Fetch, decode, publish_async, wait for the acks, ack: until cancelled."""
    opora = durable_consumer(settings, durable)
    config = dataclasses.replace(opora["config"], ack_policy=AckPolicy.EXPLICIT)
    pull_sub = opora["pull_sub"]
    sub = await js.pull_subscribe(subject_in, durable=durable, stream=stream, config=config)
    while True:
        try:
            batch = await sub.fetch(pull_sub.batch_size, timeout=pull_sub.timeout)
        except (nats.errors.TimeoutError, TimeoutError):
            continue
        published = []
        for msg in batch:
            ticket = TicketReceived.model_validate_json(msg.data)
            headers = {MSG_ID: msg_id(ticket.event_id, index_out), TYPE_HEADER: ticket.type}
            body = ticket.model_dump_json().encode()
            published.append(await js.publish_async(subject_out, body, headers=headers))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(js.publish_async_completed(), PUBLISH_TIMEOUT_S)
        for msg, ack in zip(batch, published, strict=True):
            if ack.done() and not ack.cancelled() and ack.exception() is None:
                await msg.ack()
            else:
                log.warning("publish to %s failed; nak for redelivery", subject_out)
                await msg.nak()


async def run(
    url: str, *, stream: str, subject_in: str, subject_out: str, durable: str, index_out: int
) -> None:
    """Connect and forward until SIGTERM or SIGINT."""
    settings = OporaSettings(nats_url=url)
    nc = await nats.connect(settings.nats_servers, name=f"floor-{durable}", **CONNECT_OPTIONS)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await forward_forever(
            nc.jetstream(),
            settings,
            stream=stream,
            subject_in=subject_in,
            subject_out=subject_out,
            durable=durable,
            index_out=index_out,
        )
    except asyncio.CancelledError:
        pass
    finally:
        await nc.close()


def main() -> None:
    """Run one hop."""
    args = hop_arguments("One hop of the bare nats-py floor chain.")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    run_loop(
        run(
            args.url,
            stream=args.stream,
            subject_in=args.subject_in,
            subject_out=args.subject_out,
            durable=args.durable,
            index_out=args.index_out,
        )
    )


if __name__ == "__main__":
    main()
