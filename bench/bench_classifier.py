"""Throughput of the classifier's verdict on one core, against baselines measured in the same run.

    .venv/bin/python bench/bench_classifier.py [--rounds N] [--model-dir PATH]

Turns every ticket of the labelled corpus into the ``TicketReceived`` event the classifier
receives (Russian ones for Romashka, English ones for Vector), then for N rounds times:

- ``decide()`` one ticket at a time, as the service calls it (the figure the target is about:
  category, kind, priority, conditions, scope, language and the reasons);
- baseline 1: scikit-learn's ``TfidfVectorizer.transform`` of the same tickets one at a time,
  with the model's four feature blocks fitted the same way: the feature step alone, as the
  previous implementation paid it on every call;
- baseline 2: ``TicketReceived.model_validate_json`` of the same events, the JSON decoding and
  pydantic validation every handler pays before it can call ``decide``;
- ``TicketModel.predict_many`` over the whole corpus at once (category and kind, batched).

Prints the median tickets/s of each with the spread over the rounds (min-max) and the ratio of
``decide`` to each baseline, the first, cold pass (empty caches) on its own, then one JSON line.
Pinned to one core; ``time.perf_counter``; a collection before each pass.
"""

import argparse
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from opora_classifier.decide import decide
from opora_classifier.model import TicketModel, _sklearn_vectorizers, ticket_text
from opora_classifier.settings import MODEL_DIR
from opora_classifier.train import CONTRACTS_DIR, CORPUS, load_corpus
from opora_shared.contracts import Contract, ContractBook
from opora_shared.events import Requester, TicketReceived
from opora_shared.vocabulary import Channel

TENANT_OF = {"ru": ("romashka", "anna@romashka.ru"), "en": ("vector", "dan@vector-logistics.com")}


def events(records: Sequence[dict[str, object]]) -> list[bytes]:
    """The corpus as TicketReceived events, JSON-encoded as they arrive from NATS."""
    now = datetime.now(UTC)
    out: list[bytes] = []
    for number, record in enumerate(records):
        tenant, sender = TENANT_OF[str(record["lang"])]
        event = TicketReceived(
            event_id=uuid.UUID(int=number + 1),
            occurred_at=now,
            tenant=tenant,
            ticket_id=str(10**9 + number),
            channel=Channel.EMAIL,
            requester=Requester(email=sender),
            subject=str(record["subject"]),
            body=str(record["body"]),
        )
        out.append(event.model_dump_json().encode())
    return out


def rate(function: Callable[[], int]) -> float:
    """Tickets per second of one pass (``function`` returns how many it handled)."""
    gc.collect()
    start = time.perf_counter()
    handled = function()
    return handled / (time.perf_counter() - start)


def figures(rates: list[float]) -> dict[str, float]:
    """Median and spread of a list of rates."""
    return {
        "median": round(statistics.median(rates), 1),
        "min": round(min(rates), 1),
        "max": round(max(rates), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7, help="passes per measure (median kept)")
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR, help="the trained model")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="labelled tickets (JSONL)")
    args = parser.parse_args(argv)
    if not (args.model_dir / "model.joblib").exists():
        print(f"no model in {args.model_dir}: run make model", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    model = TicketModel.load(args.model_dir)
    book = ContractBook.from_dir(CONTRACTS_DIR)
    raw = events(load_corpus(args.corpus))
    decoded = [TicketReceived.model_validate_json(payload) for payload in raw]
    contracts: dict[str, Contract | None] = {e.tenant: book.get(e.tenant) for e in decoded}
    pairs = [(e.subject, e.body) for e in decoded]

    def one_at_a_time() -> int:
        for event in decoded:
            decide(
                model,
                event.subject,
                event.body,
                contracts[event.tenant],
                sender=event.requester.email,
            )
        return len(decoded)

    texts = [ticket_text(s, b) for s, b in pairs]
    vectorizers = list(_sklearn_vectorizers().values())
    for vectorizer in vectorizers:
        vectorizer.fit(texts)

    def sklearn_transform() -> int:
        for text in texts:
            for vectorizer in vectorizers:
                vectorizer.transform([text])
        return len(texts)

    def baseline() -> int:
        for payload in raw:
            TicketReceived.model_validate_json(payload)
        return len(raw)

    def batched() -> int:
        model.predict_many(pairs)
        return len(pairs)

    cold = rate(one_at_a_time)  # first pass: empty per-word caches
    for warm_up in (baseline, batched, sklearn_transform):
        warm_up()
    measures: list[tuple[Callable[[], int], list[float]]] = [
        (one_at_a_time, []),
        (sklearn_transform, []),
        (baseline, []),
        (batched, []),
    ]
    for round_number in range(args.rounds):
        order = measures[::-1] if round_number % 2 else measures
        for function, rates in order:
            rates.append(rate(function))
    single, vectorise, base, batch = (figures(rates) for _, rates in measures)
    ratio_sklearn = round(single["median"] / vectorise["median"], 3)
    ratio = round(single["median"] / base["median"], 3)
    print(
        f"corpus: {args.corpus.name} ({len(raw)} tickets), model {model.version[:12]}, "
        f"{args.rounds} rounds, one core"
    )
    print(
        f"decide() one at a time: {single['median']:.0f} tickets/s "
        f"(min {single['min']:.0f}, max {single['max']:.0f}); first cold pass {cold:.0f}/s"
    )
    print(
        f"baseline 1, scikit-learn TfidfVectorizer.transform of the four blocks, one ticket at "
        f"a time: {vectorise['median']:.0f} tickets/s (min {vectorise['min']:.0f}, "
        f"max {vectorise['max']:.0f}); decide/baseline ratio {ratio_sklearn:.2f}"
    )
    print(
        f"baseline 2, TicketReceived JSON decode + validate: {base['median']:.0f} events/s "
        f"(min {base['min']:.0f}, max {base['max']:.0f}); decide/baseline ratio {ratio:.3f}"
    )
    print(
        f"predict_many (category + kind, whole corpus in one batch): {batch['median']:.0f} "
        f"tickets/s (min {batch['min']:.0f}, max {batch['max']:.0f})"
    )
    results = {
        "rounds": args.rounds,
        "tickets": len(raw),
        "model_version": model.version,
        "decide_per_s": single,
        "decide_cold_first_pass_per_s": round(cold, 1),
        "baseline_sklearn_transform_per_s": vectorise,
        "ratio_decide_to_sklearn_transform": ratio_sklearn,
        "baseline_decode_validate_per_s": base,
        "ratio_decide_to_decode_validate": ratio,
        "predict_many_per_s": batch,
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
