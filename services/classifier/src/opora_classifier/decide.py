"""The classifier's verdict on one ticket: model, priority signals, conditions and contract.

Category and kind come from the trained model (``model.py``); priority from named impact and
urgency signals (``priority.py``); conditions (consumables, personal device...) from
``conditions.py``; scope from the tenant's contract, where a condition overrides the
category's scope. Below the review threshold, or for a sender no contract knows, the scope is
``needs_review``. Every step adds a reason a team lead can read. Pure given the loaded model.

One ticket at a time is the service's path, so it is kept cheap: the text is vectorised once
(the model and the priority layer share it) and no scikit-learn object is touched.
"""

import re
from dataclasses import dataclass

from opora_classifier.conditions import detect_conditions, first_condition
from opora_classifier.model import TicketModel
from opora_classifier.priority import assess_priority
from opora_shared.contracts import Contract
from opora_shared.vocabulary import Category, Kind, Language, Priority, Scope

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The classification of one ticket, with its reasons."""

    category: Category
    kind: Kind
    scope: Scope
    priority: Priority
    language: Language
    confidence: float
    reasons: tuple[str, ...]


def detect_language(text: str, default: Language) -> Language:
    """Russian when Cyrillic letters dominate, English when Latin ones do."""
    cyr, lat = len(_CYRILLIC.findall(text)), len(_LATIN.findall(text))
    if cyr == lat == 0:
        return default
    return Language.RU if cyr >= lat else Language.EN


def decide(
    model: TicketModel,
    subject: str,
    body: str,
    contract: Contract | None,
    *,
    sender: str | None = None,
    review_threshold: float = 0.5,
) -> Verdict:
    """Classify one ticket against its tenant's contract (None: a sender no contract knows)."""
    prediction = model.predict(subject, body)
    category, kind = Category(prediction.category), Kind(prediction.kind)
    features = ", ".join(f"'{f}'" for f in prediction.top_features[:3])
    reasons = [f"{features or 'the text'} → {category} ({prediction.category_confidence:.0%})"]
    if kind is not Kind.INCIDENT:
        article = "an" if kind is Kind.ALERT else "a"
        reasons.append(f"worded as {article} {kind} ({prediction.kind_confidence:.0%})")
    vip = bool(contract and sender and sender.lower() in contract.vip_senders)
    priority, priority_reasons = assess_priority(
        subject, body, kind, vip_sender=vip, model=model.priority
    )
    reasons.extend(priority_reasons)
    language = detect_language(f"{subject}\n{body}", contract.language if contract else Language.EN)
    confidence = round(float(prediction.category_confidence), 2)
    if contract is None:
        scope = Scope.NEEDS_REVIEW
        reasons.append("the sender matches no contract → needs_review")
    elif confidence < review_threshold:
        scope = Scope.NEEDS_REVIEW
        reasons.append(f"confidence {confidence:.2f} below {review_threshold} → needs_review")
    else:
        found, condition_reasons = detect_conditions(subject, body, category=category.value)
        condition = first_condition(found, list(contract.services.conditions))
        if condition is not None:
            scope = Scope(contract.services.conditions[condition])
            reasons.extend(condition_reasons)
            reasons.append(
                f"{condition.replace('_', ' ')} is {scope} in {contract.name}'s contract"
            )
        else:
            scope = contract.services.scope_of(category)
            reasons.append(f"{category} is {scope} in {contract.name}'s contract")
    return Verdict(category, kind, scope, Priority(priority), language, confidence, tuple(reasons))
