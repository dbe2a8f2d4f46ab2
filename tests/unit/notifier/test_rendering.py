from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address

from opora_notifier.channels.outbox import OutboxChannel
from opora_notifier.rendering import Acknowledgement, format_due, render_acknowledgement
from opora_shared.vocabulary import Language, Scope

SENDER = Address(display_name="Opora Support", addr_spec="support@opora.local")
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def ack(**overrides):
    fields = {
        "ticket_id": "1042",
        "language": Language.RU,
        "requester_email": "anna@romashka.ru",
        "requester_name": "Анна",
        "subject": "Принтер\n не печатает",
        "scope": Scope.INCLUDED,
        "first_response_due": datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        "timezone": "Europe/Moscow",
    }
    fields.update(overrides)
    return Acknowledgement(**fields)


def parse(msg):
    return message_from_bytes(msg.as_bytes(policy=policy.SMTP), policy=policy.default)


class TestAcknowledgement:
    def test_russian_ack_has_tag_deadline_in_moscow_time_and_robot_headers(self):
        mail = parse(
            render_acknowledgement(ack(), sender=SENDER, message_id="<x@opora.local>", now=NOW)
        )
        assert mail["Subject"] == "[#1042] Заявка принята: Принтер не печатает"
        assert mail["To"].addresses[0].addr_spec == "anna@romashka.ru"
        assert mail["Auto-Submitted"] == "auto-replied"
        assert mail["X-Auto-Response-Suppress"] == "All"
        assert mail["Message-ID"] == "<x@opora.local>"
        body = mail.get_content()
        assert "#1042" in body
        assert "26.11.2026 12:00 (Europe/Moscow)" in body
        assert "входит в ваш договор" in body

    def test_english_billable_ack(self):
        mail = parse(
            render_acknowledgement(
                ack(language=Language.EN, scope=Scope.BILLABLE, timezone="UTC"),
                sender=SENDER,
                message_id="<y@opora.local>",
                now=NOW,
            )
        )
        body = mail.get_content()
        assert mail["Subject"].startswith("[#1042] Request received")
        assert "billed separately" in body
        assert "26 Nov 2026 09:00" in body

    def test_without_deadline_it_says_so(self):
        mail = parse(
            render_acknowledgement(
                ack(first_response_due=None, scope=Scope.NEEDS_REVIEW),
                sender=SENDER,
                message_id="<z@opora.local>",
                now=NOW,
            )
        )
        assert "подтвердим вашу организацию" in mail.get_content()

    def test_format_due_uses_the_contract_timezone(self):
        due = datetime(2026, 12, 31, 21, 30, tzinfo=UTC)
        assert format_due(due, "Europe/Moscow", Language.RU) == "01.01.2027 00:30"


class TestOutbox:
    def test_writes_once_per_notification(self, tmp_path):
        outbox = OutboxChannel(tmp_path / "outbox")
        mail = render_acknowledgement(ack(), sender=SENDER, message_id="<x@opora.local>", now=NOW)
        assert outbox.send(mail, ticket_id="1042", notification_id="n1") is True
        assert outbox.send(mail, ticket_id="1042", notification_id="n1") is False
        files = list((tmp_path / "outbox").iterdir())
        assert [f.name for f in files] == ["1042-n1.eml"]
        assert b"[#1042]" in files[0].read_bytes()
