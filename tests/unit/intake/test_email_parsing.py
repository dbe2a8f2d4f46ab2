"""The email normaliser, rule by rule, on mails written for these tests (tests/fixtures/mail)."""

import base64
import json
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opora_intake.parsing import ParsedEmail, parse_email, strip_subject_prefixes, to_json
from opora_intake.parsing.email import content_type_of, sanitize_filename
from opora_intake.parsing.html import html_to_text
from opora_intake.parsing.quotes import MAX_SCAN_CHARS, strip_quotes
from opora_intake.parsing.ticket_ref import is_forward, ticket_ref

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mail"
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 60
ODT = "application/vnd.oasis.opendocument.text"
ODT_BYTES = b"PK\x03\x04" + b"\x00" * 26 + b"mimetype" + ODT.encode()


def fixture(name: str) -> ParsedEmail:
    return parse_email((FIXTURES / name).read_bytes())


def mail(headers: str, body: bytes | str = b"Hello.\n") -> ParsedEmail:
    """A mail from header lines (LF) and a body."""
    data = body.encode() if isinstance(body, str) else body
    return parse_email(headers.strip("\n").encode("utf-8", "surrogateescape") + b"\n\n" + data)


def b_word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


class TestHeaderDecoding:
    def test_decodes_windows_1251_subject_split_over_two_encoded_words(self):
        parsed = fixture("ru-cp1251-outlook-reply.eml")
        assert parsed.subject == "RE: [#1042] Заявка принята: Принтер не печатает"

    def test_decodes_koi8r_b_name_and_q_subject(self):
        parsed = fixture("ru-koi8r-iphone.eml")
        assert parsed.from_name == "Иван Сидоров"
        assert parsed.subject == "Не работает почта"

    def test_decodes_raw_8bit_windows_1251_headers_and_notes_it(self):
        parsed = fixture("ru-undeclared-8bit.eml")
        assert parsed.subject == "Сканер не сканирует в папку"
        assert parsed.from_name == "Ольга Иванова"
        assert "subject: raw 8-bit bytes, decoded as windows-1251" in parsed.charset_problems

    def test_raw_8bit_utf8_header_needs_no_note(self):
        parsed = mail("From: a@b.ru\nSubject: Принтер сломался")
        assert parsed.subject == "Принтер сломался"
        assert parsed.charset_problems == ()

    @pytest.mark.parametrize(
        "label", ["win-1251", "cp-1251", "x-cp1251", "windows1251", "WINDOWS-1251", "cp1251"]
    )
    def test_maps_windows_1251_aliases(self, label):
        raw = base64.b64encode("Счёт".encode("cp1251")).decode()
        assert mail(f"Subject: =?{label}?B?{raw}?=").subject == "Счёт"

    @pytest.mark.parametrize("label", ["koi8r", "KOI8-R", "koi-8-r", "x-koi8-r"])
    def test_maps_koi8r_aliases(self, label):
        raw = base64.b64encode("Счёт".encode("koi8-r")).decode()
        assert mail(f"Subject: =?{label}?B?{raw}?=").subject == "Счёт"

    def test_joins_utf8_character_split_across_encoded_words(self):
        data = "Привет".encode()
        first, second = base64.b64encode(data[:3]).decode(), base64.b64encode(data[3:]).decode()
        parsed = mail(f"Subject: =?utf-8?B?{first}?=\n =?utf-8?B?{second}?=")
        assert parsed.subject == "Привет"

    def test_keeps_plain_text_between_encoded_words(self):
        parsed = mail(f"Subject: Re: {b_word('Принтер', 'utf-8')} [#7] ok")
        assert parsed.subject == "Re: Принтер [#7] ok"

    def test_unknown_encoded_word_charset_is_detected_and_noted(self):
        parsed = fixture("unknown-charset-parts.eml")
        assert parsed.subject == "Ошибка 1С"
        assert any(
            note.startswith("subject: charset 'x-unknown'") for note in parsed.charset_problems
        )

    def test_broken_base64_encoded_word_keeps_the_rest_of_the_subject(self):
        parsed = mail("Subject: =?utf-8?B?0J/RgNC4?= =?utf-8?B?####?= tail")
        assert parsed.subject.startswith("При")
        assert parsed.subject.endswith("tail")

    def test_folds_whitespace_and_drops_control_characters_in_subject(self):
        parsed = mail("Subject: a\tb \x01 c\n   d")
        assert parsed.subject == "a b c d"

    def test_addresses_are_lower_case_addr_specs_with_decoded_names(self):
        parsed = fixture("ru-cp1251-outlook-reply.eml")
        assert parsed.from_address == "anna@romashka.ru"
        assert parsed.from_name == "Анна Петрова"
        assert parsed.to == ("support@opora.local",)
        assert parsed.cc == ("director@romashka.ru", "buh@romashka.ru")

    def test_encoded_display_name_with_a_comma_stays_one_address(self):
        parsed = mail(f"From: {b_word('Иванов, Иван', 'utf-8')} <Ivan@Example.RU>")
        assert parsed.from_name == "Иванов, Иван"
        assert parsed.from_address == "ivan@example.ru"

    def test_reply_to_and_sender_fallback(self):
        parsed = mail("Sender: robot@example.com\nReply-To: Help <Help@Example.com>")
        assert parsed.from_address == "robot@example.com"
        assert parsed.reply_to == "help@example.com"

    def test_message_ids_are_normalised(self):
        parsed = fixture("ru-cp1251-outlook-reply.eml")
        assert parsed.message_id == "<000101d8$aa$bb@romashka.ru>"
        assert parsed.in_reply_to == "<ack-1042@opora.local>"
        assert parsed.references == ("<ticket-1042@opora.local>", "<ack-1042@opora.local>")

    def test_message_id_without_brackets_gets_them(self):
        assert mail("Message-ID: abc@example.com").message_id == "<abc@example.com>"

    def test_date_is_aware(self):
        parsed = fixture("ru-cp1251-outlook-reply.eml")
        assert parsed.date == datetime(2024, 4, 12, 8, 2, 33, tzinfo=UTC)
        assert parsed.date is not None
        assert parsed.date.utcoffset() == timedelta(hours=3)

    def test_date_without_zone_is_utc_and_invalid_date_is_none(self):
        assert mail("Date: Fri, 12 Apr 2024 10:00:00 -0000").date == datetime(
            2024, 4, 12, 10, 0, tzinfo=UTC
        )
        assert mail("Date: Tue, 31 Apr 2024 27:39:33 +0000").date is None


