"""What an engineer's reply asks for (commands), and whether the relay vouched for the sender."""

import pytest

from opora_intake.engineer_commands import Verb, parse_command
from opora_intake.errors import EngineerCommandError
from opora_intake.sender_auth import authentication_results, judge_sender
from opora_shared.vocabulary import TicketChange


class TestCommands:
    @pytest.mark.parametrize(
        ("text", "verb", "change"),
        [
            ("#ack", Verb.ACK, TicketChange.ACKNOWLEDGED),
            ("#wait", Verb.WAIT, TicketChange.WAITING_ON_CLIENT),
            ("#resolve", Verb.RESOLVE, TicketChange.RESOLVED),
            ("#note checked the logs", Verb.NOTE, TicketChange.NOTE),
            ("Замените картридж, пожалуйста", Verb.REPLY, TicketChange.REPLIED),
        ],
    )
    def test_each_command_maps_to_its_change(self, text, verb, change):
        command = parse_command(text)
        assert command.verb is verb
        assert command.change is change

    def test_the_first_non_empty_line_decides_and_case_does_not_matter(self):
        command = parse_command("\n\n   #ACK  \nлечу\n")
        assert command.verb is Verb.ACK
        assert command.text == "лечу"

    def test_resolve_keeps_the_rest_as_the_resolution_note(self):
        command = parse_command("#resolve\nЗаменили фьюзер.\nПечатает.\n")
        assert command.verb is Verb.RESOLVE
        assert command.text == "Заменили фьюзер.\nПечатает."

    def test_text_on_the_command_line_is_kept_before_the_following_lines(self):
        command = parse_command("#wait: please send a screenshot\nof the error")
        assert command.verb is Verb.WAIT
        assert command.text == "please send a screenshot\nof the error"

    def test_a_bare_command_has_no_text(self):
        assert parse_command("#ack").text == ""

    def test_note_keeps_its_text(self):
        command = parse_command("#note клиент просил не звонить до 12\nвторая строка")
        assert command.text == "клиент просил не звонить до 12\nвторая строка"

    def test_note_without_text_is_refused(self):
        with pytest.raises(EngineerCommandError, match="#note needs"):
            parse_command("#note\n\n")

    @pytest.mark.parametrize(
        ("text", "who"),
        [
            ("#assign maria", "maria"),
            ("#assign   Maria", "Maria"),
            ("#assign @oleg", "oleg"),
            ("#assign alexey, he knows the VPN", "alexey"),
            ("#assign maria@opora.local", "maria@opora.local"),
        ],
    )
    def test_assign_names_the_engineer(self, text, who):
        command = parse_command(text)
        assert command.verb is Verb.ASSIGN
        assert command.argument == who
        assert command.change is None

    def test_assign_without_an_engineer_is_refused(self):
        with pytest.raises(EngineerCommandError, match="#assign needs an engineer"):
            parse_command("#assign\nsomeone please")

    @pytest.mark.parametrize("text", ["#reslove", "#close it", "#решено", "#acknowledged"])
    def test_an_unknown_command_is_refused_never_sent_as_text(self, text):
        with pytest.raises(EngineerCommandError, match="unknown command") as err:
            parse_command(text)
        assert "#ack" in str(err.value)  # the message lists what would work

    def test_reply_is_not_a_command(self):
        with pytest.raises(EngineerCommandError, match="unknown command"):
            parse_command("#reply hello")

    @pytest.mark.parametrize(
        "text", ["#1042 is the same issue", "# heading", "Please try #ack", "ack"]
    )
    def test_text_that_only_looks_like_a_command_is_an_answer(self, text):
        command = parse_command(text)
        assert command.verb is Verb.REPLY
        assert command.text == text

    def test_an_answer_keeps_every_line(self):
        assert parse_command("  Hello,\n\nrestart the router.\n").text == (
            "Hello,\n\nrestart the router."
        )

    @pytest.mark.parametrize("text", ["", "   \n\n  "])
    def test_an_empty_reply_is_refused(self, text):
        with pytest.raises(EngineerCommandError, match="empty reply"):
            parse_command(text)


RAW = (
    b"Authentication-Results: mx.opora.example; dkim=pass header.d=opora.local "
    b"header.s=mail; spf=pass smtp.mailfrom=maria@opora.local; dmarc=pass "
    b"header.from=opora.local\r\n"
    b"Authentication-Results: evil.example; dkim=fail\r\n"
    b"From: maria@opora.local\r\n"
    b"Subject: x\r\n\r\n"
    b"Authentication-Results: in the body; not a header\r\n"
)


class TestSenderAuthentication:
    def test_headers_are_read_topmost_first_and_never_from_the_body(self):
        found = authentication_results(RAW)
        assert len(found) == 2
        assert found[0].startswith("mx.opora.example;")

    def test_the_trusted_authserv_id_is_the_one_read(self):
        verdict = judge_sender(
            authentication_results(RAW), "opora.local", authserv_id="mx.opora.example"
        )
        assert verdict.result == "pass"

    def test_dmarc_fail_fails(self):
        verdict = judge_sender(
            ["mx; spf=fail smtp.mailfrom=evil.example; dkim=none; dmarc=fail"],
            "opora.local",
            authserv_id=None,
        )
        assert (verdict.result, verdict.detail) == ("fail", "dmarc=fail")

    def test_dkim_must_be_for_the_from_domain(self):
        verdict = judge_sender(
            ["mx; dkim=pass header.d=evil.example; spf=softfail smtp.mailfrom=evil.example"],
            "opora.local",
            authserv_id=None,
        )
        assert (verdict.result, verdict.detail) == ("fail", "spf=softfail")

    def test_aligned_spf_passes_even_when_a_list_broke_dkim(self):
        verdict = judge_sender(
            ['mx (comment); dkim=fail reason="bad sig; body" header.d=opora.local; '
             "spf=pass smtp.mailfrom=bounce@mail.opora.local"],
            "opora.local",
            authserv_id=None,
        )  # fmt: skip
        assert (verdict.result, verdict.detail) == ("pass", "spf=pass")

    def test_no_header_is_none(self):
        assert judge_sender([], "opora.local", authserv_id=None).result == "none"
        verdict = judge_sender(["other.example; dmarc=pass"], "opora.local", authserv_id="mx")
        assert verdict.result == "none"
        assert "from mx" in verdict.detail

    def test_neutral_results_are_none(self):
        verdict = judge_sender(["mx; spf=neutral; dkim=none"], "opora.local", authserv_id=None)
        assert verdict.result == "none"
