"""The dispatcher's state machine, with an in-memory ledger and scripted channels.

The same behaviours against real JetStream KV, a real SMTP server and a real HTTP server are
in tests/integration/test_notifier_delivery.py.
"""

import random
from datetime import date, datetime, timedelta
from email.headerregistry import Address

import pytest
from prometheus_client import CollectorRegistry

from opora_notifier.channels import DeliveryError
from opora_notifier.delivery import DeliveryPolicy, Dispatcher, TriggerRef
from opora_notifier.digest import bundles
from opora_notifier.ledger import DeliveryState, LedgerConflict, Record
from opora_notifier.metrics import NotifierMetrics
from opora_notifier.notices import Medium
from opora_notifier.policy import Admission, admit
from opora_notifier.rendering import Renderer
from opora_shared.contracts import DigestPolicy
from opora_shared.ticket_index import summarize
from opora_shared.tickets import fold
from opora_shared.vocabulary import Priority

SENDER = Address(display_name="Opora Support", addr_spec="support@opora.local")


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the dispatcher catches it)."""


class MemoryLedger:
    def __init__(self):
        self.records: dict[str, tuple[Record, int]] = {}
        self.windows: dict[str, list[datetime]] = {}
        self.revision = 0

    async def get(self, nid):
        found = self.records.get(nid)
        return (found[0], found[1]) if found else (None, None)

    async def put(self, nid, record, revision):
        current = self.records.get(nid)
        if (current[1] if current else None) != revision:
            raise LedgerConflict(nid)
        self.revision += 1
        self.records[nid] = (record, self.revision)
        return self.revision

    async def admit(self, key, *, now, limit, period_s, urgent) -> Admission:
        decision = admit(
            self.windows.get(key, []),
            now=now,
            limit=limit,
            period=timedelta(seconds=period_s),
            urgent=urgent,
        )
        if decision.admitted:
            self.windows[key] = list(decision.window)
        return decision

    def state(self, notice):
        return self.records[notice.notification_id][0].state


class Journal:
    """The events and dead letters the dispatcher published."""

    def __init__(self):
        self.sent_events = []
        self.failed_events = []
        self.letters = []

    async def sent(self, event):
        self.sent_events.append(event)

    async def failed(self, event, letter, subject):
        self.failed_events.append(event)
        self.letters.append((subject, letter))

    async def dead(self, letter, subject, notification_id):
        self.letters.append((subject, letter))

    async def recorded(self, tenant, ticket_id, event_ids):
        ids = {str(e.event_id) for e in self.sent_events + self.failed_events}
        return ids & event_ids


class ScriptedChannel:
    """Does what the script says, one step per send: ok, temporary, final, maybe, crash..."""

    def __init__(self, medium=Medium.EMAIL, name="smtp", script=()):
        self.medium = medium
        self.name = name
        self.cte = "8bit"
        self.deadline_s = 10.0
        self.script = list(script)
        self.delivered = []
        self.calls = 0
        self.known: bool | None = None

    async def send(self, out, commit):
        self.calls += 1
        action = self.script.pop(0) if self.script else "ok"
        if action == "unreachable":
            raise DeliveryError("relay unreachable", temporary=True, undelivered=True)
        if action == "crash-before":
            raise Crash
        await commit()
        if action == "temporary":
            raise DeliveryError("SMTP 451 try later", temporary=True, undelivered=True)
        if action == "final":
            raise DeliveryError("SMTP 550 no such user", temporary=False, undelivered=True)
        if action == "maybe":
            raise DeliveryError("no answer to DATA", temporary=True)
        if action == "bug":
            raise KeyError("oops")
        self.delivered.append(out.notification_id)
        if action == "crash-after":
            raise Crash
        return out.message_id

    async def confirm(self, out):
        return self.known

    async def close(self):
        pass


class Clock:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now


@pytest.fixture
def world(now):
    class World:
        def __init__(self):
            self.ledger = MemoryLedger()
            self.journal = Journal()
            self.clock = Clock(now)
            self.slept = []

        def dispatcher(self, *channels, **policy):
            async def sleep(seconds):
                self.slept.append(seconds)

            return Dispatcher(
                ledger=self.ledger,
                journal=self.journal,
                channels={c.medium: c for c in channels},
                renderer=Renderer(),
                sender=SENDER,
                mail_domain="opora.local",
                clock=self.clock,
                metrics=NotifierMetrics(CollectorRegistry()),
                policy=DeliveryPolicy(
                    **{"attempts": 3, "backoff_s": 0.5, "backoff_max_s": 4.0, **policy}
                ),
                rng=random.Random(5),  # noqa: S311 - jitter in a test
                sleep=sleep,
            )

    return World()


TRIGGER = TriggerRef(
    consumer="notifier-ack", subject="opora.ev.romashka.sla.1042.armed", stream_seq=7, payload=b"{}"
)


@pytest.fixture
def ack(planner, ticket, romashka):
    ticket.received().classified()
    (notice,) = planner.armed(ticket.facts, romashka, ticket.armed())
    return notice


@pytest.fixture
def page(planner, make_ticket, romashka):
    ticket = make_ticket(ticket_id="77")
    ticket.received().classified(priority=Priority.P1)
    return planner.armed(ticket.facts, romashka, ticket.armed())[1]


class TestOnce:
    async def test_a_notice_is_sent_once_however_often_it_is_delivered(self, world, ack):
        channel = ScriptedChannel()
        dispatcher = world.dispatcher(channel)
        first = await dispatcher.deliver([ack], TRIGGER)
        second = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert first.outcomes == {ack.notification_id: "sent"}
        assert second.outcomes == {ack.notification_id: "duplicate"}
        assert channel.delivered == [ack.notification_id]
        (event,) = world.journal.sent_events
        assert event.notification_id == ack.notification_id
        assert event.message_id == f"<opora.1042.{ack.notification_id}@opora.local>"
        assert event.recipient == "anna@romashka.ru"
        assert world.ledger.state(ack) is DeliveryState.SENT

    async def test_notices_go_in_order_and_a_retry_does_not_hold_the_others(self, world, ack, page):
        mail = ScriptedChannel(script=["temporary"])
        report = await world.dispatcher(mail).deliver([ack, page], TRIGGER)
        assert mail.delivered == [page.notification_id, ack.notification_id]
        assert report.outcomes == {ack.notification_id: "sent", page.notification_id: "sent"}


class TestRetries:
    async def test_temporary_failures_are_retried_with_growing_jittered_delays(self, world, ack):
        channel = ScriptedChannel(script=["unreachable", "temporary"])
        report = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert report.outcomes[ack.notification_id] == "sent"
        assert channel.calls == 3
        assert 0.25 <= world.slept[0] <= 0.5
        assert 0.5 <= world.slept[1] <= 1.0
        record = world.ledger.records[ack.notification_id][0]
        assert record.attempts == 3

    async def test_after_the_last_try_it_fails_with_a_dead_letter(self, world, ack):
        channel = ScriptedChannel(script=["temporary"] * 3)
        report = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert report.outcomes[ack.notification_id] == "failed"
        (failed,) = world.journal.failed_events
        assert failed.attempts == 3
        assert failed.reason == "SMTP 451 try later (after 3 tries)"
        ((subject, letter),) = world.journal.letters
        assert subject == "opora.dlq.notifier-ack"
        assert letter.stream_seq == 7
        assert letter.subject == TRIGGER.subject
        assert ack.notification_id in letter.reason
        assert world.ledger.state(ack) is DeliveryState.FAILED
        again = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert again.outcomes[ack.notification_id] == "duplicate"
        assert channel.calls == 3

    async def test_a_final_refusal_is_not_retried(self, world, ack):
        channel = ScriptedChannel(script=["final"])
        await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert channel.calls == 1
        assert world.journal.failed_events[0].reason == "SMTP 550 no such user"

    async def test_an_unexpected_error_after_handing_over_counts_as_doubt(self, world, ack):
        channel = ScriptedChannel(script=["bug"])
        report = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert report.outcomes[ack.notification_id] == "uncertain"  # it had committed
        assert channel.calls == 1


class TestDoubt:
    async def test_no_answer_after_handing_over_is_never_resent_to_a_client(self, world, ack):
        channel = ScriptedChannel(script=["maybe"])
        report = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert report.outcomes[ack.notification_id] == "uncertain"
        assert channel.calls == 1
        assert world.journal.failed_events[0].reason.startswith("uncertain: no answer to DATA")

    async def test_but_is_resent_to_an_engineer(self, world, page):
        channel = ScriptedChannel(script=["maybe"])
        report = await world.dispatcher(channel).deliver([page], TRIGGER)
        assert report.outcomes[page.notification_id] == "sent"
        assert channel.calls == 2


class TestCrashes:
    async def test_a_crash_mid_send_never_mails_the_client_twice(self, world, ack):
        channel = ScriptedChannel(script=["crash-after"])
        with pytest.raises(Crash):
            await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert world.ledger.state(ack) is DeliveryState.COMMITTING
        restarted = world.dispatcher(channel)  # a new process
        soon = await restarted.deliver([ack], TRIGGER)
        assert soon.wait_until == world.clock.now + timedelta(seconds=15)  # lease: 10 s + 5 s
        assert soon.waiting == {"busy"}
        world.clock.now += timedelta(seconds=16)
        later = await restarted.deliver([ack], TRIGGER)
        assert later.outcomes[ack.notification_id] == "uncertain"
        assert channel.delivered == [ack.notification_id]
        (failed,) = world.journal.failed_events
        assert "not sent again" in failed.reason
        assert world.ledger.state(ack) is DeliveryState.FAILED

    async def test_a_crash_mid_send_resends_an_engineers_alert(self, world, page):
        channel = ScriptedChannel(script=["crash-after"])
        with pytest.raises(Crash):
            await world.dispatcher(channel).deliver([page], TRIGGER)
        world.clock.now += timedelta(seconds=16)
        await world.dispatcher(channel).deliver([page], TRIGGER)
        assert channel.delivered == [page.notification_id, page.notification_id]
        assert len(world.journal.sent_events) == 1

    async def test_a_crash_before_handing_over_is_simply_tried_again(self, world, ack):
        channel = ScriptedChannel(script=["crash-before"])
        with pytest.raises(Crash):
            await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert world.ledger.state(ack) is DeliveryState.SENDING
        world.clock.now += timedelta(seconds=16)
        report = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert report.outcomes[ack.notification_id] == "sent"
        assert channel.delivered == [ack.notification_id]

    async def test_a_channel_that_can_tell_is_asked(self, world, ack):
        channel = ScriptedChannel(name="outbox", script=["crash-after"])
        with pytest.raises(Crash):
            await world.dispatcher(channel).deliver([ack], TRIGGER)
        channel.known = True  # the outbox finds its file
        world.clock.now += timedelta(seconds=16)
        report = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert report.outcomes[ack.notification_id] == "sent"
        assert channel.delivered == [ack.notification_id]
        assert world.journal.sent_events[0].channel == "outbox"

    async def test_an_outcome_already_in_the_stream_repairs_the_record(self, world, ack):
        channel = ScriptedChannel()
        await world.dispatcher(channel).deliver([ack], TRIGGER)
        record, revision = world.ledger.records[ack.notification_id]
        stale = record.model_copy(update={"state": DeliveryState.COMMITTING})
        world.ledger.records[ack.notification_id] = (stale, revision)  # as if the write was lost
        world.clock.now += timedelta(seconds=16)
        report = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert report.outcomes[ack.notification_id] == "duplicate"
        assert channel.calls == 1
        assert world.ledger.state(ack) is DeliveryState.SENT

    async def test_another_replica_at_work_is_waited_for(self, world, ack):
        world.ledger.records[ack.notification_id] = (
            Record(state=DeliveryState.SENDING, attempts=1, at=world.clock.now, channel="smtp"),
            1,
        )
        channel = ScriptedChannel()
        report = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert report.waiting == {"busy"}
        assert channel.calls == 0


class TestHolding:
    async def test_a_p3_warning_at_night_waits_for_the_shift_unwritten(
        self, world, planner, ticket, romashka, night
    ):
        ticket.received().classified().assigned("maria")
        ticket.armed(at=night)
        (warning,) = planner.sla_warning(ticket.facts, romashka, ticket.warning(at=night))
        world.clock.now = night
        channel = ScriptedChannel()
        report = await world.dispatcher(channel).deliver([warning], TRIGGER)
        assert report.waiting == {"quiet"}
        assert report.wait_until.isoformat() == "2026-11-27T06:00:00+00:00"
        assert channel.calls == 0
        assert warning.notification_id not in world.ledger.records
        world.clock.now = report.wait_until
        report = await world.dispatcher(channel).deliver([warning], TRIGGER)
        assert report.outcomes[warning.notification_id] == "sent"

    async def test_a_client_rate_limit_holds_the_next_message_to_one_address(
        self, world, planner, make_ticket, romashka
    ):
        channel = ScriptedChannel()
        dispatcher = world.dispatcher(channel, client_rate_limit_per_hour=2)
        acks = []
        for number in ("1", "2", "3"):
            ticket = make_ticket(ticket_id=number)
            ticket.received().classified()
            acks += planner.armed(ticket.facts, romashka, ticket.armed())
        report = await dispatcher.deliver(acks, TRIGGER)
        assert list(report.outcomes.values()) == ["sent", "sent"]
        assert report.waiting == {"rate"}
        assert report.wait_until == world.clock.now + timedelta(hours=1)

    async def test_clients_are_not_limited_by_default(self, world, planner, make_ticket, romashka):
        channel = ScriptedChannel()
        acks = []
        for number in range(1, 40):
            ticket = make_ticket(ticket_id=str(number))
            ticket.received().classified()
            acks += planner.armed(ticket.facts, romashka, ticket.armed())
        report = await world.dispatcher(channel).deliver(acks, TRIGGER)
        assert set(report.outcomes.values()) == {"sent"}
        assert len(channel.delivered) == 39

    async def test_team_alerts_are_limited_per_person_but_urgent_ones_go(
        self, world, planner, make_ticket, romashka
    ):
        channel = ScriptedChannel()
        dispatcher = world.dispatcher(channel, rate_limit_per_hour=1)
        notices = []
        for number, priority in (("1", Priority.P3), ("2", Priority.P3), ("3", Priority.P1)):
            ticket = make_ticket(ticket_id=number)
            ticket.received().classified(priority=priority).assigned("maria")
            ticket.armed()
            notices += planner.sla_warning(ticket.facts, romashka, ticket.warning())
        report = await dispatcher.deliver(notices, TRIGGER)
        assert [report.outcomes.get(n.notification_id) for n in notices] == ["sent", None, "sent"]
        assert report.waiting == {"rate"}

    async def test_a_replayed_old_trigger_sends_nothing(self, world, ack):
        world.clock.now += timedelta(days=8)
        channel = ScriptedChannel()
        report = await world.dispatcher(channel).deliver([ack], TRIGGER)
        assert report.outcomes[ack.notification_id] == "stale"
        assert channel.calls == 0

    async def test_but_one_held_over_long_holidays_still_goes(self, world, ack):
        world.clock.now += timedelta(days=11)
        channel = ScriptedChannel()
        held = TriggerRef(consumer="notifier-sla-warning", held=True)
        report = await world.dispatcher(channel).deliver([ack], held)
        assert report.outcomes[ack.notification_id] == "sent"


@pytest.fixture
def digest(planner, make_ticket, team, romashka):
    ticket = make_ticket(ticket_id="88").received()
    ticket.classified().assigned("maria")
    found = bundles([summarize(fold(ticket.events), ticket.events)], DigestPolicy(), team)
    (notice,) = planner.digest(romashka, found, date(2026, 11, 26), ticket.events[0].occurred_at)
    return notice


DIGEST_TRIGGER = TriggerRef(consumer="notifier-digest", payload=b'{"tenant":"romashka"}')


class TestNoticesAboutNoTicket:
    async def test_a_digest_is_recorded_once_without_a_ticket_event(self, world, digest):
        channel = ScriptedChannel()
        first = await world.dispatcher(channel).deliver([digest], DIGEST_TRIGGER)
        again = await world.dispatcher(channel).deliver([digest], DIGEST_TRIGGER)
        assert first.outcomes == {digest.notification_id: "sent"}
        assert again.outcomes == {digest.notification_id: "duplicate"}
        assert channel.delivered == [digest.notification_id]
        assert world.journal.sent_events == []  # no ticket to put it on: the record says it
        record = world.ledger.records[digest.notification_id][0]
        assert record.state is DeliveryState.SENT
        assert record.message_id == f"<opora.digest.{digest.notification_id}@opora.local>"

    async def test_a_failed_digest_leaves_only_a_dead_letter(self, world, digest):
        channel = ScriptedChannel(script=["final"])
        report = await world.dispatcher(channel).deliver([digest], DIGEST_TRIGGER)
        assert report.outcomes == {digest.notification_id: "failed"}
        assert world.journal.failed_events == []
        ((subject, letter),) = world.journal.letters
        assert subject == "opora.dlq.notifier-digest"
        assert letter.stream is None
        assert digest.notification_id in letter.reason
        assert world.ledger.state(digest) is DeliveryState.FAILED

    async def test_a_crashed_digest_is_sent_again_after_its_lease(self, world, digest):
        channel = ScriptedChannel(script=["crash-after"])
        with pytest.raises(Crash):
            await world.dispatcher(channel).deliver([digest], DIGEST_TRIGGER)
        world.clock.now += timedelta(minutes=1)  # the lease ran out: the attempt is dead
        report = await world.dispatcher(channel).deliver([digest], DIGEST_TRIGGER)
        assert report.outcomes == {digest.notification_id: "sent"}  # team mail: at least once
        assert channel.delivered == [digest.notification_id, digest.notification_id]
