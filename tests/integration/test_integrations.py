"""Integrations over real HTTP into a real NATS: Alertmanager, PagerDuty, the generic event and
CloudEvents (both modes) open, update and resolve tickets, deduplicated by their key.

Every Alertmanager payload of the corpus and PagerDuty's own example event must be accepted.
"""

import copy
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from opora_shared.events import TicketReceived, TicketUpdated
from opora_shared.nats.history import ticket_events
from opora_shared.vocabulary import Channel, TicketChange

from .test_api_tokens import Intake, bearer, serve_intake

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "alert-payloads"
ALERTMANAGER_FILES = sorted(
    p for p in CORPUS.rglob("*.json") if "pagerduty-api-schema" not in p.parts
)
PAGERDUTY_SPEC = CORPUS / "pagerduty-api-schema" / "reference" / "events-v2" / "openapiv3.json"


def pagerduty_example() -> dict:
    spec = json.loads(PAGERDUTY_SPEC.read_text(encoding="utf-8"))
    body = spec["paths"]["/enqueue"]["post"]["requestBody"]["content"]["application/json"]
    return copy.deepcopy(body["examples"]["event"]["value"])


@pytest.fixture
async def intake(nats_url, tmp_path, js) -> AsyncIterator[Intake]:
    async with serve_intake(nats_url, tmp_path, js) as running:
        yield running


@pytest.fixture
async def sender(intake) -> str:
    """A token of Vector Logistics' monitoring: events:write, one tenant."""
    return await intake.token("vector", scopes=("events:write",))


async def post(intake: Intake, path: str, token: str | None, *, params=None, **kwargs):
    headers = {**(bearer(token) if token else {}), **kwargs.pop("headers", {})}
    async with intake.http() as http:
        return await http.post(path, headers=headers, params=params, **kwargs)


async def history(js, ticket_id: str) -> list:
    return await ticket_events(js, ticket_id)


def updates(events: list, change: TicketChange) -> list[TicketUpdated]:
    return [e for e in events if isinstance(e, TicketUpdated) and e.change is change]


def alert_group(key: str, status: str = "firing", alerts: int = 1) -> dict:
    return {
        "version": "4",
        "groupKey": key,
        "status": status,
        "receiver": "opora",
        "groupLabels": {"alertname": "DiskAlmostFull"},
        "commonLabels": {"alertname": "DiskAlmostFull", "severity": "warning"},
        "commonAnnotations": {"summary": "Disk almost full"},
        "externalURL": "http://alertmanager.vector.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "DiskAlmostFull", "instance": f"srv-{i}:9100"},
                "annotations": {"description": f"srv-{i}: 93% used"},
                "startsAt": "2024-05-12T02:10:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.vector.example/graph",
            }
            for i in range(alerts)
        ],
    }


