"""The email normaliser on the real-world corpus (../shared/corpus beside the repository).

Every mail listed in INDEX.tsv is parsed; the INDEX labels (looks_bounce, looks_auto_reply,
has_russian) are checked against what the parser says, with each disagreement listed below and
explained. Three sources come with other projects' expected results, used as follows:

- ``stalwart-mail-parser/*/NNN.json`` (Stalwart's full parse): the first From address, the
  Subject and every text/plain body part of ``text_body``, compared with whitespace folded and
  control characters dropped; a body part must be contained in our ``full_text``. Where Stalwart
  wrote U+FFFD for bytes it could not decode, any one character matches (we decode raw 8-bit
  Latin-1 as windows-1252 instead). HTML bodies are not compared (their notion of text differs).
- ``zammad-mail/*.yml`` (Zammad's mail parser): from_email (case-insensitive), display name,
  subject (whitespace folded) and body; an HTML body is converted with our HTML converter first,
  and Zammad's "no visible content" placeholder means our body must be empty.
- ``rt-emails/ms-outlook/expected-output-1`` (RT's HTML for ``input-msg-1``): its text must be in
  our ``full_text``.
"""

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from opora_intake.parsing import ParsedEmail, parse_email, to_json
from opora_intake.parsing.html import html_to_text

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"


@dataclass(frozen=True)
class Row:
    """One INDEX.tsv line."""

    path: str
    declared_charsets: str
    has_russian: str
    looks_auto_reply: str
    looks_bounce: str
    is_reply: str


def _rows() -> list[Row]:
    index = CORPUS / "INDEX.tsv"
    if not index.exists():
        pytest.fail(f"the corpus is missing: {CORPUS.resolve()} (expected beside the repository)")
    lines = index.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == [
        "path", "declared_charsets", "has_russian", "looks_auto_reply", "looks_bounce", "is_reply"
    ]  # fmt: skip
    return [Row(*line.split("\t")) for line in lines[1:] if line.strip()]


ROWS = _rows()


@cache
def parsed(path: str) -> ParsedEmail:
    return parse_email((CORPUS / path).read_bytes())


def labelled(column: str, value: str) -> list[str]:
    return [row.path for row in ROWS if getattr(row, column) == value]


CYRILLIC = re.compile("[а-яА-ЯёЁіїєґІЇЄҐ]")
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff]")


def fold(text: str) -> str:
    return " ".join(CONTROL.sub("", text).split())


def contains(expected: str, actual: str) -> bool:
    """``expected`` in ``actual`` with whitespace folded; U+FFFD in expected matches any char."""
    needle = fold(expected)
    if "\ufffd" not in needle:
        return needle in fold(actual)
    pattern = ".".join(re.escape(piece) for piece in needle.split("\ufffd"))
    return re.search(pattern, fold(actual), re.DOTALL) is not None


class TestEveryCorpusMail:
    def test_index_lists_the_corpus(self):
        assert len(ROWS) >= 350
        assert all((CORPUS / row.path).is_file() for row in ROWS)

    @pytest.mark.parametrize("path", [row.path for row in ROWS])
    def test_parses_with_sound_invariants(self, path):
        mail = parsed(path)
        assert isinstance(mail.subject, str)
        assert "\n" not in mail.subject
        assert isinstance(mail.text, str)
        assert isinstance(mail.full_text, str)
        assert mail.from_address is None or (
            "@" in mail.from_address and mail.from_address == mail.from_address.lower()
        )
        assert mail.date is None or mail.date.tzinfo is not None
        assert all(item.size == len(item.data) for item in mail.attachments)
        assert all(0 < len(item.filename) <= 200 for item in mail.attachments)
        assert all(
            "/" not in item.filename and "\\" not in item.filename for item in mail.attachments
        )
        assert not any("unparseable" in note for note in mail.problems)
        json.dumps(to_json(mail), ensure_ascii=False).encode("utf-8")  # no lone surrogates


