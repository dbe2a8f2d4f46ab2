"""``opora report`` replays a tenant's month from the events stream of a real nats-server."""

import asyncio
import json
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import nats

from opora_shared import subjects
from opora_shared.cli import main
from opora_shared.contracts import load_contract
from opora_shared.events import Actor, TicketUpdated
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
from opora_shared.vocabulary import Category, Scope, TicketChange
from tests.integration.test_contract_reload import write_tenant


async def publish_all(url, events):
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for event in events:
            await js.publish(
                subjects.event_subject(event),
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": str(event.event_id)},
            )
    finally:
        await nc.close()


def test_the_report_of_a_month_from_the_stream(nats_url, tmp_path, monkeypatch, capsys):
    tenant = "r" + tmp_path.name[-8:].replace("_", "").lower()
    contracts = tmp_path / "contracts"
    write_tenant(contracts, tenant)
    # The stream stores events as they arrive: "this month" is the month of now, in the
    # contract's timezone (the report reads the stream from that month's first instant).
    now = datetime.now(UTC)
    zone = ZoneInfo(load_contract(contracts / f"{tenant}.yml").calendar.timezone)
    month = now.astimezone(zone).strftime("%Y-%m")
    events = []
    for n in range(3):
        received = make_ticket_received(tenant=tenant, occurred_at=now, subject=f"1C report {n}")
        events += [
            received,
            make_ticket_classified(
                tenant=tenant,
                ticket_id=received.ticket_id,
                category=Category.ACCOUNTING_SOFTWARE,
                scope=Scope.BILLABLE if n == 0 else Scope.INCLUDED,
            ),
        ]
    events.append(
        TicketUpdated(
            event_id=uuid.uuid4(),
            occurred_at=now,
            tenant=tenant,
            ticket_id=events[0].ticket_id,
            change=TicketChange.APPROVED,
            actor=Actor(kind="client", id=f"boss@{tenant}.test"),
        )
    )
    other = make_ticket_received(tenant="romashka")
    asyncio.run(publish_all(nats_url, [*events, other]))

    monkeypatch.setenv("OPORA_NATS_URL", nats_url)
    out = tmp_path / "report.json"
    base = ["report", "--tenant", tenant, "--month", month, "--contracts", str(contracts)]
    code = main([*base, "--json", "--out", str(out)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["tickets"] == 3
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["by_scope"] == {"included": 2, "billable": 1}
    assert [item["decision"] for item in report["billable"]] == ["approved"]

    html = tmp_path / "report.html"
    code = main([*base, "--out", str(html)])
    assert code == 0
    assert "Accounting software" in html.read_text(encoding="utf-8")


def test_an_unknown_tenant_is_exit_2(tmp_path, capsys):
    write_tenant(tmp_path, "known")
    code = main(["report", "--tenant", "nope", "--month", "2026-11", "--contracts", str(tmp_path)])
    assert code == 2
    assert "nope" in capsys.readouterr().err
