"""Priority from impact x urgency signals in a ticket's text (ITIL), in Russian and English. Pure.

Each signal has a name that appears in the ticket's reasons. The start is the kind's usual
priority (an incident P3, a request or question P4, an alert by its severity words); impact
signals (whole office, many users, business stopped, server down, security incident in
progress) raise it to P1 or P2, urgency signals (today, urgent, trucks waiting, a key person
or the reporting day) raise it one level, and calm words (planned, when you have time)
lower it. Text is lowercased with ё folded to е before matching.
"""

import re
from dataclasses import dataclass

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


def assess_priority(
    subject: str, body: str, kind: Kind, *, vip_sender: bool = False
) -> tuple[Priority, tuple[str, ...]]:
    """Priority of a ticket and the named signals behind it (``vip_sender``: key person)."""
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
