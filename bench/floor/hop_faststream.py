"""One hop of the FastStream floor chain, run as its own process.

    python -m bench.floor.hop_faststream --url URL --stream S --subject-in A --subject-out B \
        --durable D --index-out N

A FastStream app whose only handler decodes and validates a ``TicketReceived`` and publishes it
on to the next subject, the way an Opora handler publishes its event: through a publisher, an
acknowledged JetStream publish with ``Nats-Msg-Id`` and the type header. The consumer arguments
are Opora's own (``durable_consumer``: durable pull, batch 100, NACK_ON_ERROR...) on this
chain's stream, and the broker logs per message at DEBUG like Opora's. It leaves out what is
Opora's work rather than the transport's: dead-lettering, metrics, domain code.
"""

import logging

from faststream import FastStream
from faststream.nats import JStream, NatsBroker

from bench.floor.common import CONNECT_OPTIONS, MSG_ID, hop_arguments, msg_id
from opora_shared.events import TicketReceived
from opora_shared.nats.broker import durable_consumer
from opora_shared.nats.publish import TYPE_HEADER
from opora_shared.service import run_loop
from opora_shared.settings import OporaSettings


def build_app(
    url: str, *, stream: str, subject_in: str, subject_out: str, durable: str, index_out: int
) -> FastStream:
    """The hop's app: subscribe ``subject_in`` on a durable pull consumer, forward each ticket."""
    settings = OporaSettings(nats_url=url)
    broker = NatsBroker(
        settings.nats_servers,
        name=f"floor-{durable}",
        **CONNECT_OPTIONS,  # type: ignore[arg-type]
        log_level=logging.DEBUG,
        logger=logging.getLogger(f"bench.floor.{durable}"),
    )
    chain_stream = JStream(stream, declare=False)
    forward_to = broker.publisher(subject_out, stream=chain_stream)
    consumer = {**durable_consumer(settings, durable), "stream": chain_stream}

    @broker.subscriber(subject_in, **consumer)  # type: ignore[untyped-decorator]
    async def forward(ticket: TicketReceived) -> None:
        """Forward a ticket unchanged to the next hop."""
        await forward_to.publish(
            ticket,
            subject=subject_out,
            headers={MSG_ID: msg_id(ticket.event_id, index_out), TYPE_HEADER: ticket.type},
            stream=stream,
            timeout=5.0,
        )

    return FastStream(broker, logger=logging.getLogger("bench.floor.app"))


def main() -> None:
    """Run one hop until SIGTERM or SIGINT."""
    args = hop_arguments("One hop of the FastStream floor chain.")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    app = build_app(
        args.url,
        stream=args.stream,
        subject_in=args.subject_in,
        subject_out=args.subject_out,
        durable=args.durable,
        index_out=args.index_out,
    )
    run_loop(app.run())


if __name__ == "__main__":
    main()
