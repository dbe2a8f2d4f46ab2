"""The notifier's channels against real servers: aiosmtpd (with STARTTLS and AUTH) and a
local HTTP server standing in for Telegram, Slack/Mattermost and webhook receivers, with
failures injected. How each failure is classified decides retries and doubt."""

import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from email.headerregistry import Address

import httpx
import pytest

from opora_notifier import signing
from opora_notifier.channels import DeliveryError, Outgoing
from opora_notifier.channels.slack import SlackChannel
from opora_notifier.channels.smtp import SmtpChannel
from opora_notifier.channels.telegram import TelegramChannel
from opora_notifier.channels.webhook import WebhookChannel
from opora_notifier.notices import Audience, Medium, Notice, Recipient, Trigger
from opora_notifier.rendering import Renderer, build_email
from opora_notifier.testing import FakeReceiver, FakeRelay, free_port
from opora_shared.vocabulary import Language

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
SENDER = Address(display_name="Opora Support", addr_spec="support@opora.local")
CONTEXT = {
    "ticket": {
        "id": "1042",
        "tenant": "romashka",
        "tenant_name": "ООО «Ромашка»",
        "subject": "Весь офис без интернета",
        "summary": "Срочно",
        "requester_name": "Анна",
        "requester_email": "anna@romashka.ru",
        "category": "network",
        "scope": "included",
        "priority": "P1",
        "reasons": ["whole office down → P1"],
        "basis": None,
        "assignee": None,
        "status_url": "https://support.example.com/status/x",
        "open_url": "https://support.example.com/t/1042",
    },
    "deadline": {
        "first_response": "26.11.2026 10:15 (Europe/Moscow)",
        "resolution": None,
        "timezone": "Europe/Moscow",
    },
}


def outgoing(medium=Medium.EMAIL, address="anna@romashka.ru", trigger=Trigger.PAGE, cte="8bit"):
    audience = Audience.CLIENT if trigger is Trigger.ACKNOWLEDGEMENT else Audience.TEAM
    notice = Notice(
        trigger=trigger,
        tenant="romashka",
        ticket_id="1042",
        recipient=Recipient(medium, address, audience, Language.RU),
        context=CONTEXT | {"known_sender": True, "approver_asked": False},
        occurred_at=NOW,
        urgent=True,
    )
    rendered = Renderer().render(notice)
    if medium is not Medium.EMAIL:
        return Outgoing(notice, notice.notification_id, rendered)
    message_id = f"<opora.1042.{uuid.uuid4()}@opora.local>"
    mail = build_email(notice, rendered, sender=SENDER, message_id=message_id, now=NOW, cte=cte)
    return Outgoing(notice, notice.notification_id, rendered, message_id, mail)


class Commits:
    """Counts commit() calls, like the dispatcher's ledger write."""

    def __init__(self):
        self.calls = 0

    async def __call__(self):
        self.calls += 1


@pytest.fixture
def relay():
    server = FakeRelay(hang_s=2.0).start()
    yield server
    server.stop()


@pytest.fixture
async def receiver():
    server = await FakeReceiver(hang_s=2.0).start()
    yield server
    await server.stop()


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=0.5) as client:
        yield client


def smtp(port, **overrides):
    fields = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "envelope_from": "support@opora.local",
        "timeout_s": 0.5,
    }
    fields.update(overrides)
    return SmtpChannel(**fields)


class TestSmtp:
    async def test_delivers_multipart_mail_from_the_support_address(self, relay):
        out = outgoing(cte="quoted-printable")
        commit = Commits()
        assert await smtp(relay.port).send(out, commit) == out.message_id
        assert commit.calls == 1
        (mail,) = relay.to("anna@romashka.ru")
        assert relay.envelopes[0][0] == "support@opora.local"
        assert mail["Message-ID"] == out.message_id
        assert "[#1042]" in mail["Subject"]
        assert mail.get_content_type() == "multipart/alternative"
        assert "без интернета" in mail.get_body(("plain",)).get_content()

    async def test_451_is_temporary_and_surely_undelivered(self, relay):
        relay.fail_next("451")
        with pytest.raises(DeliveryError) as failure:
            await smtp(relay.port).send(outgoing(), Commits())
        assert failure.value.temporary
        assert failure.value.undelivered
        assert failure.value.reason.startswith("SMTP 451")
        assert relay.received == []

    async def test_550_is_final(self, relay):
        relay.fail_next("550")
        with pytest.raises(DeliveryError) as failure:
            await smtp(relay.port).send(outgoing(), Commits())
        assert not failure.value.temporary

    async def test_no_answer_after_data_leaves_it_in_doubt(self, relay):
        relay.fail_next("swallow")
        commit = Commits()
        with pytest.raises(DeliveryError) as failure:
            await smtp(relay.port).send(outgoing(), commit)
        assert commit.calls == 1
        assert failure.value.temporary
        assert not failure.value.undelivered  # the relay may have it: it does
        assert len(relay.received) == 1

    async def test_a_relay_that_is_not_there_is_temporary_and_nothing_was_committed(self):
        commit = Commits()
        with pytest.raises(DeliveryError) as failure:
            await smtp(free_port()).send(outgoing(), commit)
        assert failure.value.temporary
        assert failure.value.undelivered
        assert commit.calls == 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl (Debian package openssl) not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