class TestBodyCharsets:
    def test_windows_1251_quoted_printable_body(self):
        parsed = fixture("ru-cp1251-outlook-reply.eml")
        assert "Принтер в бухгалтерии снова не печатает" in parsed.full_text
        assert "«Замятие бумаги»" in parsed.full_text
        assert parsed.charset_problems == ()

    def test_koi8r_8bit_body(self):
        assert "Не работает почта на телефоне" in fixture("ru-koi8r-iphone.eml").text

    def test_body_declared_koi8r_but_written_in_windows_1251(self):
        parsed = fixture("ru-mislabeled-koi8r-is-cp1251.eml")
        assert parsed.text.startswith("Добрый день! Не открывается 1С")
        assert parsed.charset_problems == (
            "part 1: declared charset 'koi8-r' but the text reads as windows-1251",
        )

    def test_body_declared_windows_1251_but_written_in_utf8(self):
        parsed = fixture("ru-mislabeled-cp1251-is-utf8.eml")
        assert parsed.text.startswith("Привет! Нужна новая учётная запись")
        assert parsed.subject == "Новый сотрудник"
        assert "part 1: declared charset 'windows-1251' but the text is utf-8" in (
            parsed.charset_problems
        )

    def test_undeclared_8bit_body_is_detected(self):
        parsed = fixture("ru-undeclared-8bit.eml")
        assert parsed.text.startswith("Сканер на втором этаже")
        assert "part 1: undeclared 8-bit text, decoded as windows-1251" in parsed.charset_problems

    def test_undeclared_koi8r_body_is_detected(self):
        parsed = mail(
            "From: a@b.ru", "Здравствуйте! Не печатает принтер в кабинете.\n".encode("koi8-r")
        )
        assert parsed.text == "Здравствуйте! Не печатает принтер в кабинете."

    def test_latin1_label_on_windows_1251_text_is_corrected(self):
        body = "Добрый день, коллеги! Сервер недоступен с утра, проверьте пожалуйста.\n"
        parsed = mail("Content-Type: text/plain; charset=iso-8859-1", body.encode("cp1251"))
        assert parsed.text == body.strip()
        assert parsed.charset_problems == (
            "part 1: declared charset 'windows-1252' but the text reads as windows-1251",
        )

    def test_iso_8859_1_label_reads_windows_1252_quotes(self):
        parsed = mail("Content-Type: text/plain; charset=iso-8859-1", b"\x93Hello\x94 caf\xe9")
        assert parsed.text == "“Hello” café"

    def test_unknown_charset_part_is_decoded_and_kept_as_attachment(self):
        parsed = fixture("unknown-charset-parts.eml")
        assert parsed.text.startswith("Ошибка при проведении документа в 1С")
        assert (
            "part 2: declared charset 'x-unknown' unknown, decoded as windows-1251, "
            "kept as attachment"
        ) in parsed.charset_problems
        kept = {item.filename: item for item in parsed.attachments}
        assert kept["part-2.txt"].data.decode("cp1251").startswith("Ошибка при проведении")

    def test_broken_utf8_part_keeps_what_decodes_and_the_raw_bytes(self):
        parsed = fixture("unknown-charset-parts.eml")
        assert "Журнал: " in parsed.full_text
        assert any(note.startswith("part 3: invalid bytes") for note in parsed.charset_problems)
        kept = {item.filename: item for item in parsed.attachments}
        assert b"\xff\xfe\x00garbage \xc3(" in kept["part-3.txt"].data

    def test_utf16_body_is_decoded(self):
        body = "Привет".encode("utf-16")
        parsed = mail("Content-Type: text/plain; charset=utf-16", body)
        assert parsed.text == "Привет"

    def test_html_meta_charset_is_used_when_the_header_has_none(self):
        html = '<html><head><meta charset="windows-1251"></head><p>Доступ к папке</p></html>'
        parsed = mail("Content-Type: text/html", html.encode("cp1251"))
        assert parsed.text == "Доступ к папке"


