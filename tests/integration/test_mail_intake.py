"""Inbound mail over a real SMTP conversation into a real NATS: tickets, threads, guards."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest
from prometheus_client import CollectorRegistry

from opora_intake.app import create_app
from opora_intake.settings import IntakeSettings
from opora_shared import subjects
from opora_shared.events import (
    Actor,
    NotificationFailed,
    NotificationSent,
    TicketReceived,
    TicketUpdated,
    derive_id,
)
from opora_shared.events.intake import MailRecorded
from opora_shared.mail_ids import outbound_message_id
from opora_shared.nats.history import last_event, ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.nats.server import free_port
from opora_shared.testing.plugin import start_nats
from opora_shared.testing.stored import stored
from opora_shared.testing.waiting import wait_for
from opora_shared.vocabulary import TicketChange


@dataclass
class Intake:
    app: object
    settings: IntakeSettings

    @property
    def broker(self):
        return self.app.state.runtime.broker

    async def send(self, msg: EmailMessage, *, rcpt: str = "support@opora.local") -> str:
        """Deliver over SMTP; the server's answer to DATA."""
        errors, response = await aiosmtplib.send(
            msg,
            hostname="127.0.0.1",
            port=self.settings.smtp_port,
            recipients=[rcpt],
            sender=str(msg["From"] or "someone@example.com"),
            timeout=20,
        )
        assert errors == {}
        return response


@pytest.fixture
async def intake(nats_url, tmp_path) -> AsyncIterator[Intake]:
    settings = IntakeSettings(
        nats_url=nats_url,
        http_port=0,
        smtp_port=free_port(),
        var_dir=tmp_path,
        max_message_bytes=200_000,
        max_recipients=2,
        support_addresses=("support@opora.local", "help@opora.local", "it@opora.local"),
        auto_mail_cap_per_ticket=2,
        max_smtp_connections=3,
    )
    app = create_app(settings, registry=CollectorRegistry())
    async with app.router.lifespan_context(app):
        yield Intake(app, settings)


