"""The sla-timer's ticket consumer reads an old event version through its upcaster."""

import json

import pytest
from pydantic import ValidationError

from opora_shared.events import TicketClassified, TicketUpdated, register_upcaster
from opora_shared.events import base as events_base
from opora_shared.testing.factories import make_ticket_classified
from opora_sla_timer.handlers import _ticket_event


def test_an_old_version_is_upcast_before_it_is_read(monkeypatch):
    monkeypatch.setattr(events_base, "_UPCASTERS", {})
    current = json.loads(make_ticket_classified().model_dump_json())
    assert isinstance(_ticket_event(json.dumps(current).encode()), TicketClassified)
    old = {k: v for k, v in current.items() if k != "priority"}
    old.update(schema_version=0, urgency=current["priority"])
    with pytest.raises(ValidationError):
        _ticket_event(json.dumps(old).encode())

    @register_upcaster("ticket.classified", 0)
    def rename(payload):
        payload["priority"] = payload.pop("urgency")
        return payload

    event = _ticket_event(json.dumps(old).encode())
    assert isinstance(event, TicketClassified)
    assert not isinstance(event, TicketUpdated)
    assert (event.priority, event.schema_version) == (current["priority"], 1)
    with pytest.raises(ValidationError):  # not an object: refused, not crashed
        _ticket_event(b"[1]")
