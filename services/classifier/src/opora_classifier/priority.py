"""Priority from impact x urgency signals in a ticket's text (ITIL), in Russian and English. Pure.

Each signal has a name that appears in the ticket's reasons. The start is the kind's usual
priority (an incident P3, a request or question P4, an alert by its severity words); impact
signals (whole office, many users, business stopped, server down, security incident in
progress) raise it to P1 or P2, urgency signals (today, urgent, trucks waiting, a key person
or the reporting day) raise it one level, and calm words (planned, when you have time)
lower it. Text is lowercased with ё folded to е before matching.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped,unused-ignore]
import numpy as np
from scipy.sparse import hstack  # type: ignore[import-untyped,unused-ignore]
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped,unused-ignore]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped,unused-ignore]

from opora_shared.vocabulary import Kind, Priority

_ORDER = (Priority.P1, Priority.P2, Priority.P3, Priority.P4)


@dataclass(frozen=True, slots=True)
class Signal:
    """A named phrase family and the priority it implies (``level``) or a shift (``step``)."""

    name: str
    pattern: re.Pattern[str]
    level: Priority | None = None
    step: int = 0


def _re(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(phrases) + ")")


# Alerts: severity words of Zabbix (ru/en), Alertmanager, Grafana, Veeam, APC, RMM tools.
ALERT_SIGNALS: tuple[Signal, ...] = (
    Signal(
        "alert_resolved",
        _re(
            r"\[resolved\]",
            "resolved",
            "решено",
            "проблема решена",
            r"\[success\]",
            "status: success",
            "ok:",
            "recovered",
            "восстановлен",
        ),
        Priority.P4,
    ),
    Signal(
        "alert_disaster",
        _re(
            "disaster",
            "чрезвычайн",
            "hostdown",
            "host down",
            "недоступен по icmp",
            "unreachable",
            "outbreak",
            "ransom",
            "low battery",
            "runtime remaining",
            "graceful shutdown",
            "gatewaydown",
            "is down",
            r"down \(0\)",
        ),
        Priority.P1,
    ),
    Signal(
        "alert_critical",
        _re(
            "severity = critical",
            "severity: critical",
            "severity=critical",
            "level=critical",
            "критическ",
            "высокая",
            "important",
            "high",
            "status: failed",
            r"\[failed\]",
            "on battery",
            "error",
            "failed logon",
            "tunnel down",
            "expired",
            "недоступен",
        ),
        Priority.P2,
    ),
    Signal(
        "alert_warning",
        _re(
            "warning",
            "предупреждени",
            "средняя",
            "average",
            "minor",
            "predict",
            "отключен",
            "almostoutofspace",
            "мало свободного",
            "latency",
        ),
        Priority.P3,
    ),
    Signal(
        "alert_info",
        _re("severity = info", "severity: info", "information", "информац", "сведения", "info"),
        Priority.P4,
    ),
)

# Impact and urgency in people's text, strongest first.
TEXT_SIGNALS: tuple[Signal, ...] = (
    Signal(
        "security_incident_in_progress",
        _re(
            "зашифрован",
            "шифровальщик",
            "encrypted",
            "ransom",
            "выкуп",
            r"\.locked",
            r"\.crypt",
            "деньги ушли",
            "оплатила? [^.]{0,40}на чужой",
            "money (?:was )?sent",
            "wired",
            "teamviewer",
            "anydesk",
            "remote control",
            "сидит в почте",
            "кто-то сидит",
            "ввела? (?:логин и )?пароль",
            "typed my password",
            "entered my password",
            "threatened",
            "угрожа",
            "wipe everything",
        ),
        Priority.P1,
    ),
    Signal(
        "whole_office_down",
        _re(
            "весь офис",
            "всего офиса",
            "во всем офисе",
            "у всех",
            "ни у кого",
            "никто не",
            "все сотрудники",
            "всех сотрудник",
            "вся компания",
            "всей компании",
            "вся сеть",
            "whole office",
            "entire office",
            "everyone",
            "nobody",
            "no one",
            "all users",
            "all staff",
            "whole company",
            "across the company",
            "company-wide",
            "all stopped",
            "office down",
            "none of our",
        ),
        Priority.P1,
    ),
    Signal(
        "business_stopped",
        _re(
            "не можем отгрузить",
            "не можем работать",
            "работа стоит",
            "все стоит",
            "стоим",
            "встал[аи]? ",
            "остановил",
            "прием заказов",
            "can't ship",
            "cannot ship",
            "trucks are waiting",
            "trucks waiting",
            "stopped",
            "can't work",
            "cannot work",
            "operations halted",
            "dispatch is down",
            "business is down",
        ),
        Priority.P1,
    ),
    Signal(
        "server_down",
        _re(
            "сервер не отвечает",
            "сервер упал",
            "сервер недоступен",
            "сервер лежит",
            "server (?:is )?down",
            "server (?:is )?not responding",
            "server unreachable",
            "wms (?:is )?down",
            "erp (?:is )?down",
            "is down",
        ),
        Priority.P1,
    ),
    Signal(
        "department_blocked",
        _re(
            "весь отдел",
            "всего отдела",
            "всей бухгалтери",
            "вся бухгалтерия",
            "весь склад",
            "у отдела",
            "отдел продаж",
            r"\d+ человек",
            r"the whole (?:\w+ )?team",
            r"entire (?:\w+ )?team",
            "department",
            "the warehouse",
            "all the",
            "several",
            "несколько",
            "трое",
            "three",
            "many users",
        ),
        Priority.P2,
    ),
    Signal(
        "key_person",
        _re(
            "директор",
            "главн(?:ый|ого|ому) бухгалтер",
            "главбух",
            "ceo",
            "cfo",
            "director",
            "owner",
            "president",
            "vp ",
        ),
        Priority.P2,
    ),
    Signal(
        "security_risk",
        _re(
            "взлом",
            "hacked",
            "украл",
            "stolen",
            "утечк",
            "leak",
            "пароль был изменен",
            "password was changed",
            "sign-in from",
            "вход в вашу",
            "от директора",
            "from the ceo",
            "fake invoice",
            "спам от меня",
            "от меня пришло",
            "from me",
        ),
        Priority.P2,
    ),
    Signal(
        "deadline_today",
        _re(
            "сегодня",
            "срочно",
            "немедленно",
            "прямо сейчас",
            "горит",
            "через \\d+ минут",
            "urgent",
            "asap",
            "right now",
            "immediately",
            "today",
            "in \\d+ minutes",
            "отчетност",
            "сдач[аи] ",
            "зарплат",
            "payroll",
            "month-end",
            "month end",
            "deadline",
            "дедлайн",
        ),
        step=-1,
    ),
)

CALM_SIGNALS: tuple[Signal, ...] = (
    Signal(
        "not_urgent",
        _re(
            "не срочно",
            "когда будет время",
            "когда удобно",
            "не горит",
            "по возможности",
            "в течение недели",
            "заранее",
            "not urgent",
            "no rush",
            "when you have time",
            "when you get a chance",
            "whenever",
            "next week",
            "следующей неделе",
            "с понедельника",
            "from monday",
            "starting on",
            "в следующ",
        ),
        step=1,
    ),
    Signal(
        "workaround_exists", _re("пока работаю", "пока работаем", "workaround", "for now"), step=1
    ),
)


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("ё", "е").split())


def _shift(priority: Priority, step: int, *, floor: Priority = Priority.P1) -> Priority:
    index = min(max(_ORDER.index(priority) + step, _ORDER.index(floor)), len(_ORDER) - 1)
    return _ORDER[index]


def _rule_priority(
    subject: str, body: str, kind: Kind, *, vip_sender: bool = False
) -> tuple[Priority, tuple[str, ...]]:
    """The rules alone: priority from the named signals, and the reasons."""
    text = _normalise(f"{subject}. {body}")
    reasons: list[str] = []

    if kind is Kind.ALERT:
        for signal in ALERT_SIGNALS:
            match = signal.pattern.search(text)
            if match and signal.level is not None:
                reasons.append(f"{signal.name}: '{match.group(0)}' → {signal.level}")
                return signal.level, tuple(reasons)
        return Priority.P3, ("alert without severity → P3",)

    base = Priority.P3 if kind is Kind.INCIDENT else Priority.P4
    priority = base
    reasons.append(f"{kind} → {base}")
    impact: Priority | None = None
    for signal in TEXT_SIGNALS:
        if signal.level is None:
            continue
        match = signal.pattern.search(text)
        if not match:
            continue
        level = signal.level
        if kind is not Kind.INCIDENT and signal.name != "security_incident_in_progress":
            # A request or question that mentions the whole office is wide, not broken.
            level = _shift(level, 1)
        if signal.name == "key_person" and kind is not Kind.INCIDENT:
            continue
        reasons.append(f"{signal.name}: '{match.group(0).strip()}' → {level}")
        impact = level if impact is None else min(impact, level, key=_ORDER.index)
        break
    if vip_sender and kind is Kind.INCIDENT:
        reasons.append(f"vip_sender → {Priority.P2}")
        impact = Priority.P2 if impact is None else min(impact, Priority.P2, key=_ORDER.index)
    if impact is not None:
        priority = min(priority, impact, key=_ORDER.index)

    urgency = next(s for s in TEXT_SIGNALS if s.name == "deadline_today")
    match = urgency.pattern.search(text)
    if match and kind is Kind.INCIDENT and priority is not Priority.P1:
        priority = _shift(priority, -1, floor=Priority.P2)
        reasons.append(f"{urgency.name}: '{match.group(0).strip()}' → {priority}")
    elif impact is None:
        for signal in CALM_SIGNALS:
            calm = signal.pattern.search(text)
            if calm:
                priority = _shift(priority, signal.step)
                reasons.append(f"{signal.name}: '{calm.group(0).strip()}' → {priority}")
                break
    return priority, tuple(reasons)


# --- The learned layer -------------------------------------------------------------------------
#
# A small logistic regression over readable features: the named signals above (binary, alone and
# crossed with the kind), the kind, the rule's own verdict, and TF-IDF words. Trained on the
# training split only (``opora_classifier.model.train``) and saved with the model artifacts.
# The decision is ordinal-aware: the expected level under the class probabilities, rounded, so a
# torn P2/P4 ticket lands on P3 (within one level of either). Explicit strong signals override.

_LEVEL = {p: i for i, p in enumerate(_ORDER)}
_OVERRIDES = frozenset({"security_incident_in_progress", "whole_office_down"})
_WORDS = r"(?u)\b\w[\w\-]*\w\b|\b\w\b"
PRIORITY_C = 10.0
WORD_WEIGHT = 1.0


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def signal_tokens(subject: str, body: str, kind: Kind) -> list[str]:
    """The readable features of one ticket: kind, named signals (alone and by kind), rule."""
    text = _normalise(f"{subject}. {body}")
    tokens = [f"kind:{kind}"]
    for signal in (*TEXT_SIGNALS, *CALM_SIGNALS, *ALERT_SIGNALS):
        if signal.pattern.search(text):
            tokens += [f"sig:{signal.name}", f"sig:{signal.name}|{kind}"]
    rule, _ = _rule_priority(subject, body, kind)
    return [*tokens, f"rule:{rule}", f"rule:{rule}|{kind}"]


class PriorityModel:
    """Signals + words → P1..P4 probabilities → expected level, rounded."""

    def __init__(self, signals: Any, words: Any, classifier: Any) -> None:
        self.signals = signals
        self.words = words
        self.classifier = classifier

    @classmethod
    def fit(
        cls, tickets: Sequence[tuple[str, str, Kind]], labels: Sequence[str], *, seed: int = 0
    ) -> "PriorityModel":
        """Fit on (subject, body, kind) triples and their priority labels."""
        signals = TfidfVectorizer(analyzer=_identity, binary=True, use_idf=False, norm=None)
        words = TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=_WORDS
        )
        matrix = hstack(
            [
                signals.fit_transform([signal_tokens(*t) for t in tickets]),
                WORD_WEIGHT * words.fit_transform([_normalise(f"{s}. {b}") for s, b, _ in tickets]),
            ]
        ).tocsr()
        classifier = LogisticRegression(C=PRIORITY_C, max_iter=3000, random_state=seed)
        classifier.fit(matrix, [_LEVEL[Priority(label)] for label in labels])
        return cls(signals, words, classifier)

    def predict(self, subject: str, body: str, kind: Kind) -> tuple[Priority, float]:
        """The rounded expected level and the probability of that level."""
        matrix = hstack(
            [
                self.signals.transform([signal_tokens(subject, body, kind)]),
                WORD_WEIGHT * self.words.transform([_normalise(f"{subject}. {body}")]),
            ]
        ).tocsr()
        proba = self.classifier.predict_proba(matrix)[0]
        levels = np.asarray(self.classifier.classes_, dtype=float)
        index = int(np.clip(np.rint(float(proba @ levels)), 0, len(_ORDER) - 1))
        chosen = np.flatnonzero(self.classifier.classes_ == index)
        return _ORDER[index], float(proba[chosen[0]]) if chosen.size else 0.0


_active: PriorityModel | None = None
_loaded = False


def use_model(model: PriorityModel | None) -> None:
    """Make ``assess_priority`` use this learned model (``TicketModel.load`` calls this)."""
    global _active, _loaded
    _active, _loaded = model, True


def _default_model() -> PriorityModel | None:
    """The shipped priority model, loaded once; rules alone if there is none."""
    global _active, _loaded
    if not _loaded:
        path = Path(__file__).resolve().parents[2] / "model" / "model.joblib"
        loaded = joblib.load(path).get("priority") if path.exists() else None
        _active, _loaded = loaded, True
    return _active


def assess_priority(
    subject: str,
    body: str,
    kind: Kind,
    *,
    vip_sender: bool = False,
    model: PriorityModel | None = None,
) -> tuple[Priority, tuple[str, ...]]:
    """Priority of a ticket and the named signals behind it (``vip_sender``: key person).

    The named signals give the reasons and the rule's verdict; the learned model (``model``, or
    the shipped one) decides, except where a strong explicit signal (security incident in
    progress, whole office down, an alert's severity) overrides it.
    """
    priority, reasons = _rule_priority(subject, body, kind, vip_sender=vip_sender)
    learned = model if model is not None else _default_model()
    if learned is None:
        return priority, reasons
    strong = kind is Kind.ALERT and not reasons[0].startswith("alert without")
    strong = strong or any(reason.split(":")[0] in _OVERRIDES for reason in reasons)
    if strong:
        return priority, reasons
    guess, confidence = learned.predict(subject, body, kind)
    if vip_sender and kind is Kind.INCIDENT:
        guess = min(guess, Priority.P2, key=_ORDER.index)
    if guess is not priority:
        reasons = (*reasons, f"learned model ({confidence:.2f}) → {guess}")
        priority = guess
    return priority, reasons