class TestSmtpTlsAndAuth:
    async def test_starttls_then_auth_with_a_private_ca(self, certificate):
        cert, key = certificate
        relay = FakeRelay(tls=(cert, key), credentials=("opora", "s3cret")).start()
        try:
            channel = smtp(
                relay.port,
                security="starttls",
                username="opora",
                password="s3cret",
                ca_file=str(cert),
                timeout_s=5.0,
            )
            await channel.send(outgoing(), Commits())
            assert len(relay.received) == 1
            wrong = smtp(
                relay.port,
                security="starttls",
                username="opora",
                password="wrong",
                ca_file=str(cert),
                timeout_s=5.0,
            )
            with pytest.raises(DeliveryError) as failure:
                await wrong.send(outgoing(), Commits())
            assert failure.value.reason.startswith("SMTP 535")
            assert not failure.value.temporary
        finally:
            relay.stop()

    async def test_an_untrusted_certificate_is_refused(self, certificate):
        cert, key = certificate
        relay = FakeRelay(tls=(cert, key)).start()
        try:
            with pytest.raises(DeliveryError) as failure:
                await smtp(relay.port, security="starttls", timeout_s=5.0).send(
                    outgoing(), Commits()
                )
            assert failure.value.undelivered
            assert relay.received == []
        finally:
            relay.stop()


class TestHttpChannels:
    async def test_telegram_send_message_with_its_keyboard(self, receiver, http):
        channel = TelegramChannel(http, api_url=receiver.url, token="123:SECRET")
        remote_id = await channel.send(outgoing(Medium.TELEGRAM, "-100777"), Commits())
        assert remote_id == "1"
        (request,) = receiver.to("/bot123:SECRET/sendMessage")
        body = request.json()
        assert body["chat_id"] == "-100777"
        assert body["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "opora:ack:1042"

    @pytest.mark.parametrize(
        ("action", "temporary"), [("500", True), ("503", True), ("400", False)]
    )
    async def test_status_codes(self, receiver, http, action, temporary):
        receiver.fail_next(action)
        channel = TelegramChannel(http, api_url=receiver.url, token="123:SECRET")
        with pytest.raises(DeliveryError) as failure:
            await channel.send(outgoing(Medium.TELEGRAM, "1"), Commits())
        assert failure.value.temporary is temporary
        assert failure.value.undelivered
        assert "SECRET" not in failure.value.reason
        assert f"HTTP {action}: scripted {action}" in failure.value.reason

    async def test_429_carries_the_receivers_retry_after(self, receiver, http):
        receiver.fail_next("429")
        channel = SlackChannel(http, webhook_url=f"{receiver.url}/hooks/T/B/secret")
        with pytest.raises(DeliveryError) as failure:
            await channel.send(outgoing(Medium.SLACK, "#noc"), Commits())
        assert failure.value.temporary
        assert failure.value.retry_after == 0.0
        assert "secret" not in failure.value.reason

    @pytest.mark.parametrize("action", ["reset", "hang"])
    async def test_a_reset_or_a_timeout_leaves_it_in_doubt(self, receiver, http, action):
        receiver.fail_next(action)
        commit = Commits()
        channel = SlackChannel(http, webhook_url=f"{receiver.url}/hooks/x")
        with pytest.raises(DeliveryError) as failure:
            await channel.send(outgoing(Medium.SLACK, "#noc"), commit)
        assert commit.calls == 1
        assert failure.value.temporary
        assert not failure.value.undelivered
        assert receiver.accepted == []

    async def test_the_webhook_is_signed_and_a_receiver_can_verify_it(self, receiver, http):
        secret = b"integrator-secret-0123456789"
        channel = WebhookChannel(
            http, url=f"{receiver.url}/opora", secret=secret, clock=lambda: NOW
        )
        out = outgoing(Medium.WEBHOOK, "default")
        await channel.send(out, Commits())
        (request,) = receiver.accepted
        assert request.headers["x-opora-delivery"] == out.notification_id
        assert request.headers["x-opora-event"] == "page"
        assert signing.verify(
            secret,
            timestamp=request.headers["x-opora-timestamp"],
            body=request.body,
            header=request.headers["x-opora-signature"],
            now=NOW.timestamp() + 10,
        )
        assert not signing.verify(
            secret,
            timestamp=request.headers["x-opora-timestamp"],
            body=request.body.replace(b"1042", b"1043"),
            header=request.headers["x-opora-signature"],
            now=NOW.timestamp() + 10,
        )
        assert request.json()["ticket"]["id"] == "1042"
