"""Priority from impact x urgency signals in a ticket's text (ITIL), in Russian and English. Pure.

Each signal has a name that appears in the ticket's reasons. The rule starts from the kind's
usual priority (an incident P3, a request or question P4, an alert by its severity field);
impact signals (business stopped, the whole office, a server down, a security incident in
progress: P1; a department, a key person, customers or a security risk: P2) raise it; a
deadline raises an incident one level; calm words (no rush, a workaround, a cosmetic issue, a
planned change) lower it; what the contract does not cover (a personal device, a non-IT
request) is P4. A phrase that limits the impact ("only me", "everyone else is fine") cancels the
wide-impact signals. Text is lowercased, ё folded to е, whitespace collapsed.

A learned layer (``opora_classifier.model.PriorityModel``, trained with the category model)
reads these signals and the ticket's words and has the last word, except where an explicit
signal the rules trust (a security incident in progress, an alert's severity) decides. This
module holds the rules and the decision; it does not train anything.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from opora_classifier.conditions import alternation, find_conditions, normalise
from opora_shared.vocabulary import Kind, Priority

_ORDER = (Priority.P1, Priority.P2, Priority.P3, Priority.P4)
_LEVEL = {p: i for i, p in enumerate(_ORDER)}


@dataclass(frozen=True, slots=True)
class Signal:
    """A named phrase family and the priority it implies (``level``) or a shift (``step``)."""

    name: str
    pattern: re.Pattern[str]
    level: Priority | None = None
    step: int = 0


def _re(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + alternation(phrases) + ")")


_PEOPLE = (
    r"(?:people|users|staff|agents|dispatchers|drivers|clerks|colleagues|employees|managers|"
    r"accountants|operators|pickers|человек|сотрудник\w*|пользовател\w*|менеджер\w*|"
    r"бухгалтер\w*|оператор\w*|кладовщик\w*|водител\w*|кассир\w*|коллег\w*)"
)
_COUNT = (
    r"(?:\d+|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|several|many|"
    r"multiple|двое|трое|четверо|пятеро|шестеро|два|две|три|четыре|пять|шесть|семь|восемь|"
    r"десять|несколько|много)"
)

# --- Alerts: the severity field first, then what the alert says ---------------------------------

_SEVERITY_FIELD = re.compile(
    r"(?:severity|серьезность|важность|критичность|уровень|level|priority|приоритет|urgency|"
    r"status|state|статус|состояние)\s*[:=]\s*\"?([a-zа-я0-9]+)"
)
_SEVERITY_WORDS: dict[str, Priority] = {
    "disaster": Priority.P1,
    "emergency": Priority.P1,
    "чрезвычайная": Priority.P1,
    "чрезвычайный": Priority.P1,
    "critical": Priority.P2,
    "критическая": Priority.P2,
    "критический": Priority.P2,
    "критическое": Priority.P2,
    "high": Priority.P2,
    "высокая": Priority.P2,
    "высокий": Priority.P2,
    "error": Priority.P2,
    "ошибка": Priority.P2,
    "major": Priority.P2,
    "failed": Priority.P2,
    "down": Priority.P2,
    "sev0": Priority.P2,
    "sev1": Priority.P2,
    "p1": Priority.P1,
    "p2": Priority.P2,
    "warning": Priority.P3,
    "warn": Priority.P3,
    "caution": Priority.P3,
    "sev2": Priority.P3,
    "p3": Priority.P3,
    "предупреждение": Priority.P3,
    "average": Priority.P3,
    "средняя": Priority.P3,
    "средний": Priority.P3,
    "minor": Priority.P3,
    "medium": Priority.P3,
    "sev3": Priority.P4,
    "sev4": Priority.P4,
    "p4": Priority.P4,
    "info": Priority.P4,
    "information": Priority.P4,
    "informational": Priority.P4,
    "информация": Priority.P4,
    "сведения": Priority.P4,
    "низкая": Priority.P4,
    "низкий": Priority.P4,
    "low": Priority.P4,
    "none": Priority.P4,
    "success": Priority.P4,
    "ok": Priority.P4,
    "up": Priority.P4,
    "resolved": Priority.P4,
}

ALERT_SIGNALS: tuple[Signal, ...] = (
    Signal(
        "alert_resolved",
        _re(
            r"\[resolved\]",
            "resolved:",
            "problem has been resolved",
            "решено:",
            "проблема решена",
            r"\[success\]",
            "status: success",
            "completed successfully",
            "recovered",
            "восстановлено",
            "работа от сети",
            r"\[✅ up\]",
            "is up",
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
            "state: down",
            "host unreachable",
            "nodedown",
            "недоступен по icmp",
            "not responding",
            "connection lost",
            "outbreak",
            "эпидеми",
            "ransom",
            "low battery",
            "низкий заряд",
            "shutdown imminent",
            "initiated shutdown",
            "shutdown initiated",
            "инициировано отключение",
            "graceful shutdown",
            "disk space is critically low",
            "нет свободного места",
            "free disk space is 0",
        ),
        Priority.P1,
    ),
    Signal(
        "alert_critical",
        _re(
            "critical",
            "критическ",
            "высокая",
            "status: failed",
            r"\[failed\]",
            "on battery",
            "питание от батаре",
            "degraded",
            "деградирован",
            "tunnel down",
            "expired",
            "failed logon",
            "неудачных попыток",
            "недоступен",
            "unreachable",
            "is down",
            r"\bdown\b",
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
            "almostoutofspace",
            "мало свободного",
            "latency",
            "high memory",
            "high cpu",
        ),
        Priority.P3,
    ),
    Signal(
        "alert_info",
        _re(
            "severity = info",
            "severity: info",
            "informational",
            "информация",
            "сведения",
            "низкая",
            "severity=none",
            "expires in",
            "истекает через",
            "recommended",
        ),
        Priority.P4,
    ),
)

# --- People's text: impact, strongest first -----------------------------------------------------

IMPACT_SIGNALS: tuple[Signal, ...] = (
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
            r"оплатил[аи]? [^.]{0,40}(?:на чужой|по новым реквизитам|на новый счет)",
            r"(?:already )?paid [^.]{0,40}(?:to the new|new account|new bank)",
            r"money (?:was |has been )?(?:sent|wired|transferred)",
            "перевели деньги",
            "teamviewer",
            "anydesk",
            "remote control",
            "управляет (?:моим )?компьютером",
            "курсор (?:сам|двигается)",
            r"mouse (?:is )?moving (?:by|on) its own",
            "сидит в (?:моей )?почте",
            r"ввел[аи]? (?:свой |мой )?(?:логин и )?пароль",
            r"(?:typed|entered|put) (?:in )?(?:my|our|his|her) (?:password|credentials)",
            "threatened",
            "угрожа",
            "грозится",
            "wipe everything",
            "всё удалить",
            "все удалить",
            "still on site",
            "еще в здании",
        ),
        Priority.P1,
    ),
    Signal(
        "whole_office_down",
        _re(
            "весь офис",
            "всего офиса",
            "во всем офисе",
            "всему офису",
            r"у всех(?! есть| работает| нормально| в порядке)",
            "ни у кого",
            "ни у одного",
            r"никто не (?:может|работает|можем)",
            "все сотрудники",
            "всех сотрудник",
            "вся компания",
            "всей компании",
            "вся сеть",
            "whole office",
            "entire office",
            "all offices",
            "whole company",
            "entire company",
            "company-wide",
            "across the company",
            r"everyone(?! else)(?: in the office)? (?:is |can't|cannot|has|lost|gets)",
            r"nobody (?:can|in the office)",
            "no one can",
            "all users",
            "all staff",
            "office down",
            "none of (?:our|the) (?:pcs|computers|users|staff|phones)",
        ),
        Priority.P1,
    ),
    Signal(
        "business_stopped",
        _re(
            "не можем (?:отгрузить|работать|принимать|выставить|отгружать)",
            "работа (?:всей компании )?стоит",
            "все стоит",
            "всё стоит",
            "стоим",
            r"(?:склад|производство|отгрузк[аи]|линия|магазин|касс[аы]) (?:стоит|остановлен|встал)",
            r"остановлен[аоы]?(?! на)",
            "прием заказов",
            "отгрузка остановлена",
            r"(?:can't|cannot|can not) (?:ship|dispatch|load|invoice|trade|operate)",
            r"trucks? (?:are |is )?waiting",
            r"drivers (?:are )?waiting",
            "operations (?:halted|stopped)",
            r"(?:dispatch|shipping|receiving|warehouse) (?:is |has )?(?:down|stopped|halted)",
            "business is down",
            "line is stopped",
            "stopped shipping",
            r"nothing (?:is )?(?:moving|shipping|going out)",
            r"(?:все|всё) встало",
            "ничего не отгружаем",
        ),
        Priority.P1,
    ),
    Signal(
        "server_down",
        _re(
            r"сервер\w* (?:1с |1c )?(?:не отвечает|упал|недоступен|лежит|не загружается|"
            r"не запускается|выключился)",
            r"(?:server|host|esxi|hypervisor|wms|erp|tms|domain controller)\w* (?:is |has )?"
            r"(?:down|not responding|unreachable|crashed|won't boot)",
            "server (?:went|has gone) down",
            "no logon servers",
            "нет доступных серверов",
            r"(?:all|все) (?:vms|виртуальн\w*|базы)",
        ),
        Priority.P1,
    ),
    Signal(
        "department_blocked",
        _re(
            "весь отдел",
            "всего отдела",
            "всему отделу",
            "всей бухгалтери",
            "вся бухгалтерия",
            "бухгалтерия не может",
            "весь склад",
            "у отдела",
            r"отдел\w* (?:продаж|закупок|доставки|логистики) (?:не может|стоит|без)",
            r"(?:the )?(?:whole|entire|all of) (?:the )?(?:\w+ )?"
            r"(?:team|department|floor|shift|depot|warehouse)",
            r"(?:billing|customs|dispatch|finance|sales|accounts|warehouse|customer service|"
            r"night shift)(?: team)? (?:can't|cannot|is blocked|are blocked)",
            "department",
            "several users",
            "many users",
            "multiple users",
            rf"{_COUNT} {_PEOPLE}",
            "колл-центр",
            "call center",
        ),
        Priority.P2,
    ),
    Signal(
        "key_person",
        _re(
            r"директор(?!ии)\w*",
            r"гендиректор\w*",
            r"главн\w* бухгалтер\w*",
            "главбух",
            "ceo",
            "cfo",
            "coo",
            "managing director",
            r"the md\b",
            "owner",
            "president",
            "vp ",
            "payroll manager",
            "financial controller",
        ),
        Priority.P2,
    ),
    Signal(
        "customers_affected",
        _re(
            r"клиент\w* (?:не могут|жалуются|звонят|ждут|не получают)",
            "теряем (?:заказы|клиентов|деньги)",
            "источник клиентов",
            "поток заказов",
            r"customers? (?:can't|cannot|are complaining|keep calling|are waiting|get)",
            "losing (?:orders|customers|money|business)",
            "customer-facing",
            "штраф",
            "penalt",
            "fined",
        ),
        Priority.P2,
    ),
    Signal(
        "security_risk",
        _re(
            "взлом",
            "hacked",
            "украл",
            "украден",
            "stolen",
            "потерял[аи]? (?:служебный|рабочий|ноутбук|телефон)",
            r"lost (?:my |the |a |his |her )?(?:work |company )?(?:laptop|phone)",
            "утечк",
            "leak",
            "скопировал",
            "пароль был изменен",
            "password was changed",
            "sign-in from",
            "вход (?:в вашу|с незнаком)",
            "подозрительный вход",
            "suspicious (?:login|sign-in|activity)",
            "от меня (?:пришло|рассыла)",
            "from me",
            "рассылает спам",
            "sending spam",
            "fake invoice",
            "поддельн",
            "новыми реквизитами",
            "new bank details",
            "перешел по ссылке",
            "перешла по ссылке",
            "нажал[аи]? на ссылку",
            "clicked (?:a|the|on)",
            "вирус",
            "virus",
            "malware",
            "infected",
            "заражен",
        ),
        Priority.P2,
    ),
)

# Limits the impact: one user, the others are fine. Cancels the wide-impact signals.
ONLY_ME = Signal(
    "only_one_user",
    _re(
        r"у (?:всех|остальных|коллег|соседей) (?:есть|работает|нормально|все нормально|в порядке)",
        "только у меня",
        "только на моем",
        "у меня одного",
        "у меня одной",
        "остальные работают",
        "у других работает",
        r"everyone else(?: is)? (?:fine|ok|okay|works|can)",
        r"(?:others|the others|other people|colleagues) (?:are fine|can|have it|work)",
        "only me",
        "only mine",
        "just me",
        "just my",
        "only my",
    ),
)

URGENCY = Signal(
    "deadline_today",
    _re(
        "сегодня",
        "срочно",
        "срочн",
        "немедленно",
        "прямо сейчас",
        "горит",
        r"через (?:\d+|пару|полчаса|час)",
        r"до \d{1,2}[:.]\d\d",
        r"до \d{1,2} (?:часов|утра)",
        "urgent",
        "asap",
        "right now",
        "immediately",
        "today",
        "tonight",
        r"in (?:\d+|an|half an) (?:minutes?|hours?|hour)",
        r"by \d{1,2}(?::\d\d)? ?(?:am|pm)",
        r"before \d{1,2}(?::\d\d)? ?(?:am|pm)",
        "отчетност",
        r"сдач[аи] ",
        "последний день",
        "зарплат",
        "payroll",
        "payday",
        "month-end",
        "month end",
        "deadline",
        "дедлайн",
        "совещани",
        "встреч",
        "board (?:call|meeting)",
        "meeting",
        "презентац",
        "presentation",
    ),
    step=-1,
)

CALM_SIGNALS: tuple[Signal, ...] = (
    Signal(
        "cosmetic",
        _re(
            "мелочь",
            "не критично",
            "некритично",
            "просто неудобно",
            "неудобно",
            "не мешает",
            "не страшно",
            "cosmetic",
            "not a big deal",
            "no big deal",
            "just messy",
            "minor",
            "annoying",
            "not critical",
            "a bit",
            "slightly",
        ),
        Priority.P4,
    ),
    Signal(
        "not_urgent",
        _re(
            "не срочно",
            "несрочно",
            "когда будет время",
            "когда удобно",
            "когда сможете",
            "не горит",
            "по возможности",
            "в течение недели",
            "до конца (?:недели|месяца)",
            "заранее",
            "not urgent",
            "no rush",
            "no hurry",
            "when you have time",
            "when you get a chance",
            "whenever",
            "within the week",
            "next (?:week|month|quarter)",
            "на следующей неделе",
            "в следующ",
            "с понедельника",
            "с 1 числа",
            "from monday",
            "starting on",
            "until then",
            "in the meantime",
        ),
        step=1,
    ),
    Signal(
        "workaround_exists",
        _re(
            "пока работа[юе]",
            "работаем через",
            "работаю через",
            "можно работать",
            "работать можно",
            "вручную",
            "руками",
            "взял[аи]? другую",
            "workaround",
            "for now",
            "by hand",
            "manually",
            "still works",
            "still working",
            "we can still",
            "using (?:owa|webmail|the web)",
            "работает, но",
        ),
        step=1,
    ),
    Signal(
        "planned_change",
        _re(
            "хотим",
            "хотелось бы",
            "планово",
            "планируем",
            "запланир",
            "подберите",
            "оцените",
            "сколько стоит",
            "сколько будет стоить",
            "коммерческое предложение",
            r"\bкп\b",
            "we'd like",
            "we would like",
            "we want",
            "we're planning",
            "planning to",
            "quote",
            "how much",
            "can we get",
            "could we get",
            "would it be possible",
            "is it possible",
            "можно ли",
        ),
        step=1,
    ),
)

_PEOPLE_SIGNALS: tuple[Signal, ...] = (*IMPACT_SIGNALS, ONLY_ME, URGENCY, *CALM_SIGNALS)
ALL_SIGNALS: tuple[Signal, ...] = (*ALERT_SIGNALS, *_PEOPLE_SIGNALS)
_WIDE = frozenset({"whole_office_down", "department_blocked"})
STRONG_SIGNALS = frozenset({"security_incident_in_progress"})
_NOT_COVERED = ("personal_device", "non_it")


def find_signals(subject: str, body: str, kind: Kind | None = None) -> dict[str, str]:
    """Every signal found in a ticket, by name, with the phrase that fired (first occurrence).

    With a ``kind``, only the families that apply: an alert's severity, or a person's impact,
    urgency and calm words.
    """
    text = normalise(f"{subject}. {body}")
    if kind is None:
        families: tuple[Signal, ...] = ALL_SIGNALS
    elif kind is Kind.ALERT:
        families = ALERT_SIGNALS
    else:
        families = _PEOPLE_SIGNALS
    found: dict[str, str] = {}
    for signal in families:
        match = signal.pattern.search(text)
        if match:
            found[signal.name] = match.group(0).strip()
    if kind is not Kind.ALERT:
        # What the contract does not cover (a personal device, a non-IT request) is low priority.
        for name, phrase in find_conditions(text).items():
            if name in _NOT_COVERED:
                found[f"not_covered_{name}"] = phrase
    if kind is None or kind is Kind.ALERT:
        severity = _SEVERITY_FIELD.search(text)
        if severity and severity.group(1) in _SEVERITY_WORDS:
            found["alert_severity_field"] = severity.group(1)
    return found


def _shift(priority: Priority, step: int, *, floor: Priority = Priority.P1) -> Priority:
    index = min(max(_LEVEL[priority] + step, _LEVEL[floor]), len(_ORDER) - 1)
    return _ORDER[index]


def _alert_priority(found: Mapping[str, str]) -> tuple[Priority, tuple[str, ...]]:
    if "alert_resolved" in found:
        return Priority.P4, (f"alert_resolved: '{found['alert_resolved']}' → P4",)
    if "alert_disaster" in found:
        return Priority.P1, (f"alert_disaster: '{found['alert_disaster']}' → P1",)
    field = found.get("alert_severity_field")
    if field is not None:
        level = _SEVERITY_WORDS[field]
        return level, (f"alert severity '{field}' → {level}",)
    for signal in ALERT_SIGNALS[2:]:
        if signal.name in found and signal.level is not None:
            return signal.level, (f"{signal.name}: '{found[signal.name]}' → {signal.level}",)
    return Priority.P3, ("alert without severity → P3",)


def rule_priority(
    kind: Kind, found: Mapping[str, str], *, vip_sender: bool = False
) -> tuple[Priority, tuple[str, ...]]:
    """The rules alone: priority from the named signals found in a ticket, and the reasons."""
    if kind is Kind.ALERT:
        return _alert_priority(found)
    incident = kind is Kind.INCIDENT
    base = Priority.P3 if incident else Priority.P4
    priority = base
    reasons = [f"{kind} → {base}"]
    limited = "only_one_user" in found
    impact: Priority | None = None
    for signal in IMPACT_SIGNALS:
        if signal.name not in found or signal.level is None:
            continue
        if limited and signal.name in _WIDE:
            continue
        if signal.name == "key_person" and not incident:
            continue
        level = signal.level
        if not incident and signal.name != "security_incident_in_progress":
            # A request or question about the whole office is wide, not broken.
            level = _shift(level, 1)
        reasons.append(f"{signal.name}: '{found[signal.name]}' → {level}")
        impact = level
        break
    if limited:
        reasons.append(f"only_one_user: '{found['only_one_user']}'")
    if vip_sender and incident and (impact is None or _LEVEL[impact] > _LEVEL[Priority.P2]):
        reasons.append(f"vip_sender → {Priority.P2}")
        impact = Priority.P2
    if impact is not None:
        priority = min(priority, impact, key=_LEVEL.__getitem__)
    else:
        for name in _NOT_COVERED:
            if f"not_covered_{name}" in found:
                reasons.append(f"not_covered_{name}: '{found[f'not_covered_{name}']}' → P4")
                return Priority.P4, tuple(reasons)
    if incident and "deadline_today" in found and priority is not Priority.P1:
        priority = _shift(priority, -1, floor=Priority.P2)
        reasons.append(f"deadline_today: '{found['deadline_today']}' → {priority}")
    elif impact is None:
        for signal in CALM_SIGNALS:
            if signal.name in found:
                priority = (
                    Priority.P4 if signal.level is not None else _shift(priority, signal.step)
                )
                reasons.append(f"{signal.name}: '{found[signal.name]}' → {priority}")
                break
    return priority, tuple(reasons)


def signal_tokens(kind: Kind, found: Mapping[str, str], rule: Priority) -> list[str]:
    """The learned layer's readable features: kind, each signal (alone and by kind), the rule."""
    tokens = [f"kind:{kind}", f"rule:{rule}", f"rule:{rule}|{kind}"]
    for name in found:
        tokens += [f"sig:{name}", f"sig:{name}|{kind}"]
    if "alert_severity_field" in found:
        tokens.append(f"severity:{found['alert_severity_field']}")
    return tokens