class TestBodySelection:
    def test_alternative_prefers_real_plain_text(self):
        parsed = fixture("ru-gmail-reply-alternative.eml")
        assert parsed.from_html is False
        assert parsed.text == "Проблема осталась: VPN подключается, но 1С не видит сервер."

    def test_alternative_uses_html_when_plain_is_a_placeholder(self):
        parsed = fixture("en-alternative-placeholder.eml")
        assert parsed.from_html is True
        assert parsed.text == "Please order a new laptop for Frank, who starts on Monday."

    def test_alternative_uses_html_when_plain_is_empty(self):
        parsed = fixture("ru-outlook-html-inline-image.eml")
        assert parsed.from_html is True
        assert parsed.text == "Вот скриншот ошибки:\n\nМария"

    def test_html_only_mail_becomes_clean_text(self):
        parsed = fixture("en-html-only.eml")
        assert parsed.from_html is True
        assert parsed.text == (
            "Hello team,\n\nAfter the update the following stopped working:\n\n"
            "- Outlook & Teams\n- the VPN client\n\nError code: <0x80070005>\nRegards,\nDave"
        )
        assert "never shown" not in parsed.full_text
        assert "ignored title" not in parsed.full_text
        assert "> Please install the update." in parsed.full_text

    def test_format_flowed_lines_are_joined(self):
        parsed = fixture("en-format-flowed.eml")
        assert parsed.text.split("\n\n")[0] == (
            "The nightly backup job on FS01 reported a warning again: the target disk is "
            "almost full and the job skipped the archive folder."
        )

    def test_mixed_inline_text_parts_are_joined_in_order(self):
        parsed = mail(
            'Content-Type: multipart/mixed; boundary="m"',
            "--m\nContent-Type: text/plain\n\nFirst part.\n"
            "--m\nContent-Type: image/png\nContent-Disposition: inline\n\nxx\n"
            "--m\nContent-Type: text/plain\n\nSecond part.\n--m--\n",
        )
        assert parsed.full_text == "First part.\n\nSecond part."
        assert [item.content_type for item in parsed.attachments] == ["application/octet-stream"]

    def test_text_attachment_is_not_body(self):
        parsed = mail(
            'Content-Type: multipart/mixed; boundary="m"',
            "--m\nContent-Type: text/plain\n\nSee log.\n"
            '--m\nContent-Type: text/plain; name="log.txt"\n'
            'Content-Disposition: attachment; filename="log.txt"\n\nERROR 42\n--m--\n',
        )
        assert parsed.full_text == "See log."
        assert parsed.attachments[0].filename == "log.txt"
        assert parsed.attachments[0].data == b"ERROR 42"