def mail(
    sender="anna@romashka.ru", subject="Принтер не печатает", body="Замяло бумагу.\n", **headers
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Анна <{sender}>"
    msg["To"] = "support@opora.local"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def ticket_of(response: str) -> str:
    assert "#" in response, response
    return response.split("#")[1].split()[0]


async def records(js, outcome: str) -> list[MailRecorded]:
    return await stored(js, subjects.mail_record(outcome), MailRecorded)


class TestNewTickets:
    async def test_a_mail_becomes_a_ticket_with_its_original_and_attachment(self, intake, js):
        msg = mail()
        msg.add_attachment(
            b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="акт.pdf"
        )
        response = await intake.send(msg)
        assert response.startswith("2.0.0 OK ticket #") or "OK ticket #" in response
        ticket_id = ticket_of(response)
        event = await last_event(js, TicketReceived, "romashka", ticket_id)
        assert event.channel == "email"
        assert event.requester.email == "anna@romashka.ru"
        assert event.subject == "Принтер не печатает"
        assert "Замяло бумагу" in event.body
        assert event.message_id == msg["Message-ID"]
        (attachment,) = event.attachments
        assert attachment.filename == "акт.pdf"
        store = intake.app.state.runtime.mail.attachments
        assert await store.get(attachment.object_name) == b"%PDF-1.4 fake"
        original = await store.get(event.original)
        assert b"Message-ID: " + msg["Message-ID"].encode() in original

    async def test_the_same_message_twice_makes_one_ticket(self, intake, js):
        msg = mail(sender="bob@vector-logistics.com", subject="VPN down", body="No VPN")
        first = ticket_of(await intake.send(msg))
        second = ticket_of(await intake.send(msg))
        assert first == second
        assert [e.type for e in await ticket_events(js, first)] == ["ticket.received"]
        assert any(r.message_id == msg["Message-ID"] for r in await records(js, "duplicate"))

    async def test_unknown_sender_still_gets_a_ticket(self, intake, js):
        ticket_id = ticket_of(await intake.send(mail(sender="who@gmail.com")))
        assert await last_event(js, TicketReceived, "unknown", ticket_id)


class TestSmtpRefusals:
    async def test_unknown_recipient_is_550_and_recorded(self, intake, js):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as err:
            await intake.send(mail(), rcpt="sales@opora.local")
        assert err.value.recipients[0].code == 550
        assert any("sales@opora.local" in r.reason for r in await records(js, "unknown_recipient"))

    async def test_too_many_recipients_is_452(self, intake):
        errors, _ = await aiosmtplib.send(
            mail(),
            hostname="127.0.0.1",
            port=intake.settings.smtp_port,
            timeout=20,
            recipients=["support@opora.local", "help@opora.local", "it@opora.local"],
        )
        assert errors["it@opora.local"][0] == 452

    async def test_oversize_is_552_and_recorded(self, intake, js):
        with pytest.raises(aiosmtplib.SMTPResponseException) as err:
            await intake.send(mail(sender="big@romashka.ru", body="x" * 300_000))
        assert err.value.code == 552
        found = await records(js, "oversize")
        assert any(r.reason == "over 200000 bytes" for r in found)

    async def test_connections_over_the_limit_get_421(self, intake):
        limit = intake.settings.max_smtp_connections
        clients = [
            aiosmtplib.SMTP(hostname="127.0.0.1", port=intake.settings.smtp_port, timeout=10)
            for _ in range(limit)
        ]
        try:
            for client in clients:
                await client.connect()
            extra = aiosmtplib.SMTP(
                hostname="127.0.0.1", port=intake.settings.smtp_port, timeout=10
            )
            with pytest.raises(aiosmtplib.SMTPConnectResponseError) as err:
                await extra.connect()
            assert err.value.code == 421
        finally:
            for client in clients:
                client.close()


class TestThreading:
    async def test_reply_to_our_acknowledgement_is_a_client_reply(self, intake, js):
        ticket_id = ticket_of(await intake.send(mail(subject="Не работает 1С")))
        ack_id = outbound_message_id(ticket_id, str(uuid.uuid4()), "opora.local")
        reply = mail(
            subject=f"Re: [#{ticket_id}] Заявка принята: Не работает 1С",
            body="Уже заработало, спасибо\n\n> Ваша заявка зарегистрирована\n",
            In_Reply_To=ack_id,
            References=ack_id,
        )
        response = await intake.send(reply)
        assert f"recorded on ticket #{ticket_id}" in response
        update = await last_event(js, TicketUpdated, "romashka", ticket_id)
        assert update.change is TicketChange.CLIENT_REPLIED
        assert update.text.startswith("Уже заработало")
        assert "Ваша заявка" not in update.text
        assert update.message_id == reply["Message-ID"]

    async def test_a_hand_typed_tag_threads_only_within_the_tenant(self, intake, js):
        ticket_id = ticket_of(await intake.send(mail(subject="Outlook не открывается")))
        colleague = await intake.send(
            mail(sender="olga@romashka.ru", subject=f"по заявке #{ticket_id}", body="У меня тоже")
        )
        assert f"recorded on ticket #{ticket_id}" in colleague
        stranger = await intake.send(
            mail(sender="eve@vector-logistics.com", subject=f"[#{ticket_id}] hi", body="Peek")
        )
        assert ticket_of(stranger) != ticket_id
        types = [e.type for e in await ticket_events(js, ticket_id)]
        assert types == ["ticket.received", "ticket.updated"]

    async def test_a_reply_to_a_resolved_ticket_reopens_it(self, intake, js):
        ticket_id = ticket_of(await intake.send(mail(subject="Сканер")))
        resolved = TicketUpdated(
            event_id=uuid.uuid4(),
            occurred_at=intake.app.state.runtime.clock(),
            tenant="romashka",
            ticket_id=ticket_id,
            change=TicketChange.RESOLVED,
            actor=Actor(kind="engineer", id="maria@opora.local"),
        )
        await publish_event(intake.broker, resolved)
        response = await intake.send(mail(subject=f"Re: [#{ticket_id}] Сканер", body="Снова нет"))
        assert f"#{ticket_id}" in response
        changes = [
            e.change for e in await ticket_events(js, ticket_id) if isinstance(e, TicketUpdated)
        ]
        assert changes == [
            TicketChange.RESOLVED,
            TicketChange.REOPENED,
            TicketChange.CLIENT_REPLIED,
        ]


class TestAutomaticMail:
    async def test_auto_reply_to_no_ticket_makes_no_ticket(self, intake, js):
        msg = mail(
            subject="Автоответ: в отпуске",
            body="Я в отпуске до понедельника",
            Auto_Submitted="auto-replied",
        )
        response = await intake.send(msg)
        assert "automatic" in response
        assert any(r.message_id == msg["Message-ID"] for r in await records(js, "automatic"))

    async def test_auto_reply_to_a_ticket_is_recorded_and_capped(self, intake, js):
        ticket_id = ticket_of(await intake.send(mail(subject="Телефон не звонит")))
        outcomes = []
        for i in range(4):
            response = await intake.send(
                mail(
                    subject=f"Out of office [#{ticket_id}] {i}",
                    body="I am away",
                    Auto_Submitted="auto-replied",
                )
            )
            outcomes.append(response)
        assert sum(f"recorded on ticket #{ticket_id}" in r for r in outcomes) == 4
        changes = [
            e.change for e in await ticket_events(js, ticket_id) if isinstance(e, TicketUpdated)
        ]
        assert changes == [TicketChange.AUTOMATIC_REPLY] * 2  # the cap is 2 a day
        assert len([r for r in await records(js, "loop") if r.ticket_id == ticket_id]) == 2

    async def test_our_own_mail_coming_back_is_dropped(self, intake, js):
        msg = mail(sender="support@opora.local", subject="[#1] Заявка принята")
        assert "loop" in await intake.send(msg)

    async def test_a_bounce_of_our_notification_is_a_notification_failed(self, intake, js):
        ticket_id = ticket_of(await intake.send(mail(sender="gone@romashka.ru")))
        notification_id = str(uuid.uuid4())
        ours = outbound_message_id(ticket_id, notification_id, "opora.local")
        await publish_event(
            intake.broker,
            NotificationSent(
                event_id=derive_id(notification_id),
                occurred_at=intake.app.state.runtime.clock(),
                tenant="romashka",
                ticket_id=ticket_id,
                notification_id=notification_id,
                trigger="acknowledgement",
                channel="outbox",
                recipient="gone@romashka.ru",
                message_id=ours,
            ),
        )
        bounce = EmailMessage()
        bounce["From"] = "MAILER-DAEMON@mx.romashka.ru"
        bounce["To"] = "support@opora.local"
        bounce["Subject"] = "Undelivered Mail Returned to Sender"
        bounce["Message-ID"] = make_msgid(domain="mx.romashka.ru")
        bounce["Auto-Submitted"] = "auto-replied"
        bounce.set_content("This is the mail system. The mail could not be delivered.\n")
        original = EmailMessage()
        original["From"] = "support@opora.local"
        original["To"] = "gone@romashka.ru"
        original["Subject"] = f"[#{ticket_id}] Заявка принята"
        original["Message-ID"] = ours
        original.set_content("...")
        bounce.add_attachment(original)
        bounce.replace_header(
            "Content-Type",
            bounce["Content-Type"].replace(
                "multipart/mixed", "multipart/report; report-type=delivery-status"
            ),
        )
        response = await intake.send(bounce)
        assert f"recorded on ticket #{ticket_id}" in response
        failed = await last_event(js, NotificationFailed, "romashka", ticket_id)
        assert failed.notification_id == notification_id
        assert failed.recipient == "gone@romashka.ru"


class TestNatsDown:
    async def test_mail_is_refused_with_451_when_nats_cannot_store_it(self, tmp_path):
        server = start_nats(tmp_path / "store")
        try:
            nc_url = server.url
            import nats

            from opora_shared.nats.streams import provision

            nc = await nats.connect(nc_url)
            await provision(nc.jetstream())
            await nc.close()
            settings = IntakeSettings(
                nats_url=nc_url, http_port=0, smtp_port=free_port(), var_dir=tmp_path
            )
            app = create_app(settings, registry=CollectorRegistry())
            async with app.router.lifespan_context(app):
                server.kill()
                with pytest.raises(aiosmtplib.SMTPResponseException) as err:
                    await asyncio.wait_for(
                        aiosmtplib.send(
                            mail(),
                            hostname="127.0.0.1",
                            port=settings.smtp_port,
                            recipients=["support@opora.local"],
                            timeout=30,
                        ),
                        timeout=40,
                    )
                assert err.value.code == 451
        finally:
            server.stop()


class TestImapChannel:
    async def test_mail_in_a_watched_mailbox_becomes_a_ticket_and_is_moved(
        self, nats_url, tmp_path, dovecot, js, monkeypatch
    ):
        mailboxes = tmp_path / "mailboxes.yml"
        mailboxes.write_text(
            f"- host: {dovecot.host}\n  port: {dovecot.port}\n  ssl: false\n"
            f"  username: {dovecot.user}\n  password_env: OPORA_TEST_IMAP_PASSWORD\n"
            "  poll_interval_s: 60\n",
            encoding="utf-8",
        )
        monkeypatch.setenv("OPORA_TEST_IMAP_PASSWORD", dovecot.password)
        settings = IntakeSettings(
            nats_url=nats_url,
            http_port=0,
            smtp_port=0,
            var_dir=tmp_path,
            imap_mailboxes_file=mailboxes,
        )
        app = create_app(settings, registry=CollectorRegistry())
        msg = mail(sender="bob@vector-logistics.com", subject="Scanner offline", body="Help")
        async with app.router.lifespan_context(app):
            await asyncio.to_thread(dovecot.append, bytes(msg))

            async def moved():
                return await asyncio.to_thread(dovecot.uids, "Opora/Processed")

            await wait_for(moved, timeout=15, message="mail moved to processed")
        assert await asyncio.to_thread(dovecot.uids, "INBOX") == []
        record = next(r for r in await records(js, "ticket") if r.message_id == msg["Message-ID"])
        event = await last_event(js, TicketReceived, "vector", record.ticket_id)
        assert event.subject == "Scanner offline"

    def test_mailboxes_file_errors_name_the_entry_and_field(self, tmp_path):
        from opora_intake.imap_channel import load_mailboxes
        from opora_shared.errors import ConfigError

        path = tmp_path / "m.yml"
        path.write_text("- host: x\n  port: nope\n  username: u\n  password: p\n")
        with pytest.raises(ConfigError, match=r"entry 0: port"):
            load_mailboxes(path)
        path.write_text("- host: x\n  port: 1\n  username: u\n  password_env: OPORA_NOPE_X\n")
        with pytest.raises(ConfigError, match="OPORA_NOPE_X"):
            load_mailboxes(path)
