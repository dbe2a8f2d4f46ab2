"""The held-out report: per-class figures and labelled confusion matrices, as data and text."""

import pytest

from opora_classifier.model import TicketModel
from opora_classifier.train import (
    CONTRACTS_DIR,
    MODEL_DIR,
    evaluate,
    format_report,
    load_corpus,
    report,
    split,
)
from opora_shared.contracts import ContractBook


@pytest.fixture(scope="module")
def data() -> dict:
    _, held_out = split(load_corpus())
    return report(TicketModel.load(MODEL_DIR), held_out, ContractBook.from_dir(CONTRACTS_DIR))


def test_split_is_stratified_80_20_and_stable() -> None:
    records = load_corpus()
    train_part, held_out = split(records)
    assert len(held_out) == pytest.approx(len(records) * 0.2, abs=1)
    assert {r["id"] for r in train_part}.isdisjoint(r["id"] for r in held_out)
    assert [r["id"] for r in split(list(reversed(records)))[1]] == [r["id"] for r in held_out]
    for category in {r["category"] for r in records}:
        share = sum(r["category"] == category for r in held_out) / len(held_out)
        overall = sum(r["category"] == category for r in records) / len(records)
        assert share == pytest.approx(overall, abs=0.01)


def test_report_covers_every_task_with_labels(data: dict) -> None:
    assert set(data["tasks"]) == {
        "category",
        "kind",
        "priority",
        "scope_romashka",
        "scope_vector",
    }
    for stats in data["tasks"].values():
        labels = stats["labels"]
        assert len(stats["confusion"]) == len(labels)
        assert all(len(row) == len(labels) for row in stats["confusion"])
        assert sum(map(sum, stats["confusion"])) == data["size"]
        assert sum(stats["per_class"][label]["support"] for label in labels) == data["size"]
        diagonal = sum(stats["confusion"][i][i] for i in range(len(labels)))
        assert diagonal / data["size"] == pytest.approx(stats["accuracy"], abs=1e-4)


def test_report_summary_is_evaluate(data: dict) -> None:
    _, held_out = split(load_corpus())
    model = TicketModel.load(MODEL_DIR)
    assert data["summary"] == evaluate(model, held_out, ContractBook.from_dir(CONTRACTS_DIR))


def test_priority_labels_in_order(data: dict) -> None:
    assert data["tasks"]["priority"]["labels"] == ["P1", "P2", "P3", "P4"]


def test_text_has_a_table_and_a_matrix_per_task(data: dict) -> None:
    text = format_report(data)
    for title in ("category", "kind", "priority", "scope for romashka", "scope for vector"):
        assert f"== {title} (held-out, n={data['size']}) ==" in text
    assert text.count("confusion (rows = truth, columns = predicted):") == 5
    assert "accounting_software" in text
    assert "precision  recall     F1  support" in text
    assert "category_accuracy" in text
