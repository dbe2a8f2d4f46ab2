"""The monthly report as one self-contained HTML file: text, tables and inline SVG charts.

No script, no external resource: it opens offline, prints well, and mail clients show it.
Words come from a small table per language (the tenant's), numbers are formatted here.
"""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from opora_shared.reports.build import MonthlyReport
from opora_shared.vocabulary import Language

WORDS: dict[Language, dict[str, str]] = {
    Language.RU: {
        "title": "Отчёт об обслуживании",
        "month": "Месяц",
        "summary": "Итоги месяца",
        "tickets": "Обращений",
        "resolved": "Решено",
        "open": "В работе",
        "proactive": "Открыто нами по сигналам мониторинга, до звонка",
        "median_response": "Медиана первого ответа",
        "median_resolution": "Медиана решения",
        "per_day": "Обращения по дням",
        "by_category": "По темам",
        "by_scope": "По договору",
        "by_priority": "По приоритету",
        "sla": "Соблюдение SLA",
        "priority": "Приоритет",
        "first_response": "Первый ответ",
        "resolution": "Решение",
        "kept": "в срок",
        "billable": "Работы сверх договора",
        "billable_none": "В этом месяце работ сверх договора не было.",
        "date": "Дата",
        "who": "Кто запросил",
        "what": "Что",
        "decision": "Решение",
        "spent": "Затрачено",
        "approved": "согласовано",
        "declined": "отклонено",
        "pending": "ожидает согласования",
        "prepaid": "Предоплаченный пакет часов",
        "used": "использовано",
        "left": "осталось",
        "overrun": "сверх пакета",
        "min": "мин",
        "h": "ч",
        "generated": "Сформирован",
        "none": "—",
    },
    Language.EN: {
        "title": "Service report",
        "month": "Month",
        "summary": "The month in brief",
        "tickets": "Tickets",
        "resolved": "Resolved",
        "open": "In progress",
        "proactive": "Opened by us from monitoring alerts, before anyone called",
        "median_response": "Median first response",
        "median_resolution": "Median resolution",
        "per_day": "Tickets per day",
        "by_category": "By subject",
        "by_scope": "By contract",
        "by_priority": "By priority",
        "sla": "SLA kept",
        "priority": "Priority",
        "first_response": "First response",
        "resolution": "Resolution",
        "kept": "on time",
        "billable": "Work outside the contract",
        "billable_none": "No work outside the contract this month.",
        "date": "Date",
        "who": "Requested by",
        "what": "What",
        "decision": "Decision",
        "spent": "Time spent",
        "approved": "approved",
        "declined": "declined",
        "pending": "awaiting approval",
        "prepaid": "Prepaid block of hours",
        "used": "used",
        "left": "left",
        "overrun": "beyond the block",
        "min": "min",
        "h": "h",
        "generated": "Generated",
        "none": "—",
    },
}

NAMES: dict[Language, dict[str, str]] = {
    Language.RU: {
        "email": "Почта",
        "printing": "Печать",
        "accounting_software": "1С и учётные программы",
        "workstation": "Рабочие места",
        "network": "Сеть и интернет",
        "accounts_access": "Учётные записи и доступ",
        "server_infra": "Серверы и резервные копии",
        "security": "Безопасность",
        "telephony": "Телефония",
        "monitoring": "Мониторинг",
        "other": "Прочее",
        "included": "входит в договор",
        "billable": "платно, по согласованию",
        "excluded": "не входит в договор",
        "needs_review": "на уточнении",
    },
    Language.EN: {
        "email": "Email",
        "printing": "Printing",
        "accounting_software": "Accounting software",
        "workstation": "Workstations",
        "network": "Network and internet",
        "accounts_access": "Accounts and access",
        "server_infra": "Servers and backups",
        "security": "Security",
        "telephony": "Telephony",
        "monitoring": "Monitoring",
        "other": "Other",
        "included": "covered by the contract",
        "billable": "billable, on approval",
        "excluded": "not covered",
        "needs_review": "under review",
    },
}


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a chart, in SVG units."""

    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


def bars_vertical(data: dict[str, int], *, width: float = 720, height: float = 140) -> list[Bar]:
    """Columns for a series (tickets per day), scaled to the largest value."""
    if not data:
        return []
    top = max(data.values()) or 1
    step = width / len(data)
    return [
        Bar(
            label,
            value,
            x=i * step + step * 0.1,
            y=height - value / top * height,
            width=step * 0.8,
            height=value / top * height,
        )
        for i, (label, value) in enumerate(data.items())
    ]


def bars_horizontal(data: dict[str, int], *, width: float = 360, row: float = 22) -> list[Bar]:
    """Rows for a breakdown (by category...), scaled to the largest value."""
    top = max(data.values(), default=0) or 1
    return [
        Bar(label, value, x=0, y=i * row, width=value / top * width, height=row * 0.7)
        for i, (label, value) in enumerate(data.items())
    ]


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("opora_shared.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "—" if v is None else f"{v:.0%}"
    env.filters["num"] = lambda v, digits=1: "—" if v is None else f"{v:.{digits}f}"
    return env


def render_html(report: MonthlyReport) -> str:
    """The report as a self-contained HTML page in the tenant's language."""
    words = WORDS[report.language]
    names = NAMES[report.language]
    zone = ZoneInfo(report.timezone)

    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%d.%m.%Y %H:%M")

    template = _env().get_template("monthly.html.j2")
    return template.render(
        r=report,
        w=words,
        names=names,
        local=local,
        per_day=bars_vertical(report.per_day),
        by_category=bars_horizontal({names.get(k, k): v for k, v in report.by_category.items()}),
        by_scope=bars_horizontal({names.get(k, k): v for k, v in report.by_scope.items()}),
        by_priority=bars_horizontal(report.by_priority),
    )
