"""Engineers act on tickets by replying to their alert mail: real SMTP, real NATS.

The intake's own SMTP server on a free port, aiosmtplib as the engineer's (or client's) mail
client. SMTP answers 250 only after every effect is stored, so each test reads the stream
right after the answer.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest
from prometheus_client import CollectorRegistry

from opora_intake.app import create_app
from opora_intake.settings import IntakeSettings
from opora_shared import subjects
from opora_shared.events import Event, TicketAssigned, TicketUpdated
from opora_shared.events.intake import MailRecorded
from opora_shared.mail_ids import outbound_message_id
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.nats.server import free_port
from opora_shared.testing.factories import make_ticket_classified
from opora_shared.testing.stored import stored
from opora_shared.vocabulary import Category, Priority, TicketChange

AUTHSERV = "mx.opora.test"
ATTRIBUTION = "On Mon, 2 Mar 2026 at 10:00, Opora Support <support@opora.local> wrote:"


@dataclass
class Intake:
    app: object
    settings: IntakeSettings

    @property
    def broker(self):
        return self.app.state.runtime.broker

    async def send(self, msg: EmailMessage) -> str:
        """Deliver over SMTP; the server's answer to DATA (raises on a 4xx/5xx)."""
        errors, response = await aiosmtplib.send(
            msg,
            hostname="127.0.0.1",
            port=self.settings.smtp_port,
            recipients=["support@opora.local"],
            timeout=20,
        )
        assert errors == {}
        return response

    async def refused(self, msg: EmailMessage) -> aiosmtplib.SMTPResponseException:
        """Deliver, expecting a refusal; the SMTP error (its code and text)."""
        with pytest.raises(aiosmtplib.SMTPResponseException) as err:
            await self.send(msg)
        return err.value

    async def ticket(self, **classified) -> str:
        """A client's new ticket by mail, optionally classified (as the classifier would)."""
        response = await self.send(client_mail())
        ticket_id = response.split("#")[1].split()[0]
        if classified:
            event = make_ticket_classified(tenant="romashka", ticket_id=ticket_id, **classified)
            await publish_event(self.broker, event)
        return ticket_id


IntakeFactory = Callable[..., AbstractAsyncContextManager[Intake]]


@pytest.fixture
def start_intake(nats_url, tmp_path) -> IntakeFactory:
    """Start the intake (its SMTP server on a free port) with some settings changed."""

    @asynccontextmanager
    async def start(**overrides) -> AsyncIterator[Intake]:
        settings = IntakeSettings(
            nats_url=nats_url,
            http_port=0,
            smtp_port=free_port(),
            var_dir=tmp_path,
            auto_mail_cap_per_ticket=2,
            **overrides,
        )
        app = create_app(settings, registry=CollectorRegistry())
        async with app.router.lifespan_context(app):
            yield Intake(app, settings)

    return start


@pytest.fixture
async def intake(start_intake) -> AsyncIterator[Intake]:
    """The intake as configured by default (no Authentication-Results required)."""
    async with start_intake() as running:
        yield running


