"""The labelled training corpus of the classifier: valid, varied enough, and on the vocabulary."""

import json
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
