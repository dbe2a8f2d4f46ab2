"""Throughput of the email normaliser on one core, against bare stdlib parsing in the same run.

    .venv/bin/python bench/bench_parse.py [--rounds N] [--corpus PATH]

Reads every mail file listed in the corpus's INDEX.tsv (default ``../shared/corpus`` beside
the repository), then for N rounds times ``parse_email`` over all of them and, as the baseline,
``email.message_from_bytes(raw, policy=policy.default)`` + ``get_body()`` over the same bytes.
Prints the median mails/s of each and their ratio, for the whole corpus and for its typical
mails (files up to 64 KB: the corpus also holds MIME torture tests of up to 3 MB), then one
JSON line with the figures. Standard library only; ``time.perf_counter``.
"""

import argparse
import email
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from email import policy
from pathlib import Path

from opora_intake.parsing.email import parse_email

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO / ".." / "shared" / "corpus"
TYPICAL_BYTES = 64 * 1024
_NOT_MAIL = {".md", ".json", ".yml", ".yaml", ".tsv"}


def load_corpus(corpus: Path) -> list[tuple[str, bytes]]:
    """The mail files INDEX.tsv lists (every file when there is no index), with their bytes."""
    index = corpus / "INDEX.tsv"
    if index.exists():
        lines = index.read_text(encoding="utf-8").splitlines()[1:]
        paths = [corpus / line.split("\t", 1)[0] for line in lines if line.strip()]
    else:
        data_files = (p for p in corpus.rglob("*") if p.is_file() and p.suffix not in _NOT_MAIL)
        paths = sorted(data_files)
    return [(str(p.relative_to(corpus)), p.read_bytes()) for p in paths]


def ours(raw: bytes) -> None:
    """The normaliser under test."""
    parse_email(raw)


def baseline(raw: bytes) -> None:
    """Bare stdlib: parse with the modern policy and find the body (it raises on some mail)."""
    try:
        message = email.message_from_bytes(raw, policy=policy.default)
        message.get_body()  # type: ignore[attr-defined]
    except Exception:  # noqa: S110 - the baseline pays for its failures, nothing more
        pass


def rate(function: Callable[[bytes], None], mails: list[bytes]) -> float:
    """Mails per second of one pass."""
    gc.collect()
    start = time.perf_counter()
    for raw in mails:
        function(raw)
    return len(mails) / (time.perf_counter() - start)


def measure(mails: list[bytes], rounds: int) -> dict[str, float]:
    """Median mails/s of ours and the baseline over ``rounds`` alternating passes."""
    ours_rates: list[float] = []
    base_rates: list[float] = []
    for round_number in range(rounds):
        order = [(ours, ours_rates), (baseline, base_rates)]
        if round_number % 2:
            order.reverse()
        for function, rates in order:
            rates.append(rate(function, mails))
    ours_median = statistics.median(ours_rates)
    base_median = statistics.median(base_rates)
    return {
        "mails": len(mails),
        "parse_email_mails_per_s": round(ours_median, 1),
        "stdlib_mails_per_s": round(base_median, 1),
        "ratio": round(ours_median / base_median, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5, help="passes per parser (median kept)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus folder")
    args = parser.parse_args(argv)
    corpus = args.corpus.resolve()
    if not corpus.is_dir():
        print(f"corpus not found: {corpus}", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    files = load_corpus(corpus)
    everything = [raw for _, raw in files]
    typical = [raw for raw in everything if len(raw) <= TYPICAL_BYTES]
    for raw in everything:  # warm up imports, regex caches and the charset detector
        parse_email(raw)
        baseline(raw)
    corpus_figures = measure(everything, args.rounds)
    typical_figures = measure(typical, args.rounds)
    size = sum(len(raw) for raw in everything) / 1e6
    print(f"corpus: {corpus} ({len(everything)} mails, {size:.1f} MB), {args.rounds} rounds")
    for label, figures in (
        ("all mails", corpus_figures),
        (f"mails <= {TYPICAL_BYTES // 1024} KB", typical_figures),
    ):
        print(
            f"{label:>16} ({figures['mails']:.0f}): "
            f"parse_email {figures['parse_email_mails_per_s']:.0f} mails/s, "
            f"stdlib parse+get_body {figures['stdlib_mails_per_s']:.0f} mails/s, "
            f"ratio {figures['ratio']:.2f}"
        )
    results = {"rounds": args.rounds, "corpus": corpus_figures, "typical": typical_figures}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
