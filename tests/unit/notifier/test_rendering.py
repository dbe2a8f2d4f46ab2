from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import format_datetime

import pytest

from opora_notifier import rendering
from opora_notifier.rendering import BUILD, WIRE, format_due, format_duration, one_line
from opora_shared.vocabulary import Language


class TestFormatting:
    def test_a_deadline_is_shown_in_the_contract_timezone_and_language(self):
        due = datetime(2026, 12, 31, 21, 30, tzinfo=UTC)
        assert format_due(due, "Europe/Moscow", Language.RU) == "01.01.2027 00:30"
        assert format_due(due, "UTC", Language.EN) == "31 Dec 2026 21:30"

    @pytest.mark.parametrize(
        ("span", "language", "expected"),
        [
            (timedelta(minutes=24), Language.RU, "24 мин"),
            (timedelta(hours=1, minutes=5), Language.EN, "1 h 5 min"),
            (timedelta(days=3, hours=2, minutes=59), Language.EN, "3 d 2 h"),
            (timedelta(seconds=20), Language.RU, "0 мин"),
            (timedelta(hours=-1), Language.EN, "0 min"),
        ],
    )
    def test_durations_read_as_people_say_them(self, span, language, expected):
        assert format_duration(span, language) == expected

    def test_one_line_collapses_whitespace_and_cuts_with_an_ellipsis(self):
        assert one_line("Принтер\n  не   печатает", 100) == "Принтер не печатает"
        assert one_line("a" * 10, 5) == "aaaa…"


def _mail(headers: list[tuple[str, object]], text: str, policy=default) -> EmailMessage:
    msg = EmailMessage(policy=policy)
    for name, value in headers:
        msg[name] = value
    msg.set_content(text, cte="8bit")
    msg.add_alternative(f"<p>{text}</p>", subtype="html", cte="8bit")
    msg.set_boundary("===opora-test===")  # else random: two builds would differ by it alone
    return msg


SUPPORT = Address(display_name="ООО Ромашка — поддержка", addr_spec="support@romashka.example")
REFERENCES = " ".join(f"<CA{n:04d}-long-message-id@mail.client.example>" for n in range(8))


class TestWirePolicy:
    @pytest.mark.parametrize(
        "headers",
        [
            [("Subject", "[#12] Заявка принята: не печатает принтер"), ("From", SUPPORT)],
            [("Subject", "[#12] Request received"), ("To", Address("Ivan Petrov", "iv@x.org"))],
            [("To", Address("Petrov, Ivan (IT)", "iv@x.org")), ("Reply-To", SUPPORT)],
            [("Subject", "A subject " + "that goes on " * 12), ("References", REFERENCES)],
            [("Subject", "x" * 76), ("X-Opora-Ticket", "12"), ("Auto-Submitted", "auto-replied")],
            [("Date", format_datetime(datetime(2026, 11, 27, 3, 0, tzinfo=UTC)))],
            [("Message-ID", "<opora.t12.abc@romashka.example>"), ("In-Reply-To", "<a@b>")],
            [("Subject", "Дедлайн   через 24 мин — «Сервер 1С» недоступен, срочно " * 2)],
        ],
    )
    def test_writes_the_same_mail_as_the_standard_smtp_policy(self, headers):
        mail = _mail(headers, "Здравствуйте!\n\nЗаявка принята.\n")
        _assert_same_mail(mail.as_bytes(policy=WIRE), mail.as_bytes(policy=SMTP))

    @pytest.mark.parametrize("rounds", [1, 2])  # the second builds from remembered headers
    def test_a_mail_built_with_it_is_the_same_mail(self, rounds):
        headers = [("Subject", "[#12] Заявка"), ("From", SUPPORT), ("Reply-To", SUPPORT)]
        expected = _mail(headers, "Текст\n").as_bytes(policy=SMTP)
        for _ in range(rounds):
            written = _mail(headers, "Текст\n", policy=BUILD).as_bytes(policy=WIRE)
            _assert_same_mail(written, expected)

    def test_a_parsed_mail_is_written_the_same_too(self):
        raw = _mail([("Subject", "Re: [#7] ok"), ("From", SUPPORT)], "ok\n").as_bytes(policy=SMTP)
        parsed = message_from_bytes(raw, policy=default)
        assert parsed.as_bytes(policy=WIRE) == parsed.as_bytes(policy=SMTP)

    @pytest.mark.parametrize(
        "subject",
        [
            "[#ROM-123] Заявка принята: не печатает принтер в бухгалтерии на втором этаже",
            "Ж" * 200,
            "Дедлайн через 24 мин — «Сервер 1С» недоступен 😱 " + "x" * 90,
            "[#7] café",
        ],
    )
    def test_a_subject_with_other_letters_is_encoded_words_that_read_back_the_same(self, subject):
        written = _mail([("Subject", subject)], "ok\n").as_bytes(policy=WIRE)
        head = written.split(b"\r\n\r\n", 1)[0]
        assert all(len(line) <= 78 for line in head.split(b"\r\n"))
        assert message_from_bytes(written, policy=default)["Subject"] == subject

    def test_only_headers_that_repeat_are_remembered(self):
        """A subject is new on every mail: remembering its parse tree only fed the garbage
        collector's full collections."""
        _mail([("From", SUPPORT)], "x\n", policy=BUILD)
        before = len(rendering._STORED)
        for n in range(50):
            _mail([("Subject", f"[#{n}] Заявка принята"), ("From", SUPPORT)], "x\n", policy=BUILD)
        assert len(rendering._STORED) == before


def _assert_same_mail(written: bytes, expected: bytes) -> None:
    """The same bytes but for the Subject's encoded words, and the same Subject once read."""
    read = message_from_bytes(written, policy=default)["Subject"]
    assert read == message_from_bytes(expected, policy=default)["Subject"]
    assert _without_subject(written) == _without_subject(expected)


def _without_subject(mail: bytes) -> list[bytes]:
    """The mail's lines without the Subject field (its first line and continuation lines)."""
    kept, in_subject = [], False
    for line in mail.split(b"\r\n"):
        if line.startswith(b"Subject:"):
            in_subject = True
            continue
        if in_subject and line.startswith((b" ", b"\t")):
            continue
        in_subject = False
        kept.append(line)
    return kept
