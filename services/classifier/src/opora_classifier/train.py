"""Build the ticket model from the labelled corpus and evaluate it on an honest held-out split.

``python -m opora_classifier.train`` trains on 80 % of the corpus (stratified by category,
fixed seed), writes ``model/model.joblib`` and ``model/model.json`` (with the held-out scores)
and prints the held-out report; ``--evaluate`` loads the saved model and prints the same report
only. The model never sees the held-out 20 %.

``report`` is the evaluation as data (per-class precision, recall, F1 and a labelled confusion
matrix for category, kind, priority and each tenant's scope); ``format_report`` turns it into
the text the command prints. Both are pure, so other commands can reuse them.
"""

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.metrics import (  # type: ignore[import-untyped,unused-ignore]
    confusion_matrix,
    precision_recall_fscore_support,
)
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped,unused-ignore]

from opora_classifier.conditions import detect_conditions, first_condition
from opora_classifier.model import TicketModel, train
from opora_classifier.priority import assess_priority
from opora_shared.contracts import Contract, ContractBook
from opora_shared.vocabulary import Category, Kind, Priority, Scope

SERVICE_DIR = Path(__file__).resolve().parents[2]
CORPUS = SERVICE_DIR / "data" / "tickets.jsonl"
MODEL_DIR = SERVICE_DIR / "model"
CONTRACTS_DIR = SERVICE_DIR.parents[1] / "deploy" / "contracts"
SEED = 0
HELD_OUT = 0.2
_ORDER = {p: i for i, p in enumerate(Priority)}
# Vocabulary order for the tables; short column heads for the confusion matrices.
_LABELS: dict[str, tuple[str, ...]] = {
    "category": tuple(c.value for c in Category),
    "kind": tuple(k.value for k in Kind),
    "priority": tuple(p.value for p in Priority),
    "scope": tuple(s.value for s in Scope),
}
_SHORT = {
    "email": "email",
    "printing": "print",
    "accounting_software": "acctg",
    "workstation": "wkstn",
    "network": "netwk",
    "accounts_access": "access",
    "server_infra": "server",
    "security": "secur",
    "telephony": "phone",
    "monitoring": "monit",
    "other": "other",
    "needs_review": "review",
}


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


@dataclass(frozen=True, slots=True)
class _Outcome:
    """Truth and prediction, per task, for every held-out ticket (same order)."""

    truth: dict[str, list[str]]
    predicted: dict[str, list[str]]


def _outcome(
    model: TicketModel, held_out: Sequence[Mapping[str, Any]], contracts: ContractBook
) -> _Outcome:
    predictions = model.predict_many([(str(r["subject"]), str(r["body"])) for r in held_out])
    truth: dict[str, list[str]] = {
        "category": [str(r["category"]) for r in held_out],
        "kind": [str(r["kind"]) for r in held_out],
        "priority": [str(r["priority"]) for r in held_out],
    }
    predicted: dict[str, list[str]] = {
        "category": [str(p.category) for p in predictions],
        "kind": [str(p.kind) for p in predictions],
        "priority": [
            str(
                assess_priority(
                    str(r["subject"]), str(r["body"]), Kind(p.kind), model=model.priority
                )[0]
            )
            for p, r in zip(predictions, held_out, strict=True)
        ],
    }
    found = [
        detect_conditions(str(r["subject"]), str(r["body"]), category=str(p.category))[0]
        for p, r in zip(predictions, held_out, strict=True)
    ]
    for contract in contracts:
        key = f"scope_{contract.tenant}"
        truth[key] = [scope_for(str(r["category"]), r["conditions"], contract) for r in held_out]
        predicted[key] = [
            scope_for(str(p.category), f, contract) for p, f in zip(predictions, found, strict=True)
        ]
    return _Outcome(truth, predicted)


def _accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    return sum(a == b for a, b in zip(truth, predicted, strict=True)) / len(truth)