class TestHtmlToText:
    def test_paragraphs_line_breaks_and_entities(self):
        assert (
            html_to_text("<p>A&nbsp;&amp;&nbsp;B</p><p>C<br>D &lt;x&gt;</p>") == "A & B\n\nC\nD <x>"
        )

    def test_lists_become_dash_lines(self):
        assert html_to_text("<ul><li>one</li><li>two<ol><li>sub</li></ol></li></ul>") == (
            "- one\n- two\n  - sub"
        )

    def test_script_style_and_head_are_dropped(self):
        html = "<head><title>T</title><style>p{}</style></head><script>x()</script><p>Body</p>"
        assert html_to_text(html) == "Body"

    def test_blockquote_becomes_quote_lines(self):
        assert html_to_text(
            "<p>New</p><blockquote><p>Old</p><blockquote>Older</blockquote></blockquote>"
        ) == ("New\n\n> Old\n>\n> > Older")

    def test_pre_keeps_spacing(self):
        assert html_to_text("<pre>a   b\n  c</pre>") == "a   b\n  c"

    def test_link_target_is_kept_when_the_text_differs(self):
        assert (
            html_to_text('<a href="https://x.ru/reset">Reset</a>') == "Reset (https://x.ru/reset)"
        )
        assert html_to_text('<a href="https://x.ru">https://x.ru</a>') == "https://x.ru"

    def test_broken_markup_keeps_text(self):
        assert html_to_text("<div><p>unclosed <b>bold <i>x</div></p>") == "unclosed bold x"

    def test_table_cells_and_rows(self):
        assert html_to_text("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>") == (
            "a b\nc"
        )


class TestQuoteStripping:
    def test_strips_russian_outlook_header_block(self):
        parsed = fixture("ru-cp1251-outlook-reply.eml")
        assert parsed.text == (
            "Добрый день!\n\nПринтер в бухгалтерии снова не печатает, на экране ошибка "
            "«Замятие бумаги».\nБумагу вынули, не помогло.\n\nС уважением,\nАнна Петрова\n"
            "ООО «Ромашка»"
        )
        assert "Исходное сообщение" in parsed.full_text

    def test_strips_russian_outlook_html_block_with_bold_labels(self):
        parsed = fixture("ru-outlook-html-inline-image.eml")
        assert "Отправлено:" not in parsed.text
        assert "Отправлено: 12 апреля 2024" in parsed.full_text

    def test_strips_english_original_message_and_signature(self):
        parsed = fixture("en-outlook-original-message.eml")
        assert parsed.text == (
            "Hi team,\n\nThe warehouse printer is still offline after the restart.\n"
            "Please send someone today."
        )

    def test_strips_gmail_attribution_wrapped_over_two_lines_and_iphone_footer(self):
        assert fixture("en-gmail-wrote-iphone.eml").text == "Thanks, it works now."

    def test_strips_russian_gmail_attribution_and_quotes(self):
        parsed = fixture("ru-gmail-reply-alternative.eml")
        assert "Попробуйте" not in parsed.text
        assert "Попробуйте переподключить VPN" in parsed.full_text

    def test_strips_otpravleno_s_iphone_footer(self):
        parsed = fixture("ru-koi8r-iphone.eml")
        assert parsed.text.endswith("Пароль не меняли.")
        assert "Отправлено с iPhone" in parsed.full_text

    def test_keeps_forwarded_content(self):
        parsed = fixture("ru-forward-phishing.eml")
        assert "Ваш аккаунт заблокирован" in parsed.text
        assert parsed.text.startswith("Посмотрите, пожалуйста")

    def test_strips_quotes_but_keeps_interleaved_answers(self):
        text = "> Is the printer on?\nYes, it is.\n\n> Any error?\nPaper jam.\n"
        assert strip_quotes(text) == "Yes, it is.\n\nPaper jam."

    @pytest.mark.parametrize(
        "attribution",
        [
            "12.04.2024 15:30, Иван Иванов пишет:",
            "Пятница, 12 апреля 2024, 15:30 +03:00 от Иван <ivan@mail.ru>:",
            '12.04.2024, 15:30, "Иван" <ivan@yandex.ru>:',
            "12 апр. 2024 г., в 15:30, Иван <ivan@icloud.com> написал(а):",
            "On Fri, 12 Apr 2024 at 15:30, Ivan <ivan@example.com> wrote:",
            "Am 12.04.2024 um 15:30 schrieb Ivan <ivan@example.de>:",
        ],
    )
    def test_strips_history_after_attribution_lines(self, attribution):
        text = f"Новый текст.\n\n{attribution}\nСтарый текст без кавычек.\n"
        assert strip_quotes(text) == "Новый текст."

    def test_strips_block_after_outlook_rule(self):
        text = (
            "New text.\n\n________________________________\nFrom: A <a@x.com>\n"
            "Sent: Monday\nTo: B\nSubject: Old\n\nOld text."
        )
        assert strip_quotes(text) == "New text."

    def test_a_single_from_line_in_the_text_is_not_a_header_block(self):
        text = "From: the accounting department, nobody can print.\nPlease help today."
        assert strip_quotes(text) == text

    def test_an_address_with_a_colon_is_not_an_attribution(self):
        text = "Error 12 from admin@romashka.ru:\nmailbox full\n"
        assert strip_quotes(text) == "Error 12 from admin@romashka.ru:\nmailbox full"

    def test_long_text_after_dashes_is_not_a_signature(self):
        text = "Intro\n--\n" + "\n".join(f"line {i}" for i in range(40))
        assert strip_quotes(text) == text

    def test_huge_body_is_scanned_only_up_to_the_cap(self):
        text = ("a" * 99 + "\n") * 20_000
        assert len(strip_quotes(text)) <= MAX_SCAN_CHARS