# looks_bounce: the INDEX's first rule counted every top-level multipart/report, which includes
# read receipts and abuse reports; those are automatic mail but not bounces.
NOT_BOUNCES_DESPITE_LABEL = {
    "flanker-messages/disposition-notification.eml": "MDN read receipt",
    "flanker-messages/complaints/aol.eml": "ARF abuse report (feedback-report)",
    "flanker-messages/complaints/yahoo.eml": "ARF abuse report (feedback-report)",
}
# Real bounces the INDEX rules missed (no multipart/report at the top, no mailer-daemon sender).
BOUNCES_DESPITE_LABEL = {
    "flanker-messages/bounce/broken-mime.eml": "postmaster, 'Undeliverable Mail', returned text",
    "flanker-messages/bounce/delayed-broken.eml": "top-level message/delivery-status",
    "kix-otrs-samples/EmailParser/FilenameWithNewline.box": "has a message/delivery-status part",
}
# has_russian: these carry their Russian only inside an enclosed message/rfc822, which the
# normaliser keeps as an attachment rather than as body text.
RUSSIAN_ONLY_IN_ENCLOSED_MESSAGE = {
    "flanker-messages/enclosed.eml",
    "flanker-messages/enclosed-bad-encoding.eml",
    "flanker-messages/enclosed-broken-body.eml",
    "flanker-messages/enclosed-broken.eml",
    "flanker-messages/enclosed-endless.eml",
    "flanker-messages/enclosed-global.eml",
}


def _visible_text(mail: ParsedEmail) -> str:
    names = " ".join(item.filename for item in mail.attachments)
    return " ".join((mail.subject, mail.from_name or "", mail.full_text, names))


class TestCorpusLabels:
    @pytest.mark.parametrize("path", labelled("looks_bounce", "yes"))
    def test_labelled_bounces_are_bounces(self, path):
        if path in NOT_BOUNCES_DESPITE_LABEL:
            assert parsed(path).is_bounce is False
            assert parsed(path).is_automatic is True
        else:
            assert parsed(path).is_bounce is True

    @pytest.mark.parametrize("path", labelled("looks_bounce", "no"))
    def test_labelled_non_bounces_are_not_bounces(self, path):
        assert parsed(path).is_bounce is (path in BOUNCES_DESPITE_LABEL)

    def test_every_labelled_bounce_with_an_original_message_id_names_one(self):
        found = [
            path for path in labelled("looks_bounce", "yes") if parsed(path).bounced_message_id
        ]
        assert len(found) >= 50

    @pytest.mark.parametrize("path", labelled("looks_auto_reply", "yes"))
    def test_labelled_automatic_mail_is_automatic(self, path):
        assert parsed(path).is_automatic is True

    @pytest.mark.parametrize("path", labelled("looks_auto_reply", "no"))
    def test_labelled_human_mail_is_automatic_only_for_a_named_reason(self, path):
        # Our notion is wider than the label's: bounces, read receipts, abuse reports and List-Id
        # mail are automatic too, so a disagreement must be one of those.
        mail = parsed(path)
        assert not mail.is_automatic or mail.automatic_reason in (
            "bounce", "read receipt", "feedback report", "list-id"
        )  # fmt: skip

    @pytest.mark.parametrize("path", labelled("has_russian", "yes"))
    def test_russian_mail_reads_as_russian(self, path):
        visible = _visible_text(parsed(path))
        assert bool(CYRILLIC.search(visible)) is (path not in RUSSIAN_ONLY_IN_ENCLOSED_MESSAGE)

    @pytest.mark.parametrize("path", labelled("has_russian", "no"))
    def test_no_cyrillic_mojibake_in_non_russian_mail(self, path):
        assert not CYRILLIC.search(_visible_text(parsed(path)))


STALWART = CORPUS / "stalwart-mail-parser"
STALWART_CASES = sorted(
    str(path.relative_to(STALWART))
    for path in STALWART.glob("*/*.json")
    if path.parent.name != "header-vectors"
)
# Where Stalwart and we differ on purpose (or on broken input that has no single right answer).
STALWART_DIFFERENCES = {
    "malformed/005.json": "boundary 'a--' is also the close of 'a': the nesting reads otherwise",
    "malformed/019.json": "first header line 'Fro :u...': the stdlib takes everything as body",
    "malformed/020.json": "broken alternative: Stalwart keeps part headers as text, we the HTML",
    "malformed/021.json": "same as 020",
    "rfc/006.json": "text/plain says 'fallback if client does not support HTML': we take the HTML",
    "thirdparty/001.json": "three text/plain alternatives: Stalwart keeps all, we keep one",
    "thirdparty/002.json": "base64 with trailing junk: the junk decodes to different garbage",
    "thirdparty/007.json": "From 'moderator' has no domain: we give no address",
}