class TestCorpus:
    @pytest.mark.parametrize("path", ALERTMANAGER_FILES, ids=lambda p: p.name)
    async def test_every_alertmanager_payload_is_accepted(self, intake, sender, js, path):
        response = await post(
            intake, "/v1/integrations/alertmanager", sender, content=path.read_bytes(),
            headers={"content-type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 202, response.text
        answer = response.json()
        assert answer["outcome"] in ("created", "updated", "unchanged")
        events = await history(js, answer["ticket_id"])
        received = next(e for e in events if isinstance(e, TicketReceived))
        assert received.channel is Channel.INTEGRATION
        assert received.tenant == "vector"
        assert received.requester.email == "alertmanager@vector"

    async def test_the_pagerduty_example_is_accepted(self, intake, sender, js):
        event = pagerduty_example()
        event["dedup_key"] = f"srv01/mysql/{uuid.uuid4().hex}"
        response = await post(intake, "/v1/integrations/pagerduty", sender, json=event)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "success"
        assert response.json()["outcome"] == "created"
        (received, *_) = await history(js, response.json()["ticket_id"])
        assert received.subject == "DISK at 99% on machine prod-datapipe03.example.com"
        assert "Severity: critical" in received.body


class TestAlertmanager:
    async def test_firing_repeat_resolved_and_firing_again(self, intake, sender, js):
        key = f'{{}}:{{alertname="DiskAlmostFull",run="{uuid.uuid4().hex}"}}'
        path = "/v1/integrations/alertmanager"
        first = (await post(intake, path, sender, json=alert_group(key))).json()
        repeat = (await post(intake, path, sender, json=alert_group(key))).json()
        grown = (await post(intake, path, sender, json=alert_group(key, alerts=2))).json()
        resolved = (await post(intake, path, sender, json=alert_group(key, "resolved"))).json()
        again = (await post(intake, path, sender, json=alert_group(key, "resolved"))).json()
        refired = (await post(intake, path, sender, json=alert_group(key))).json()
        assert [r["outcome"] for r in (first, repeat, grown, resolved, again, refired)] == [
            "created", "unchanged", "updated", "resolved", "unchanged", "created",
        ]  # fmt: skip
        ticket_id = first["ticket_id"]
        assert repeat["ticket_id"] == grown["ticket_id"] == resolved["ticket_id"] == ticket_id
        assert refired["ticket_id"] != ticket_id
        events = await history(js, ticket_id)
        assert sum(isinstance(e, TicketReceived) for e in events) == 1
        (note,) = updates(events, TicketChange.NOTE)
        assert "[FIRING:2]" in (note.text or "")
        assert note.actor.kind == "token"
        assert len(updates(events, TicketChange.RESOLVED)) == 1
        (received, *_) = await history(js, refired["ticket_id"])
        assert received.related_ticket == ticket_id
        assert received.subject.startswith("[FIRING:1] DiskAlmostFull")

    async def test_a_resolved_group_never_opens_a_ticket(self, intake, sender):
        key = f"never-fired-{uuid.uuid4().hex}"
        response = await post(
            intake, "/v1/integrations/alertmanager", sender, json=alert_group(key, "resolved")
        )
        assert response.status_code == 202
        assert response.json()["outcome"] == "ignored"
        assert response.json()["ticket_id"] is None

    async def test_needs_events_write_for_the_tenant(self, intake):
        path, body = "/v1/integrations/alertmanager", alert_group("k")
        reader = await intake.token("vector", scopes=("tickets:read",))
        staff = await intake.token("*", scopes=("events:write",))
        no_scope = await post(intake, path, reader, json=body)
        no_tenant = await post(intake, path, staff, json=body)
        other = await post(
            intake, path, await intake.token("vector", scopes=("events:write",)), json=body,
            params={"tenant": "romashka"},
        )  # fmt: skip
        unknown = await post(intake, path, staff, json=body, params={"tenant": "nosuch"})
        nobody = await post(intake, path, None, json=body)
        assert (no_scope.status_code, other.status_code, nobody.status_code) == (403, 403, 401)
        assert no_tenant.status_code == unknown.status_code == 422
        assert no_tenant.json()["detail"][0]["loc"] == ["query", "tenant"]

    async def test_a_payload_without_its_group_key_is_422_naming_it(self, intake, sender):
        body = alert_group("k")
        del body["groupKey"]
        response = await post(intake, "/v1/integrations/alertmanager", sender, json=body)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "groupKey"]


class TestPagerDuty:
    async def test_trigger_acknowledge_resolve(self, intake, sender, js):
        key = f"srv02/disk/{uuid.uuid4().hex}"
        trigger = pagerduty_example() | {"dedup_key": key}
        path = "/v1/integrations/pagerduty"
        made = (await post(intake, path, sender, json=trigger)).json()
        ack = (
            await post(
                intake, path, sender,
                json={"routing_key": "x", "event_action": "acknowledge", "dedup_key": key},
            )
        ).json()  # fmt: skip
        resolve = (
            await post(
                intake, path, sender,
                json={"routing_key": "x", "event_action": "resolve", "dedup_key": key},
            )
        ).json()  # fmt: skip
        assert [made["outcome"], ack["outcome"], resolve["outcome"]] == [
            "created",
            "acknowledged",
            "resolved",
        ]
        assert made["dedup_key"] == key
        events = await history(js, made["ticket_id"])
        assert len(updates(events, TicketChange.ACKNOWLEDGED)) == 1
        assert len(updates(events, TicketChange.RESOLVED)) == 1

    async def test_the_routing_key_may_be_the_token(self, intake, sender):
        event = pagerduty_example() | {"routing_key": sender, "dedup_key": uuid.uuid4().hex}
        accepted = await post(intake, "/v1/integrations/pagerduty", None, json=event)
        event |= {"routing_key": "opora_not-a-token"}
        refused = await post(intake, "/v1/integrations/pagerduty", None, json=event)
        assert accepted.status_code == 202
        assert accepted.json()["outcome"] == "created"
        assert refused.status_code == 401

    async def test_a_trigger_without_a_key_gets_one(self, intake, sender):
        event = pagerduty_example()
        del event["dedup_key"]
        response = await post(intake, "/v1/integrations/pagerduty", sender, json=event)
        assert response.status_code == 202
        assert len(response.json()["dedup_key"]) == 32

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"routing_key": "x", "event_action": "trigger"}, "payload"),
            ({"routing_key": "x", "event_action": "resolve"}, "dedup_key"),
            ({"routing_key": "x", "event_action": "explode", "dedup_key": "k"}, "event_action"),
        ],
    )
    async def test_bad_events_are_422_naming_the_field(self, intake, sender, body, field):
        response = await post(intake, "/v1/integrations/pagerduty", sender, json=body)
        assert response.status_code == 422
        assert field in {str(p) for err in response.json()["detail"] for p in err["loc"]}