class TestSubjectPrefixes:
    @pytest.mark.parametrize(
        ("subject", "expected"),
        [
            ("Re: Fwd: Отв: [#1042] Принтер", "[#1042] Принтер"),
            ("RE: RE:Re[2]: Ответ: hi", "hi"),
            ("Re(3): x", "x"),
            ("FW: Fwd: AW: WG: SV: VS: Пересл: x", "x"),
            ("[EXTERNAL] RE: Printer", "Printer"),
            ("Re: [list] Re: Printer", "Printer"),
            ("[#1042] Printer", "[#1042] Printer"),
            ("RE : French style", "French style"),
            ("Reply needed", "Reply needed"),
            ("Réunion: x", "Réunion: x"),
            ("  Re:   spaced   out ", "spaced out"),
        ],
    )
    def test_strips_reply_and_forward_prefixes(self, subject, expected):
        assert strip_subject_prefixes(subject) == expected

    @pytest.mark.parametrize(
        ("subject", "forward"),
        [("Fwd: x", True), ("FW: Re: x", True), ("Пересл: x", True), ("[ext] Fwd: x", True),
         ("Re: Fwd: x", False), ("Forward planning", False)],
    )  # fmt: skip
    def test_tells_forwards(self, subject, forward):
        assert is_forward(subject) is forward


class TestTicketRef:
    @pytest.mark.parametrize(
        ("subject", "expected"),
        [
            ("[#1042] Заявка принята: Принтер", "1042"),
            ("Re: Fwd: Отв: [#1042] Принтер", "1042"),
            ("RE: [# 1042 ] x", "1042"),
            ("#1042", "1042"),
            ("Re: # 1042 printer", "1042"),
            ("Re: Printer problem #1042", "1042"),
            ("заявка 1042", "1042"),
            ("По заявке № 77", "77"),
            ("Ticket 1042", "1042"),
            ("Ticket#7", "7"),
            ("Ticket No. 1042 update", "1042"),
            ("тикет №1042", "1042"),
            ("Обращение номер 55.", "55"),
            ("Re: заявка 1042 принтер", "1042"),
            ("[#0042] leading zeros", "42"),
            ("[#12] wins over заявка 99", "12"),
        ],
    )
    def test_finds_the_ticket_number(self, subject, expected):
        assert ticket_ref(subject) == expected

    @pytest.mark.parametrize(
        "subject",
        [
            "Принтер не печатает",
            "Заявка от 12.03.2024",
            "Заявка 5 картриджей",
            "Звонок 8-800-555-35-35",
            "Тел. +7 (495) 123-45-67",
            "Windows 10 update 2024",
            "Отчёт за 2024 год",
            "Встреча в 10:30",
            "Принтер #2 не печатает",
            "Заказ #12345",
            "Счёт №1042 от 01.04",
            "C# 10 issue",
            "&#1042;",
            "Ticket 2024-05-01",
            "заявка 15:30",
            "ticket 0",
            "1С 8.3.24",
        ],
    )
    def test_ignores_numbers_that_are_not_tickets(self, subject):
        assert ticket_ref(subject) is None

    def test_parsed_mail_carries_the_ref(self):
        assert fixture("ru-cp1251-outlook-reply.eml").ticket_ref == "1042"
        assert fixture("ru-koi8r-iphone.eml").ticket_ref is None