def _stalwart_header(parts: list[dict[str, object]], wanted: str) -> object:
    for header in parts[0]["headers"]:  # type: ignore[attr-defined]
        name = header["name"]
        if (name if isinstance(name, str) else name.get("other", "").lower()) == wanted:
            return header["value"]
    return None


def _stalwart_mismatches(case: str) -> list[str]:
    """What differs between Stalwart's expected parse of ``case`` and ours."""
    expected = json.loads((STALWART / case).read_text(encoding="utf-8"))
    mail = parse_email((STALWART / case).with_suffix(".eml").read_bytes())
    mismatches: list[str] = []
    subject = _stalwart_header(expected["parts"], "subject")
    if isinstance(subject, dict) and "Text" in subject:
        same = contains(subject["Text"], mail.subject)
        if not same or len(fold(subject["Text"])) != len(mail.subject):
            mismatches.append(f"subject {mail.subject!r}")
    sender = _stalwart_header(expected["parts"], "from")
    if isinstance(sender, dict) and "Address" in sender:
        listed = sender["Address"].get("List") or []
        address = listed[0].get("address") if listed else None
        if address and mail.from_address != address.lower():
            mismatches.append(f"from {mail.from_address!r}")
    for index in expected["text_body"]:
        body = expected["parts"][index].get("body") or {}
        if "Text" in body and fold(body["Text"]) and not contains(body["Text"], mail.full_text):
            mismatches.append(f"body part {index}")
    return mismatches


class TestStalwartExpectations:
    @pytest.mark.parametrize("case", STALWART_CASES)
    def test_matches_stalwart(self, case):
        mismatches = _stalwart_mismatches(case)
        if case in STALWART_DIFFERENCES:
            assert mismatches, (
                f"no longer differs ({STALWART_DIFFERENCES[case]}): drop it from the list"
            )
        else:
            assert mismatches == []

    def test_most_cases_are_compared(self):
        assert len(STALWART_CASES) >= 100
        assert len(STALWART_DIFFERENCES) <= 10


class _RubyTolerantLoader(yaml.SafeLoader):
    """Zammad's fixtures tag their hashes ``!ruby/hash:...``; read them as plain mappings."""


def _ruby(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_RubyTolerantLoader.add_multi_constructor("!ruby/", _ruby)
ZAMMAD = CORPUS / "zammad-mail"


class TestZammadExpectations:
    @pytest.mark.parametrize("case", sorted(path.name for path in ZAMMAD.glob("*.yml")))
    def test_matches_zammad(self, case):
        text = (ZAMMAD / case).read_text(encoding="utf-8")
        expected = yaml.load(text, Loader=_RubyTolerantLoader)  # noqa: S506 - a SafeLoader
        mail = parse_email((ZAMMAD / case).with_suffix(".box").read_bytes())
        assert mail.from_address == expected["from_email"].lower()
        assert (mail.from_name or "") == (expected.get("from_display_name") or "")
        assert mail.subject == fold(expected["subject"])
        body = expected.get("body") or ""
        if body == "no visible content":
            assert mail.full_text == ""
            return
        if expected.get("content_type") == "text/html":
            body = html_to_text(body)
        assert contains(body, mail.full_text)


class TestRtExpectation:
    def test_outlook_html_matches_rt_output(self):
        folder = CORPUS / "rt-emails" / "ms-outlook"
        expected = html_to_text((folder / "expected-output-1").read_text(encoding="utf-8"))
        mail = parse_email((folder / "input-msg-1").read_bytes())
        assert mail.from_html is True
        assert fold(expected) == "[External Email] Hi, A normal line Regards,"
        assert contains(expected, mail.full_text)