def _summary(outcome: _Outcome) -> dict[str, float]:
    truth, predicted = outcome.truth, outcome.predicted
    scores = {
        "category_accuracy": _accuracy(truth["category"], predicted["category"]),
        "kind_accuracy": _accuracy(truth["kind"], predicted["kind"]),
        "priority_exact": _accuracy(truth["priority"], predicted["priority"]),
        "priority_within_one": sum(
            abs(_ORDER[Priority(a)] - _ORDER[Priority(b)]) <= 1
            for a, b in zip(truth["priority"], predicted["priority"], strict=True)
        )
        / len(truth["priority"]),
    }
    for key in truth:
        if key.startswith("scope_"):
            scores[f"scope_accuracy_{key[len('scope_') :]}"] = _accuracy(truth[key], predicted[key])
    return {k: round(v, 4) for k, v in scores.items()}


def evaluate(
    model: TicketModel, held_out: Sequence[Mapping[str, Any]], contracts: ContractBook
) -> dict[str, float]:
    """Held-out scores: category, kind, scope per tenant, priority exact and within one level."""
    return _summary(_outcome(model, held_out, contracts))


def _task_report(truth: Sequence[str], predicted: Sequence[str], vocabulary: Sequence[str]) -> Any:
    present = set(truth) | set(predicted)
    labels = [label for label in vocabulary if label in present]
    labels += sorted(present - set(labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    matrix = confusion_matrix(truth, predicted, labels=labels)
    return {
        "labels": labels,
        "accuracy": round(_accuracy(truth, predicted), 4),
        "macro_f1": round(float(f1.mean()), 4),
        "per_class": {
            label: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion": [[int(v) for v in row] for row in matrix],
    }


def report(
    model: TicketModel, held_out: Sequence[Mapping[str, Any]], contracts: ContractBook
) -> dict[str, Any]:
    """The held-out evaluation as data.

    ``{"size", "model_version", "summary": evaluate's scores, "tasks": {task: {"labels",
    "accuracy", "macro_f1", "per_class": {label: precision, recall, f1, support}, "confusion":
    rows = truth, columns = predicted, in "labels" order}}}`` for the tasks category, kind,
    priority and ``scope_<tenant>`` per contract. Pass the held-out split (``split``).
    """
    outcome = _outcome(model, held_out, contracts)
    tasks = {
        task: _task_report(
            outcome.truth[task],
            outcome.predicted[task],
            _LABELS["scope" if task.startswith("scope_") else task],
        )
        for task in outcome.truth
    }
    return {
        "size": len(held_out),
        "model_version": model.version,
        "summary": _summary(outcome),
        "tasks": tasks,
    }


def format_report(data: Mapping[str, Any]) -> str:
    """``report``'s data as text: a table and a confusion matrix per task, then the summary."""
    lines: list[str] = []
    for task, stats in data["tasks"].items():
        labels: list[str] = stats["labels"]
        title = f"scope for {task[len('scope_') :]}" if task.startswith("scope_") else task
        lines += ["", f"== {title} (held-out, n={data['size']}) =="]
        width = max(len(label) for label in [*labels, "macro F1"])
        lines.append(f"{'':{width}}  precision  recall     F1  support")
        for label in labels:
            row = stats["per_class"][label]
            lines.append(
                f"{label:>{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  "
                f"{row['f1']:5.3f}  {row['support']:7d}"
            )
        lines.append(f"{'accuracy':>{width}}  {stats['accuracy']:.3f}")
        lines.append(f"{'macro F1':>{width}}  {stats['macro_f1']:.3f}")
        heads = [_SHORT.get(label, label[:6]) for label in labels]
        cell = max(4, *(len(h) for h in heads))
        lines += ["", "confusion (rows = truth, columns = predicted):"]
        lines.append(" " * (width + 1) + " ".join(h.rjust(cell) for h in heads))
        for label, counts in zip(labels, stats["confusion"], strict=True):
            lines.append(f"{label:>{width}} " + " ".join(str(v).rjust(cell) for v in counts))
    lines += ["", f"== summary (held-out, n={data['size']}, model {data['model_version'][:12]}) =="]
    lines += [f"{key:32} {value:.3f}" for key, value in data["summary"].items()]
    return "\n".join(lines).lstrip("\n")


def print_evaluation(
    model: TicketModel, held_out: Sequence[Mapping[str, Any]], contracts: ContractBook
) -> dict[str, float]:
    """Print the held-out report; return the summary scores."""
    data = report(model, held_out, contracts)
    print(format_report(data))
    summary: dict[str, float] = data["summary"]
    return summary


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
