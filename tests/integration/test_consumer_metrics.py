"""Consumer lag, redeliveries and dead letters are read from JetStream into gauges."""

import uuid

from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import CollectorRegistry

from opora_shared import subjects
from opora_shared.nats.consumer_metrics import ConsumerGauges, durables_of
from opora_shared.testing.factories import make_ticket_received


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels)


class TestConsumerGauges:
    async def test_pending_ack_pending_and_dead_letters_of_a_durable(self, js):
        tenant = f"m{uuid.uuid4().hex[:8]}"
        durable = f"test-{tenant}"
        await js.add_consumer(
            subjects.EVENTS_STREAM,
            ConsumerConfig(
                durable_name=durable,
                filter_subject=subjects.tenant_events(tenant),
                ack_policy=AckPolicy.EXPLICIT,
                inactive_threshold=60,
            ),
        )
        for _ in range(3):
            event = make_ticket_received(tenant=tenant)
            await js.publish(subjects.event_subject(event), event.model_dump_json().encode())
        await js.publish(subjects.dead_letter(durable), b"{}")
        registry = CollectorRegistry()
        gauges = ConsumerGauges(registry)
        await gauges.refresh(js, [(subjects.EVENTS_STREAM, durable)])
        labels = {"consumer": durable, "stream": subjects.EVENTS_STREAM}
        assert sample(registry, "opora_consumer_pending_messages", **labels) == 3
        assert sample(registry, "opora_consumer_ack_pending_messages", **labels) == 0
        assert sample(registry, "opora_dead_letters", consumer=durable) == 1

        sub = await js.pull_subscribe_bind(durable, stream=subjects.EVENTS_STREAM)
        fetched = await sub.fetch(2, timeout=2)
        assert len(fetched) == 2
        await gauges.refresh(js, [(subjects.EVENTS_STREAM, durable)])
        assert sample(registry, "opora_consumer_pending_messages", **labels) == 1
        assert sample(registry, "opora_consumer_ack_pending_messages", **labels) == 2
        await js.delete_consumer(subjects.EVENTS_STREAM, durable)

    def test_a_services_durables_are_found_on_its_broker(self):
        from opora_sla_timer.app import create_app
        from opora_sla_timer.settings import SlaTimerSettings

        app = create_app(SlaTimerSettings(), registry=CollectorRegistry())
        found = durables_of(app.broker)
        assert (subjects.EVENTS_STREAM, "sla-timer-tickets") in found
        assert (subjects.SLA_STREAM, "sla-timer-fire") in found
