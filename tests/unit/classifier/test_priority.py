"""Priority from named impact and urgency signals."""

import pytest

from opora_classifier.priority import _rule_priority, assess_priority
from opora_shared.vocabulary import Kind, Priority


@pytest.mark.parametrize(
    ("subject", "body", "kind", "priority", "signal"),
    [
        (
            "Интернет",
            "Нет интернета во всём офисе, весь офис стоит!",
            Kind.INCIDENT,
            Priority.P1,
            "whole_office_down",
        ),
        (
            "WMS",
            "WMS is down, trucks are waiting at the dock.",
            Kind.INCIDENT,
            Priority.P1,
            "business_stopped",
        ),
        (
            "Файлы",
            "Все файлы на диске зашифрованы, требуют выкуп.",
            Kind.INCIDENT,
            Priority.P1,
            "security_incident_in_progress",
        ),
        (
            "Outlook",
            "У всего отдела продаж не работает почта.",
            Kind.INCIDENT,
            Priority.P2,
            "department_blocked",
        ),
        (
            "Принтер",
            "Принтер не печатает, а сегодня сдаём отчётность.",
            Kind.INCIDENT,
            Priority.P2,
            "deadline_today",
        ),
        ("Мышка", "Мышка плохо работает, взял другую.", Kind.INCIDENT, Priority.P3, "incident"),
        ("Как", "Как добавить подпись в Outlook?", Kind.QUESTION, Priority.P4, "question"),
        ("[FIRING:1] X", "severity = critical", Kind.ALERT, Priority.P2, "alert_critical"),
        ("Проблема", "Важность: Чрезвычайная", Kind.ALERT, Priority.P1, "alert_disaster"),
        ("[RESOLVED] X", "severity = warning", Kind.ALERT, Priority.P4, "alert_resolved"),
        ("Disk", "severity = warning, disk 85%", Kind.ALERT, Priority.P3, "alert_warning"),
    ],
)
def test_named_signals(
    subject: str, body: str, kind: Kind, priority: Priority, signal: str
) -> None:
    got, reasons = assess_priority(subject, body, kind)
    assert got == priority, reasons
    assert any(signal in reason for reason in reasons)


def test_vip_sender_raises_an_incident() -> None:
    got, reasons = assess_priority("Outlook", "Outlook freezes", Kind.INCIDENT, vip_sender=True)
    assert got == Priority.P2
    assert any("vip_sender" in reason for reason in reasons)


def test_strong_signal_overrides_the_learned_model() -> None:
    got, reasons = assess_priority(
        "Файлы", "Все файлы зашифрованы, на рабочем столе записка о выкупе.", Kind.INCIDENT
    )
    assert got == Priority.P1
    assert any("security_incident_in_progress" in reason for reason in reasons)
    assert not any("learned model" in reason for reason in reasons)


def test_rules_alone_without_a_model() -> None:
    got, reasons = _rule_priority("Как", "Как добавить подпись в Outlook?", Kind.QUESTION)
    assert got == Priority.P4
    assert reasons == ("question → P4",)
