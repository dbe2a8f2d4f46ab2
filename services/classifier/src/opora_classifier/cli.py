"""``opora classify``: the classifier from the command line, offline (no NATS needed).

One ticket (``--tenant --from --subject --body``), a JSON-lines batch (``--batch FILE``), or the
held-out evaluation (``--evaluate``). The output object is the API's ``classification``.
"""

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from opora_classifier.decide import decide
from opora_classifier.model import TicketModel
from opora_shared.contracts import ContractBook
from opora_shared.tickets import Classification
from opora_shared.types import UNKNOWN_TENANT

BATCH_FIELDS = ("subject", "body")


class Classifier:
    """The model and the contracts, loaded once; classifies tickets like the service does."""

    def __init__(
        self, model_dir: Path, contracts_dir: Path, *, review_threshold: float = 0.5
    ) -> None:
        self.model = TicketModel.load(model_dir)
        self.book = ContractBook.from_dir(contracts_dir)
        self.review_threshold = review_threshold

    def classify(
        self, *, sender: str, subject: str, body: str, tenant: str | None = None
    ) -> dict[str, Any]:
        """The classification of one ticket; the tenant defaults to the sender's."""
        tenant = tenant or self.book.tenant_for(sender)
        if tenant != UNKNOWN_TENANT and tenant not in self.book:
            known = ", ".join(sorted(c.tenant for c in self.book))
            msg = f"no contract for tenant {tenant!r}; known: {known}"
            raise ValueError(msg)
        contract = self.book.get(tenant)
        verdict = decide(
            self.model,
            subject,
            body,
            contract,
            sender=sender,
            review_threshold=self.review_threshold,
        )
        result = Classification(
            category=verdict.category,
            kind=verdict.kind,
            scope=verdict.scope,
            priority=verdict.priority,
            language=verdict.language,
            confidence=verdict.confidence,
            reasons=list(verdict.reasons),
            contract_revision=contract.revision if contract else "none",
        )
        return {"tenant": tenant, **result.model_dump(mode="json")}

    def batch(self, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
        """One classification per input line, in order; an ``error`` object for a bad line."""
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    msg = f"not JSON ({exc.msg} at column {exc.colno})"
                    raise ValueError(msg) from None
                if not isinstance(record, dict):
                    msg = "a line must be a JSON object"
                    raise ValueError(msg)
                missing = [f for f in BATCH_FIELDS if not isinstance(record.get(f), str)]
                if missing:
                    msg = f"missing or not a string: {', '.join(missing)}"
                    raise ValueError(msg)
                sender = record.get("from")
                tenant = record.get("tenant")
                if not isinstance(sender, str) and not isinstance(tenant, str):
                    msg = "needs 'tenant' or 'from'"
                    raise ValueError(msg)
                yield self.classify(
                    sender=sender if isinstance(sender, str) else "",
                    subject=record["subject"],
                    body=record["body"],
                    tenant=tenant if isinstance(tenant, str) else None,
                )
            except ValueError as exc:
                yield {"line": number, "error": str(exc)}


def run_batch(classifier: Classifier, source: TextIO, out: TextIO) -> int:
    """Classify a JSON-lines stream; 0 when every line was classified, 1 otherwise."""
    failed = 0
    for result in classifier.batch(source):
        failed += "error" in result
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 1 if failed else 0