class TestAutomaticMail:
    def test_auto_submitted_header(self):
        parsed = fixture("en-auto-reply.eml")
        assert parsed.is_automatic is True
        assert parsed.automatic_reason == "auto-submitted: auto-replied"
        assert parsed.headers["auto-submitted"] == "auto-replied"

    def test_russian_vacation_subject_without_headers(self):
        parsed = fixture("ru-vacation-subject.eml")
        assert parsed.is_automatic is True
        assert parsed.automatic_reason == "vacation subject"

    @pytest.mark.parametrize(
        "subject",
        ["Out of Office: Printer", "Automatic reply: Printer", "Автоответ: Re: Принтер",
         "AUTO: Anna is out of the office (returning 22.04)", "Auto reply: x",
         "Abwesenheitsnotiz: x", "Я нахожусь в отпуске до 22.04"],
    )  # fmt: skip
    def test_vacation_subjects(self, subject):
        assert mail(f"Subject: {subject}").automatic_reason == "vacation subject"

    @pytest.mark.parametrize(
        "subject",
        ["Автоответ не работает", "Out of office doesn't work in Outlook",
         "Настроить автоответ на время отпуска", "Re: Printer"],
    )  # fmt: skip
    def test_people_writing_about_auto_replies_are_not_automatic(self, subject):
        assert mail(f"Subject: {subject}").is_automatic is False

    def test_bulk_list_mail(self):
        parsed = fixture("en-bulk-list.eml")
        assert parsed.automatic_reason == "precedence: bulk"
        assert parsed.headers["list-id"] == "Vendor News <news.vendor.example>"

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ("List-Id: <it.romashka.ru>", "list-id"),
            ("X-Autoreply: yes", "x-autoreply"),
            ("X-Autorespond: yes", "x-autoreply"),
            ("Return-Path: <>", "empty return-path"),
            ("Precedence: junk", "precedence: junk"),
            ("Auto-Submitted: auto-generated", "auto-submitted: auto-generated"),
            ("Auto-Submitted: auto-replied (zimbra)", "auto-submitted: auto-replied (zimbra)"),
        ],
    )  # fmt: skip
    def test_automatic_headers(self, headers, reason):
        assert mail(f"From: a@b.ru\n{headers}").automatic_reason == reason

    def test_auto_submitted_no_is_a_person(self):
        parsed = mail("From: a@b.ru\nAuto-Submitted: no")
        assert parsed.is_automatic is False
        assert parsed.automatic_reason is None

    def test_human_mail_is_not_automatic(self):
        parsed = fixture("ru-cp1251-outlook-reply.eml")
        assert parsed.is_automatic is False
        assert parsed.is_bounce is False

    def test_read_receipt_is_automatic_but_not_a_bounce(self):
        parsed = mail(
            "From: a@b.ru\nContent-Type: multipart/report;"
            ' report-type=disposition-notification; boundary="r"',
            "--r\nContent-Type: text/plain\n\nRead.\n--r\n"
            "Content-Type: message/disposition-notification\n\n"
            "Disposition: manual-action/MDN-sent-manually; displayed\n--r--\n",
        )
        assert parsed.automatic_reason == "read receipt"
        assert parsed.is_bounce is False


class TestBounces:
    def test_delivery_status_report_of_our_acknowledgement(self):
        parsed = fixture("bounce-dsn-own-ack.eml")
        assert parsed.is_bounce is True
        assert parsed.is_automatic is True
        assert parsed.automatic_reason == "bounce"
        assert parsed.bounced_message_id == "<ack-1042@opora.local>"
        assert [item.content_type for item in parsed.attachments] == [
            "message/delivery-status",
            "message/rfc822",
        ]
        assert b"Message-ID: <ack-1042@opora.local>" in parsed.attachments[1].data

    def test_plain_text_bounce_finds_the_message_id_in_the_body(self):
        parsed = fixture("bounce-exim-plain.eml")
        assert parsed.is_bounce is True
        assert parsed.bounced_message_id == "<ack-3100@opora.local>"

    def test_russian_report_with_rfc822_headers_and_folded_message_id(self):
        parsed = fixture("bounce-ru-rfc822-headers.eml")
        assert parsed.is_bounce is True
        assert parsed.subject == "Недоставленное сообщение"
        assert parsed.bounced_message_id == "<ack-1044@opora.local>"

    def test_bare_mailer_daemon_sender_without_domain(self):
        parsed = mail("From: mailer-daemon\nSubject: There was an error sending your mail")
        assert parsed.from_address is None
        assert parsed.is_bounce is True

    def test_ndr_subject_alone(self):
        assert mail("From: x@y.ru\nSubject: Undeliverable: Printer").is_bounce is True

    def test_postmaster_writing_like_a_person_is_not_a_bounce(self):
        parsed = mail("From: postmaster@romashka.ru\nSubject: Нужен новый ящик для бухгалтерии")
        assert parsed.is_bounce is False
        assert parsed.is_automatic is False

    def test_postmaster_with_a_returned_message_is_a_bounce(self):
        parsed = mail(
            "From: postmaster@mx.example.jp\nSubject: =?utf-8?B?44Oh44OD44K744O844K4?=\n"
            'Content-Type: multipart/mixed; boundary="p"',
            "--p\nContent-Type: text/plain\n\nuser unknown\n--p\nContent-Type: message/rfc822\n\n"
            "Message-ID: <orig@opora.local>\nSubject: x\n\nbody\n--p--\n",
        )
        assert parsed.is_bounce is True
        assert parsed.bounced_message_id == "<orig@opora.local>"

    @pytest.mark.parametrize(
        "subject",
        ["Не доставлено письмо клиенту", "Undeliverable emails to Gmail", "Fwd: Undeliverable: x"],
    )
    def test_people_complaining_about_delivery_are_not_bounces(self, subject):
        assert mail(f"From: anna@romashka.ru\nSubject: {subject}").is_bounce is False