def generic(key: str, **overrides) -> dict:
    event = {
        "source": "zabbix",
        "dedup_key": key,
        "summary": "Free disk space is less than 5% on srv-db01",
        "severity": "disaster",
        "resource": "srv-db01",
        "details": {"trigger": "Disk C:", "value": "3.2%"},
    }
    event.update(overrides)
    return event


class TestGenericEvent:
    async def test_trigger_then_resolve(self, intake, sender, js):
        key = f"p-{uuid.uuid4().hex}"
        made = await post(intake, "/v1/events", sender, json=generic(key))
        closed = await post(intake, "/v1/events", sender, json=generic(key, action="resolve"))
        assert made.status_code == closed.status_code == 202
        assert (made.json()["outcome"], closed.json()["outcome"]) == ("created", "resolved")
        (received, *_) = await history(js, made.json()["ticket_id"])
        assert received.requester.email == "zabbix@vector"
        assert "Severity: disaster" in received.body

    @pytest.mark.parametrize(
        ("override", "field"),
        [
            ({"severity": "very bad!"}, "severity"),
            ({"action": "explode"}, "action"),
            ({"summary": ""}, "summary"),
            ({"extra": 1}, "extra"),
        ],
    )
    async def test_bad_events_are_422_naming_the_field(self, intake, sender, override, field):
        response = await post(intake, "/v1/events", sender, json=generic("k", **override))
        assert response.status_code == 422
        assert field in {str(p) for err in response.json()["detail"] for p in err["loc"]}

    async def test_other_media_types_are_415_and_broken_json_422(self, intake, sender):
        text = await post(
            intake, "/v1/events", sender, content=b"disk full",
            headers={"content-type": "text/plain"},
        )  # fmt: skip
        broken = await post(
            intake, "/v1/events", sender, content=b"{nope",
            headers={"content-type": "application/json"},
        )  # fmt: skip
        assert text.status_code == 415
        assert broken.status_code == 422


class TestCloudEvents:
    def cloudevent(self, key: str, ce_type="com.example.monitoring.alert", **data) -> CloudEvent:
        return CloudEvent(
            attributes={
                "type": ce_type,
                "source": "https://monitoring.vector.example/ce",
                "id": uuid.uuid4().hex,
                "subject": key,
            },
            data={"summary": "VPN tunnel to the warehouse is down", "severity": "critical", **data},
        )

    @pytest.mark.parametrize("mode", ["structured", "binary"])
    async def test_both_modes_make_a_ticket(self, intake, sender, js, mode):
        key = f"vpn-{uuid.uuid4().hex}"
        convert = to_structured_event if mode == "structured" else to_binary_event
        message = convert(self.cloudevent(key, site="warehouse"))
        response = await post(
            intake, "/v1/events", sender, content=message.body, headers=message.headers
        )
        assert response.status_code == 202, response.text
        answer = response.json()
        assert (answer["outcome"], answer["dedup_key"]) == ("created", key)
        assert answer["source"] == "https://monitoring.vector.example/ce"
        (received, *_) = await history(js, answer["ticket_id"])
        assert received.subject == "VPN tunnel to the warehouse is down"
        assert " - site = warehouse" in received.body
        assert received.requester.email == "monitoring.vector.example@vector"

    async def test_a_resolved_type_resolves(self, intake, sender):
        key = f"vpn-{uuid.uuid4().hex}"
        opened = to_structured_event(self.cloudevent(key))
        closed = to_binary_event(self.cloudevent(key, "com.example.monitoring.alert.resolved"))
        first = await post(
            intake, "/v1/events", sender, content=opened.body, headers=opened.headers
        )
        second = await post(
            intake, "/v1/events", sender, content=closed.body, headers=closed.headers
        )
        assert (first.json()["outcome"], second.json()["outcome"]) == ("created", "resolved")

    async def test_a_cloudevent_without_an_id_is_422_naming_it(self, intake, sender):
        body = {"specversion": "1.0", "type": "t", "source": "s", "data": {"summary": "x"}}
        structured = await post(
            intake, "/v1/events", sender, content=json.dumps(body).encode(),
            headers={"content-type": "application/cloudevents+json"},
        )  # fmt: skip
        binary = await post(
            intake, "/v1/events", sender, json={"summary": "x"},
            headers={"ce-specversion": "1.0", "ce-type": "t", "ce-source": "s"},
        )  # fmt: skip
        assert structured.status_code == binary.status_code == 422
        assert structured.json()["detail"][0]["loc"] == ["cloudevent", "id"]
        assert binary.json()["detail"][0]["loc"] == ["cloudevent", "id"]
