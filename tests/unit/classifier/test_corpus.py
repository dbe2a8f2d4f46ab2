"""The labelled training corpus of the classifier: valid, varied enough, and on the vocabulary."""

import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from opora_shared.vocabulary import Category, Kind, Language, Priority

CORPUS = Path(__file__).resolve().parents[3] / "services" / "classifier" / "data" / "tickets.jsonl"
FIELDS = {"id", "lang", "subject", "body", "category", "kind", "priority", "conditions", "source"}
CONDITIONS = {"consumables", "personal_device", "new_equipment", "onsite_out_of_hours", "non_it"}
SOURCES = {"email", "web", "alert", "phone_transcript"}


@pytest.fixture(scope="module")
def tickets() -> list[dict]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_every_line_is_a_json_object(tickets):
    raw = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(raw) == len(tickets)
    assert all(isinstance(t, dict) for t in tickets)


def test_every_ticket_is_on_the_vocabulary(tickets):
    for t in tickets:
        assert set(t) == FIELDS, t.get("id")
        assert Language(t["lang"])
        assert Category(t["category"])
        assert Kind(t["kind"])
        assert Priority(t["priority"])
        assert t["source"] in SOURCES, t["id"]
        for field in ("subject", "body"):
            assert isinstance(t[field], str), t["id"]
            assert t[field].strip(), t["id"]
        assert t["id"].startswith(f"{t['lang']}-"), t["id"]


def test_conditions_are_valid(tickets):
    for t in tickets:
        assert isinstance(t["conditions"], list), t["id"]
        assert set(t["conditions"]) <= CONDITIONS, t["id"]
        assert len(set(t["conditions"])) == len(t["conditions"]), t["id"]
        if "non_it" in t["conditions"]:
            assert t["category"] == Category.OTHER, t["id"]
        if "consumables" in t["conditions"]:
            assert t["category"] == Category.PRINTING, t["id"]


def test_ids_are_unique(tickets):
    ids = Counter(t["id"] for t in tickets)
    assert [i for i, n in ids.items() if n > 1] == []


def test_at_least_a_thousand_tickets(tickets):
    assert len(tickets) >= 1000


def test_at_least_sixty_per_category_in_both_languages(tickets):
    per_category = Counter(t["category"] for t in tickets)
    for category in Category:
        assert per_category[category.value] >= 60, category
        languages = {t["lang"] for t in tickets if t["category"] == category.value}
        assert languages == {lang.value for lang in Language}, category


def test_every_kind_and_priority_is_present(tickets):
    assert {t["kind"] for t in tickets} == {k.value for k in Kind}
    assert {t["priority"] for t in tickets} == {p.value for p in Priority}


def test_alerts_are_monitoring_and_only_alerts_are(tickets):
    for t in tickets:
        is_alert = t["kind"] == Kind.ALERT
        assert is_alert == (t["category"] == Category.MONITORING), t["id"]
        assert is_alert == (t["source"] == "alert"), t["id"]


def test_no_duplicate_bodies(tickets):
    bodies = Counter(" ".join(t["body"].lower().split()) for t in tickets)
    assert [b[:60] for b, n in bodies.items() if n > 1] == []


def test_languages_are_roughly_balanced(tickets):
    share_ru = sum(t["lang"] == Language.RU for t in tickets) / len(tickets)
    assert 0.45 <= share_ru <= 0.65


FORWARDED = ("original message", "forwarded message", "пересыла", "fw:", "fwd:")


def test_forwarded_alerts_are_not_monitoring(tickets):
    """A person passing an alert on writes a ticket; only the tool's own payload is monitoring."""
    for t in tickets:
        text = f"{t['subject']}\n{t['body']}".lower()
        if any(marker in text for marker in FORWARDED):
            assert t["category"] != Category.MONITORING, t["id"]


def test_personal_devices_keep_a_technical_category(tickets):
    for t in tickets:
        if "personal_device" in t["conditions"]:
            assert t["category"] not in (Category.OTHER, Category.MONITORING), t["id"]


def test_questions_are_never_urgent(tickets):
    """P1/P2 need an incident in progress or a blocked person, not a question."""
    for t in tickets:
        if t["kind"] == Kind.QUESTION:
            assert t["priority"] in (Priority.P3, Priority.P4), t["id"]


def test_no_near_duplicate_bodies_within_a_category(tickets):
    """Paraphrases drift the corpus into templates: word overlap stays below 0.7."""
    by_category: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for t in tickets:
        if t["kind"] != Kind.ALERT:  # alert payloads share their tool's template by nature
            words = frozenset(re.findall(r"\w+", t["body"].lower()))
            if len(words) >= 5:
                by_category.setdefault(t["category"], []).append((t["id"], words))
    close = [
        (a, b)
        for items in by_category.values()
        for (a, wa), (b, wb) in itertools.combinations(items, 2)
        if len(wa & wb) / len(wa | wb) >= 0.7
    ]
    assert close == []
