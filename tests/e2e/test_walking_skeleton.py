"""The README's tour, automated: post a ticket over HTTP, find its acknowledgement, read it back."""

import time
import urllib.request
from email import message_from_bytes, policy

import httpx

from opora_shared.testing.waiting import poll_until


def post(running, **fields) -> str:
    body = {
        "from": "anna@romashka.ru",
        "name": "Анна",
        "subject": "Не работает интернет",
        "body": "Весь офис без интернета, срочно",
    }
    body.update(fields)
    response = httpx.post(f"{running.http}/v1/tickets", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def acks(running, ticket_id):
    return sorted(running.outbox.glob(f"{ticket_id}-*.eml"))


class TestWalkingSkeleton:
    def test_posted_ticket_is_acknowledged_and_readable(self, running):
        started = time.monotonic()
        ticket_id = post(running)
        (path,) = poll_until(lambda: acks(running, ticket_id), timeout=15, message="ack .eml")
        print(f"\nPOST to .eml: {1000 * (time.monotonic() - started):.0f} ms")
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert mail["To"].addresses[0].addr_spec == "anna@romashka.ru"
        assert f"[#{ticket_id}]" in mail["Subject"]
        assert mail.get_content_type() == "multipart/alternative"
        assert "Europe/Moscow" in mail.get_body(("plain",)).get_content()
        assert f"#{ticket_id}" in mail.get_body(("html",)).get_content()

        def folded():
            response = httpx.get(
                f"{running.http}/v1/tickets/{ticket_id}",
                timeout=10,
                headers={"Authorization": f"Bearer {running.admin_token}"},
            )
            assert response.status_code == 200
            view = response.json()
            return view if view["notifications"] else None

        view = poll_until(folded, timeout=10, message="notification in the ticket")
        assert view["tenant"] == "romashka"
        assert view["status"] == "open"
        assert view["classification"]["category"] == "network"
        assert view["classification"]["priority"] in ("P1", "P2")  # the whole office is down
        assert view["classification"]["reasons"]
        assert view["sla"]["state"] == "running"
        assert view["notifications"][0]["recipient"] == "anna@romashka.ru"
        types = [e["type"] for e in view["events"]]
        assert types[:2] == ["ticket.received", "ticket.classified"]
        assert "sla.armed" in types  # racing ticket.assigned (routing) for third place

    def test_without_a_token_the_ticket_is_401(self, running):
        ticket_id = post(running)
        assert httpx.get(f"{running.http}/v1/tickets/{ticket_id}").status_code == 401

    def test_each_ticket_is_acknowledged_once_in_its_tenants_language(self, running):
        ids = [
            post(
                running,
                **{
                    "from": "bob@vector-logistics.com",
                    "subject": f"Printer {i}",
                    "body": "The printer on floor 2 is jammed",
                },
            )
            for i in range(10)
        ]
        for ticket_id in ids:
            (path,) = poll_until(lambda t=ticket_id: acks(running, t), timeout=15)
            mail = message_from_bytes(path.read_bytes(), policy=policy.default)
            assert mail["Subject"].startswith(f"[#{ticket_id}] Request received")
        assert len(set(ids)) == 10

    def test_every_service_serves_metrics_without_ids_or_addresses(self, running):
        ticket_id = post(running)
        poll_until(lambda: acks(running, ticket_id), timeout=15)
        for name, port in running.metrics_ports.items():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            assert "faststream_" in text or name == "intake", name
            samples = [line for line in text.splitlines() if not line.startswith("#")]
            assert not [s for s in samples if f".{ticket_id}." in s or "@" in s], name
        with urllib.request.urlopen(
            f"http://127.0.0.1:{running.metrics_ports['intake']}/metrics"
        ) as resp:
            assert (
                'opora_tickets_received_total{channel="web",tenant="romashka"}'
                in resp.read().decode()
            )
