"""``opora audit TICKET`` prints who did what to a ticket, without bodies or reply texts."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

import nats

from opora_shared import subjects
from opora_shared.cli import main
from opora_shared.events import Actor, TicketUpdated
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
from opora_shared.vocabulary import TicketChange

SECRET_BODY = "пароль от почты Qwerty123"


async def publish_all(url, events):
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for event in events:
            await js.publish(subjects.event_subject(event), event.model_dump_json().encode())
    finally:
        await nc.close()


def test_the_trail_names_actors_and_hides_texts(nats_url, monkeypatch, capsys):
    received = make_ticket_received(body=SECRET_BODY)
    events = [
        received,
        make_ticket_classified(ticket_id=received.ticket_id),
        TicketUpdated(
            event_id=uuid.uuid4(),
            occurred_at=datetime.now(UTC),
            tenant=received.tenant,
            ticket_id=received.ticket_id,
            change=TicketChange.REPLIED,
            actor=Actor(kind="engineer", id="maria"),
            text=SECRET_BODY,
            time_spent_minutes=15,
        ),
    ]
    asyncio.run(publish_all(nats_url, events))
    monkeypatch.setenv("OPORA_NATS_URL", nats_url)

    assert main(["audit", received.ticket_id, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["type"] for line in lines] == [
        "ticket.received",
        "ticket.classified",
        "ticket.updated",
    ]
    assert lines[0]["actor"] == "web:anna@romashka.ru"
    assert lines[1]["actor"] == "service:classifier"
    assert lines[2]["actor"] == "engineer:maria"
    assert "15 min spent" in lines[2]["summary"]

    assert main(["audit", received.ticket_id]) == 0
    text = capsys.readouterr().out
    assert "engineer:maria" in text
    assert "Qwerty123" not in text


def test_an_unknown_ticket_and_a_bad_number_are_exit_2(nats_url, monkeypatch, capsys):
    monkeypatch.setenv("OPORA_NATS_URL", nats_url)
    assert main(["audit", "999999999999"]) == 2
    assert "no events" in capsys.readouterr().err
    assert main(["audit", "../etc"]) == 2
    assert "not a ticket number" in capsys.readouterr().err
