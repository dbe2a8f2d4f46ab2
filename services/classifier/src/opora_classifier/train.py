"""Build the ticket model from the labelled corpus and evaluate it on an honest held-out split.

``python -m opora_classifier.train`` trains on 80 % of the corpus (stratified by category,
fixed seed), writes ``model/model.joblib`` and ``model/model.json`` and prints the held-out
evaluation; ``--evaluate`` loads the saved model and prints the same evaluation only. The model
never sees the held-out 20 %.
"""

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sklearn.metrics import (  # type: ignore[import-untyped,unused-ignore]
    classification_report,
    confusion_matrix,
)
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped,unused-ignore]

from opora_classifier.conditions import detect_conditions, first_condition
from opora_classifier.model import TicketModel, train
from opora_classifier.priority import assess_priority
from opora_shared.contracts import Contract, ContractBook
from opora_shared.vocabulary import Category, Kind, Priority

SERVICE_DIR = Path(__file__).resolve().parents[2]
CORPUS = SERVICE_DIR / "data" / "tickets.jsonl"
MODEL_DIR = SERVICE_DIR / "model"
CONTRACTS_DIR = SERVICE_DIR.parents[1] / "deploy" / "contracts"
SEED = 0
HELD_OUT = 0.2
_ORDER = {p: i for i, p in enumerate(Priority)}


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    """The labelled tickets, one JSON object per line."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def split(
    records: Sequence[dict[str, Any]], *, seed: int = SEED
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held-out): 80/20, stratified by category, fixed seed; same split every time."""
    ordered = sorted(records, key=lambda r: str(r["id"]))
    train_part, held_out = train_test_split(
        ordered,
        test_size=HELD_OUT,
        random_state=seed,
        stratify=[r["category"] for r in ordered],
    )
    return list(train_part), list(held_out)


def scope_for(category: str, conditions: Sequence[str], contract: Contract) -> str:
    """Scope from the contract: a matching condition overrides the category's scope."""
    condition = first_condition(conditions, list(contract.services.conditions))
    if condition is not None:
        return str(contract.services.conditions[condition])
    return str(contract.services.scope_of(Category(category)))


def evaluate(
    model: TicketModel, held_out: Sequence[Mapping[str, Any]], contracts: ContractBook
) -> dict[str, float]:
    """Held-out scores: category, kind, scope per tenant, priority exact and within one level."""
    predictions = model.predict_many([(str(r["subject"]), str(r["body"])) for r in held_out])
    n = len(held_out)
    scores: dict[str, float] = {
        "category_accuracy": sum(
            p.category == r["category"] for p, r in zip(predictions, held_out, strict=True)
        )
        / n,
        "kind_accuracy": sum(
            p.kind == r["kind"] for p, r in zip(predictions, held_out, strict=True)
        )
        / n,
    }
    priorities = [
        assess_priority(str(r["subject"]), str(r["body"]), p.kind, model=model.priority)[0]
        for p, r in zip(predictions, held_out, strict=True)
    ]
    truth = [Priority(str(r["priority"])) for r in held_out]
    scores["priority_exact"] = sum(a == b for a, b in zip(priorities, truth, strict=True)) / n
    scores["priority_within_one"] = (
        sum(abs(_ORDER[a] - _ORDER[b]) <= 1 for a, b in zip(priorities, truth, strict=True)) / n
    )
    for contract in contracts:
        got = []
        want = []
        for p, r in zip(predictions, held_out, strict=True):
            found = detect_conditions(str(r["subject"]), str(r["body"]), category=p.category)[0]
            got.append(scope_for(p.category, found, contract))
            want.append(scope_for(str(r["category"]), r["conditions"], contract))
        scores[f"scope_accuracy_{contract.tenant}"] = (
            sum(a == b for a, b in zip(got, want, strict=True)) / n
        )
    return {k: round(v, 4) for k, v in scores.items()}


def _report(title: str, truth: Sequence[str], predicted: Sequence[str]) -> None:
    labels = sorted(set(truth) | set(predicted))
    print(f"\n== {title} ==")
    print(classification_report(truth, predicted, labels=labels, digits=3, zero_division=0))
    print("confusion (rows = truth, columns = predicted):")
    width = max(len(label) for label in labels)
    print(" " * (width + 1) + " ".join(label[:4].rjust(4) for label in labels))
    for label, row in zip(labels, confusion_matrix(truth, predicted, labels=labels), strict=True):
        print(label.rjust(width) + " " + " ".join(str(v).rjust(4) for v in row))


def print_evaluation(
    model: TicketModel, held_out: Sequence[Mapping[str, Any]], contracts: ContractBook
) -> dict[str, float]:
    """Print per-class reports and confusion matrices, then the summary scores."""
    predictions = model.predict_many([(str(r["subject"]), str(r["body"])) for r in held_out])
    _report("category", [r["category"] for r in held_out], [p.category for p in predictions])
    _report("kind", [r["kind"] for r in held_out], [p.kind for p in predictions])
    for contract in contracts:
        got, want = [], []
        for p, r in zip(predictions, held_out, strict=True):
            found = detect_conditions(str(r["subject"]), str(r["body"]), category=p.category)[0]
            got.append(scope_for(p.category, found, contract))
            want.append(scope_for(str(r["category"]), r["conditions"], contract))
        _report(f"scope ({contract.tenant})", want, got)
    _report(
        "priority",
        [str(r["priority"]) for r in held_out],
        [
            str(
                assess_priority(
                    str(r["subject"]), str(r["body"]), Kind(p.kind), model=model.priority
                )[0]
            )
            for p, r in zip(predictions, held_out, strict=True)
        ],
    )
    scores = evaluate(model, held_out, contracts)
    print(f"\n== summary (held-out, n={len(held_out)}) ==")
    for key, value in scores.items():
        print(f"{key:32} {value:.3f}")
    return scores


def build(
    corpus: Path = CORPUS, out: Path = MODEL_DIR, contracts_dir: Path = CONTRACTS_DIR
) -> dict[str, float]:
    """Train on the 80 % split, save the model with its held-out scores, print the evaluation."""
    train_part, held_out = split(load_corpus(corpus))
    model = train(train_part, seed=SEED)
    contracts = ContractBook.from_dir(contracts_dir)
    scores = print_evaluation(model, held_out, contracts)
    model.meta["held_out"] = scores
    model.meta["held_out_size"] = len(held_out)
    model.save(out)
    print(f"\nsaved {out / 'model.joblib'} (version {model.version[:12]})")
    return scores


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: build the model, or ``--evaluate`` the saved one."""
    parser = argparse.ArgumentParser(prog="python -m opora_classifier.train", description=__doc__)
    parser.add_argument("--evaluate", action="store_true", help="evaluate the saved model only")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--contracts", type=Path, default=CONTRACTS_DIR)
    args = parser.parse_args(argv)
    if args.evaluate:
        _, held_out = split(load_corpus(args.corpus))
        model = TicketModel.load(args.model_dir)
        print_evaluation(model, held_out, ContractBook.from_dir(args.contracts))
    else:
        build(args.corpus, args.model_dir, args.contracts)


if __name__ == "__main__":
    main()
