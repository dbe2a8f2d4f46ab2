"""What the floor's driver and hops agree on: names, the ticket payload, message ids, arguments.

A chain ``k`` of ``HOPS`` hops lives on one stream; hop ``i`` consumes subject ``s<i>`` with the
durable consumer ``<chain>-hop<i>`` and publishes to ``s<i+1>``. The driver publishes to ``s0``
and counts what arrives on ``s<HOPS>``. Every publish carries ``Nats-Msg-Id`` =
``<event_id>.<subject index>``, so the driver recognises a ticket at the end of the chain by the
last hop's message id. No FastStream import here: the raw hop must not pay for it.
"""

import argparse
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from opora_shared.events import AttachmentRef, Requester, TicketReceived
from opora_shared.vocabulary import Channel

HOPS = 4
MSG_ID = "Nats-Msg-Id"
CONNECT_OPTIONS = {"connect_timeout": 2, "reconnect_time_wait": 0.5, "max_reconnect_attempts": 4}
"""A hop gives up soon when the server is gone (it went with the driver), instead of ~2 min."""
_PREFIX_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")


@dataclass(frozen=True, slots=True)
class Chain:
    """The stream, subjects and durable names of one chain (``faststream`` or ``raw``)."""

    prefix: str
    kind: str

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix) or self.prefix.startswith("OPORA"):
            msg = f"stream prefix must be A-Z0-9_ and not OPORA*: {self.prefix!r}"
            raise ValueError(msg)

    @property
    def stream(self) -> str:
        """The chain's stream, e.g. ``FLOOR_FASTSTREAM``."""
        return f"{self.prefix}_{self.kind.upper()}"

    @property
    def subjects(self) -> str:
        """The stream's subject filter."""
        return f"{self.prefix.lower()}.{self.kind}.>"

    def subject(self, index: int) -> str:
        """Subject ``index`` of the chain: 0 is the driver's, ``HOPS`` the end."""
        return f"{self.prefix.lower()}.{self.kind}.s{index}"

    def durable(self, hop: int) -> str:
        """The durable consumer of hop ``hop`` (0-based)."""
        return f"{self.kind}-hop{hop}"


def msg_id(event_id: uuid.UUID | str, index: int) -> str:
    """The Nats-Msg-Id of a ticket on subject ``index``: unique per stream, retry-stable."""
    return f"{event_id}.{index}"


_BODY = (
    "Добрый день!\n\n"
    "С сегодняшнего утра в бухгалтерии на третьем этаже не печатает сетевой принтер "
    "HP LaserJet M428 (инвентарный номер 00417). Задания уходят в очередь и висят со статусом "
    "«Ошибка», на самом принтере горит оранжевый индикатор и написано «Замятие в лотке 2», "
    "хотя бумагу мы проверили и ничего не нашли. Перезагрузку делали дважды, не помогло. "
    "До конца дня нужно распечатать платёжные поручения и акты сверки для контрагентов, "
    "поэтому просим посмотреть как можно скорее. Если нужен удалённый доступ к компьютеру "
    "главного бухгалтера, он доступен с 14:00 до 16:00.\n\n"
    "Заранее спасибо,\nАнна Петрова\nглавный бухгалтер, ООО «Ромашка»\n+7 (495) 123-45-67\n"
)


def sample_ticket() -> TicketReceived:
    """A TicketReceived of a realistic size (~1.7 KB of JSON): a mail with one attachment."""
    return TicketReceived(
        event_id=uuid.UUID(int=0),
        occurred_at=datetime.now(UTC),
        tenant="romashka",
        ticket_id="104217",
        channel=Channel.EMAIL,
        requester=Requester(email="anna.petrova@romashka.ru", name="Анна Петрова"),
        subject="Не печатает принтер в бухгалтерии (3 этаж), срочно",
        body=_BODY,
        source_ref="<CAF3k2x9_7Qm1=p8Zr0vLw4e@mail.romashka.ru>",
        message_id="<CAF3k2x9_7Qm1=p8Zr0vLw4e@mail.romashka.ru>",
        attachments=(
            AttachmentRef(
                filename="printer-error.jpg",
                content_type="image/jpeg",
                size=184_233,
                sha256="9f2c1d0e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c",
                object_name="romashka/104217/9f2c1d0e8b7a6f5e",
            ),
        ),
        original="romashka/104217/original.eml",
    )


def payloads(count: int) -> list[tuple[str, bytes]]:
    """``count`` distinct tickets as (event id, JSON bytes), built once before any timing."""
    template = sample_ticket().model_dump_json().encode()
    placeholder = str(uuid.UUID(int=0)).encode()
    out = []
    for _ in range(count):
        event_id = str(uuid.uuid4())
        out.append((event_id, template.replace(placeholder, event_id.encode(), 1)))
    return out


def hop_arguments(description: str) -> argparse.Namespace:
    """The command line every hop process takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="NATS URL")
    parser.add_argument("--stream", required=True)
    parser.add_argument("--subject-in", required=True)
    parser.add_argument("--subject-out", required=True)
    parser.add_argument("--durable", required=True)
    parser.add_argument("--index-out", type=int, required=True, help="subject index published to")
    return parser.parse_args()