class TestAttachments:
    def attachments(self):
        return {item.filename: item for item in fixture("attachments.eml").attachments}

    def test_path_is_removed_from_the_name(self):
        item = self.attachments()["passwd"]
        assert item.content_type == "text/plain"
        assert item.data == b"root:x:0:0:root:/root:/bin/bash\n"

    def test_windows_device_name_is_defused_and_exe_sniffed_despite_declared_jpeg(self):
        item = self.attachments()["_con.exe"]
        assert item.content_type == "application/vnd.microsoft.portable-executable"
        assert item.data.startswith(b"MZ")

    def test_rfc2231_utf8_name_and_pdf_sniffed_from_octet_stream(self):
        assert self.attachments()["Счёт №1042.pdf"].content_type == "application/pdf"

    def test_rfc2047_windows_1251_name_and_docx_sniffed_from_zip(self):
        assert self.attachments()["Договор.docx"].content_type == (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        )

    def test_bidi_override_is_removed_and_fake_pdf_is_an_executable(self):
        names = self.attachments()
        spoofed = [name for name in names if name.startswith("invoice")]
        assert spoofed == ["invoice fdp.exe"]
        assert (
            names["invoice fdp.exe"].content_type == "application/vnd.microsoft.portable-executable"
        )

    def test_nameless_attachment_gets_a_generated_name_from_its_type(self):
        assert self.attachments()["attachment-8.pdf"].content_type == "application/pdf"

    def test_sizes_match_data_and_nothing_is_inline(self):
        items = fixture("attachments.eml").attachments
        assert len(items) == 6
        assert all(item.size == len(item.data) for item in items)
        assert not any(item.inline for item in items)

    def test_inline_image_keeps_its_content_id(self):
        (image,) = fixture("ru-outlook-html-inline-image.eml").attachments
        assert image.inline is True
        assert image.content_id == "image001.png@01DA8C"
        assert image.content_type == "image/png"
        assert image.filename == "image001.png"

    def test_oversized_attachment_is_dropped_and_noted(self):
        parsed = parse_email((FIXTURES / "attachments.eml").read_bytes(), max_attachment_bytes=100)
        assert {item.filename for item in parsed.attachments} == {
            "passwd",
            "Счёт №1042.pdf",
            "attachment-8.pdf",
        }
        assert len([note for note in parsed.problems if "limit, dropped" in note]) == 3

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("../../etc/passwd", "passwd"),
            ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
            ("con.exe", "_con.exe"),
            ("LPT1.txt", "_LPT1.txt"),
            ("a\x00b\nc.txt", "abc.txt"),
            ("report<1>:2?.pdf", "report_1__2_.pdf"),
            ("...", "fallback.bin"),
            ("", "fallback.bin"),
            (None, "fallback.bin"),
            ("  .hidden  ", "hidden"),
            ("e\u0301te\u0301.doc", "été.doc"),
        ],
    )
    def test_sanitize_filename(self, name, expected):
        assert sanitize_filename(name, "fallback.bin") == expected

    def test_long_names_are_cut_to_200_keeping_the_extension(self):
        name = sanitize_filename("я" * 300 + ".xlsx", "x")
        assert len(name) == 200
        assert name.endswith("я.xlsx")

    @pytest.mark.parametrize(
        ("declared", "data", "filename", "expected"),
        [
            ("application/octet-stream", b"\x89PNG\r\n\x1a\n....", "x", "image/png"),
            ("image/png", b"\xff\xd8\xff\xe0....", "photo.png", "image/jpeg"),
            ("application/octet-stream", b"GIF89a...", "", "image/gif"),
            ("application/octet-stream", OLE, "a.xls", "application/vnd.ms-excel"),
            ("application/vnd.ms-excel", OLE, "a", "application/vnd.ms-excel"),
            ("application/octet-stream", b"PK\x03\x04....", "a.zip", "application/zip"),
            (ODT, ODT_BYTES, "a.odt", ODT),
            ("application/octet-stream", b"plain words", "report.pdf", "application/octet-stream"),
            ("application/octet-stream", b"a,b\n1,2\n", "data.csv", "text/csv"),
            ("application/pdf", b"not a pdf at all", "x.pdf", "application/octet-stream"),
            ("text/calendar", b"BEGIN:VCALENDAR", "invite.ics", "text/calendar"),
            ("image/jpg", b"\xff\xd8\xff\xe0", "x.jpg", "image/jpeg"),
        ],
    )  # fmt: skip
    def test_content_type_sniffing(self, declared, data, filename, expected):
        assert content_type_of(declared, data, filename) == expected