class LearnedPriority(Protocol):
    """What ``assess_priority`` needs of a learned layer (``model.PriorityModel`` is one)."""

    def predict(
        self, subject: str, body: str, kind: Kind, tokens: list[str]
    ) -> tuple[Priority, float]:
        """The learned priority of a ticket and its probability."""
        ...


_active: LearnedPriority | None = None
_loaded = False


def use_model(model: LearnedPriority | None) -> None:
    """Make ``assess_priority`` use this learned layer (``TicketModel.load`` calls this)."""
    global _active, _loaded
    _active, _loaded = model, True


def _default_model() -> LearnedPriority | None:
    """The shipped model's learned layer, loaded once; the rules alone if there is none."""
    if not _loaded:
        # Imported here, not at the top: model.py imports this module for the signals.
        from opora_classifier.model import TicketModel

        directory = Path(__file__).resolve().parents[2] / "model"
        if (directory / "model.joblib").exists():
            TicketModel.load(directory)  # calls use_model
        else:
            use_model(None)
    return _active


def assess_priority(
    subject: str,
    body: str,
    kind: Kind,
    *,
    vip_sender: bool = False,
    model: LearnedPriority | None = None,
) -> tuple[Priority, tuple[str, ...]]:
    """Priority of a ticket and the named signals behind it (``vip_sender``: key person).

    The named signals give the reasons and the rule's verdict; the learned layer (``model``, or
    the shipped one) decides, except where an explicit signal the rules trust (a security
    incident in progress, an alert's severity) settles it. A VIP sender's incident stays at P2
    or above whatever the learned layer says.
    """
    found = find_signals(subject, body, kind)
    priority, reasons = rule_priority(kind, found, vip_sender=vip_sender)
    learned = model if model is not None else _default_model()
    if learned is None:
        return priority, reasons
    # An alert's severity is the tool's own judgement; cross-validation found the learned layer
    # no better at alerts, and the rule stays right for tools the corpus has never seen.
    strong = kind is Kind.ALERT and not reasons[0].startswith("alert without")
    strong = strong or any(reason.split(":")[0] in STRONG_SIGNALS for reason in reasons)
    if strong:
        return priority, reasons
    guess, confidence = learned.predict(subject, body, kind, signal_tokens(kind, found, priority))
    if vip_sender and kind is Kind.INCIDENT:
        guess = min(guess, Priority.P2, key=_LEVEL.__getitem__)
    if guess is not priority:
        reasons = (*reasons, f"learned model ({confidence:.0%}) → {guess}")
        priority = guess
    return priority, reasons