def client_mail(
    sender="anna@romashka.ru", subject="Принтер не печатает", body="Замяло бумагу.\n", **headers
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@opora.local"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def engineer_mail(ticket_id: str | None, body: str, sender="maria@opora.local", **headers):
    """A reply to the engineer alert of a ticket (threaded by In-Reply-To, like a mail client)."""
    if ticket_id is not None:
        alert = outbound_message_id(ticket_id, str(uuid.uuid4()), "opora.local")
        headers.setdefault("In_Reply_To", alert)
        headers.setdefault("References", alert)
        subject = f"Re: [#{ticket_id}] P3 Принтер не печатает"
    else:
        subject = "Принтер в бухгалтерии"
    return client_mail(sender=sender, subject=subject, body=body, **headers)


async def updates(js, ticket_id: str) -> list[TicketUpdated]:
    return [e for e in await ticket_events(js, ticket_id) if isinstance(e, TicketUpdated)]


async def history(js, ticket_id: str) -> list[Event]:
    return await ticket_events(js, ticket_id)


async def recorded(js, outcome: str, msg: EmailMessage) -> MailRecorded:
    found = await stored(js, subjects.mail_record(outcome), MailRecorded)
    return next(r for r in found if r.message_id == msg["Message-ID"])


class TestEngineerCommands:
    async def test_ack_from_an_engineer_is_acknowledged(self, intake, js):
        ticket_id = await intake.ticket()
        msg = engineer_mail(ticket_id, f"#ack\n\n{ATTRIBUTION}\n> [P3] New ticket #{ticket_id}\n")
        response = await intake.send(msg)
        assert f"recorded on ticket #{ticket_id}" in response
        (update,) = await updates(js, ticket_id)
        assert update.change is TicketChange.ACKNOWLEDGED
        assert update.actor.kind == "engineer"
        assert update.actor.id == "maria"
        assert update.text is None
        assert update.message_id == msg["Message-ID"]
        record = await recorded(js, "engineer", msg)
        assert record.ticket_id == ticket_id
        assert record.tenant == "romashka"
        assert record.reason == "acknowledged by maria"

    async def test_wait_resolve_and_note_carry_their_text(self, intake, js):
        ticket_id = await intake.ticket()
        await intake.send(engineer_mail(ticket_id, "#wait\nПришлите фото ошибки, пожалуйста."))
        await intake.send(engineer_mail(ticket_id, "#note клиент просил звонить после 12"))
        await intake.send(
            engineer_mail(ticket_id, "#resolve\nЗаменили ролик подачи.", sender="lead@opora.local")
        )
        wait, note, resolve = await updates(js, ticket_id)
        assert (wait.change, wait.text) == (
            TicketChange.WAITING_ON_CLIENT,
            "Пришлите фото ошибки, пожалуйста.",
        )
        assert (note.change, note.text) == (TicketChange.NOTE, "клиент просил звонить после 12")
        assert (resolve.change, resolve.text) == (TicketChange.RESOLVED, "Заменили ролик подачи.")
        assert resolve.actor.id == "lead"

    async def test_a_plain_engineer_reply_is_replied_without_the_quote(self, intake, js):
        ticket_id = await intake.ticket()
        body = (
            "Анна, добрый день!\nПерезагрузите принтер, пожалуйста.\n\n"
            f"{ATTRIBUTION}\n"
            "> [P3] New ticket: internal assignment notes, SLA due 12:00\n"
        )
        await intake.send(engineer_mail(ticket_id, body, sender="Maria@Opora.local"))
        (update,) = await updates(js, ticket_id)
        assert update.change is TicketChange.REPLIED
        assert update.actor.kind == "engineer"
        assert update.actor.id == "maria"
        assert update.text == "Анна, добрый день!\nПерезагрузите принтер, пожалуйста."
        assert "internal" not in update.text

    async def test_a_hand_typed_tag_threads_an_engineer_into_any_tenant(self, intake, js):
        ticket_id = await intake.ticket()
        msg = client_mail(sender="alexey@opora.local", subject=f"[#{ticket_id}]", body="#ack")
        await intake.send(msg)
        (update,) = await updates(js, ticket_id)
        assert (update.change, update.actor.id) == (TicketChange.ACKNOWLEDGED, "alexey")

    async def test_an_unknown_command_is_refused_and_never_reaches_the_client(self, intake, js):
        ticket_id = await intake.ticket()
        msg = engineer_mail(ticket_id, "#reslove\nпочинили")
        error = await intake.refused(msg)
        assert error.code == 550
        assert "unknown command #reslove" in error.message
        assert await updates(js, ticket_id) == []
        record = await recorded(js, "rejected", msg)
        assert record.ticket_id == ticket_id
        assert "unknown command" in record.reason


class TestAssign:
    async def test_assign_is_a_manual_ticket_assigned(self, intake, js):
        ticket_id = await intake.ticket(category=Category.PRINTING, priority=Priority.P2)
        await intake.send(engineer_mail(ticket_id, "#assign maria", sender="alexey@opora.local"))
        await intake.send(engineer_mail(ticket_id, "#assign @Oleg", sender="lead@opora.local"))
        first, second = [e for e in await history(js, ticket_id) if isinstance(e, TicketAssigned)]
        assert first.rule == "manual"
        assert first.assignee == "maria"
        assert first.assignee_email == "maria@opora.local"
        assert first.priority is Priority.P2
        assert first.team == "service-desk"
        assert first.previous_assignee is None
        assert first.reasons == ("assigned by alexey by mail",)
        assert (second.assignee, second.previous_assignee) == ("oleg", "maria")
        assert await updates(js, ticket_id) == []

    async def test_an_unknown_engineer_is_refused_with_the_reason(self, intake, js):
        ticket_id = await intake.ticket(category=Category.PRINTING)
        msg = engineer_mail(ticket_id, "#assign ivan")
        error = await intake.refused(msg)
        assert error.code == 550
        assert "no engineer 'ivan'" in error.message
        assert "maria" in error.message  # who would work
        record = await recorded(js, "rejected", msg)
        assert "no engineer 'ivan'" in record.reason
        assert [e.type for e in await history(js, ticket_id)] == [
            "ticket.received",
            "ticket.classified",
        ]

    async def test_assigning_the_lead_is_refused(self, intake, js):
        ticket_id = await intake.ticket(category=Category.PRINTING)
        error = await intake.refused(engineer_mail(ticket_id, "#assign lead"))
        assert "no engineer 'lead'" in error.message


class TestWhoMayCommand:
    async def test_a_clients_resolve_is_only_a_client_reply(self, intake, js):
        ticket_id = await intake.ticket()
        msg = client_mail(subject=f"Re: [#{ticket_id}] Заявка принята", body="#resolve\nвсё ок")
        await intake.send(msg)
        (update,) = await updates(js, ticket_id)
        assert update.change is TicketChange.CLIENT_REPLIED
        assert update.actor.kind == "client"
        assert update.text.startswith("#resolve")

    async def test_an_unknown_sender_threaded_into_a_ticket_commands_nothing(self, intake, js):
        ticket_id = await intake.ticket()
        # a look-alike of a team address, replying to the alert's Message-ID
        await intake.send(engineer_mail(ticket_id, "#resolve", sender="maria@opora.local.evil.io"))
        assert [u.change for u in await updates(js, ticket_id)] == []

    async def test_an_engineer_mail_without_a_ticket_makes_no_ticket(self, intake, js):
        msg = engineer_mail(None, "Посмотрите принтер в бухгалтерии")
        error = await intake.refused(msg)
        assert error.code == 550
        assert "engineer mail without a ticket reference" in error.message
        record = await recorded(js, "rejected", msg)
        assert record.reason == "engineer mail without a ticket reference"
        assert record.ticket_id is None
        assert not any(
            r.message_id == msg["Message-ID"]
            for r in await stored(js, subjects.mail_record("ticket"), MailRecorded)
        )

    async def test_an_engineers_auto_reply_acts_on_nothing(self, intake, js):
        ticket_id = await intake.ticket()
        msg = engineer_mail(ticket_id, "Я в отпуске до 10 марта.", Auto_Submitted="auto-replied")
        assert "automatic" in await intake.send(msg)
        assert await updates(js, ticket_id) == []
        record = await recorded(js, "automatic", msg)
        assert "team member" in record.reason

    async def test_a_forged_team_sender_is_refused_when_the_relay_says_it_failed(self, intake, js):
        ticket_id = await intake.ticket()
        msg = engineer_mail(
            ticket_id,
            "#resolve",
            Authentication_Results="mx.opora.test; spf=fail smtp.mailfrom=evil.io; dmarc=fail",
        )
        response = await intake.send(msg)  # accepted and recorded: no bounce to a forger
        assert "rejected" in response
        assert await updates(js, ticket_id) == []
        record = await recorded(js, "rejected", msg)
        assert record.reason == "a team address failed sender authentication (dmarc=fail)"


class TestTrustedRelay:
    async def test_with_an_authserv_id_team_mail_needs_the_relays_pass(self, start_intake, js):
        async with start_intake(mail_authserv_id=AUTHSERV) as intake:
            ticket_id = await intake.ticket()
            forged = engineer_mail(
                ticket_id, "#resolve", Authentication_Results="elsewhere; dmarc=pass"
            )
            await intake.send(forged)
            assert await updates(js, ticket_id) == []
            assert "from mx.opora.test" in (await recorded(js, "rejected", forged)).reason
            genuine = engineer_mail(
                ticket_id,
                "#ack",
                Authentication_Results=f"{AUTHSERV}; dkim=pass header.d=opora.local",
            )
            await intake.send(genuine)
            assert [u.change for u in await updates(js, ticket_id)] == [TicketChange.ACKNOWLEDGED]