class TestGarbageInput:
    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"\n\n\n",
            b"\x00" * 1000,
            bytes(range(256)) * 40,
            b"From: x\n",
            b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\ntrunc",
            b"Content-Type: multipart/mixed; boundary=b\n\n"
            + b"--b\nContent-Type: multipart/mixed; boundary=b\n\n" * 300,
            b"Subject: " + b"a" * 1_000_000 + b"\n\nbody",
            b"Content-Type: text/plain; " + b"a=b; " * 20_000 + b"\n\nbody",
            b"Content-Type: text/plain; charset=rot13\n\nhello\xff",
            b"Content-Type: text/plain; charset=undefined\n\nhello\xff",
            b"Content-Type: text/plain; charset=idna\n\nhello\xff",
            b"Content-Transfer-Encoding: base64\n\n!!!not base64!!!",
            b"Content-Type: message/rfc822\n\nFrom: a\n\ninner",
            b"Subject: =?utf-8?B?====?= =?x?Q?=FF?=\n\n",
        ],
    )
    def test_never_raises_and_keeps_invariants(self, raw):
        parsed = parse_email(raw)
        assert isinstance(parsed.subject, str)
        assert isinstance(parsed.text, str)
        assert all(item.size == len(item.data) for item in parsed.attachments)
        json.dumps(to_json(parsed), ensure_ascii=False).encode("utf-8")

    def test_random_bytes_and_mutations_never_raise(self):
        rng = random.Random(20240412)  # noqa: S311 - reproducible test data, not security
        seeds = [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))]
        for _ in range(300):
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 30)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            cut = data[: rng.randrange(len(data) + 1)]
            for raw in (bytes(data), bytes(cut), os.urandom(rng.randrange(1, 2000))):
                assert isinstance(parse_email(raw), ParsedEmail)

    def test_an_internal_failure_still_returns_the_raw_text(self, monkeypatch):
        def broken(*_args, **_kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr("opora_intake.parsing.email._build_tree", broken)
        parsed = parse_email(b"Subject: x\n\nbody text")
        assert parsed.problems == ("unparseable (RuntimeError); the raw bytes are the text",)
        assert parsed.text == "Subject: x\n\nbody text"

    def test_not_even_bytes_gives_an_empty_result(self):
        parsed = parse_email("not bytes")  # type: ignore[arg-type]
        assert parsed.text == ""
        assert parsed.problems == ("unparseable (TypeError); the raw bytes are the text",)

    def test_accepts_bytearray_and_memoryview(self):
        raw = (FIXTURES / "en-auto-reply.eml").read_bytes()
        assert parse_email(bytearray(raw)) == parse_email(raw)
        assert parse_email(memoryview(raw)).subject == "Automatic reply: [#3100] Request received"

    def test_headers_only_mail_without_blank_line(self):
        parsed = parse_email(b"Subject: hi\nFrom: a@b.ru")
        assert parsed.subject == "hi"
        assert parsed.from_address == "a@b.ru"
        assert parsed.text == ""


class TestToJson:
    def test_has_the_cli_fields_and_no_attachment_bytes(self):
        data = to_json(fixture("attachments.eml"))
        keys = ("message_id", "from", "to", "subject", "text", "is_automatic", "ticket_ref",
                "attachments", "charset_problems", "date", "is_bounce", "full_text")  # fmt: skip
        assert set(keys) <= set(data)
        assert data["from"] == "anna@romashka.ru"
        assert data["attachments"][0] == {
            "filename": "passwd",
            "content_type": "text/plain",
            "size": 32,
            "inline": False,
            "content_id": None,
        }
        assert json.loads(json.dumps(data, ensure_ascii=False)) == data
