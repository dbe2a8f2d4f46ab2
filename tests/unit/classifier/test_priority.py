"""Priority from named impact and urgency signals, and the learned layer's place."""

import pytest

from opora_classifier.conditions import alternation
from opora_classifier.priority import (
    assess_priority,
    find_signals,
    rule_priority,
    signal_tokens,
)
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
        ("[FIRING:1] X", "severity = critical", Kind.ALERT, Priority.P2, "alert severity"),
        ("Проблема", "Важность: Чрезвычайная", Kind.ALERT, Priority.P1, "alert_disaster"),
        ("[RESOLVED] X", "severity = warning", Kind.ALERT, Priority.P4, "alert_resolved"),
        ("Disk", "severity = warning, disk 85%", Kind.ALERT, Priority.P3, "alert severity"),
        ("Backup", "Backup job: Daily\nStatus: Success", Kind.ALERT, Priority.P4, "alert"),
        (
            "Nagios",
            "Notification Type: PROBLEM\nHost: srv-erp01\nState: DOWN",
            Kind.ALERT,
            Priority.P1,
            "alert_disaster",
        ),
    ],
)
def test_named_signals(
    subject: str, body: str, kind: Kind, priority: Priority, signal: str
) -> None:
    got, reasons = assess_priority(subject, body, kind)
    assert got == priority, reasons
    assert any(signal in reason for reason in reasons)


class TestRules:
    def test_everyone_else_fine_is_one_user_not_the_whole_office(self) -> None:
        found = find_signals("No network", "My PC has no internet. Everyone else is fine.")
        got, reasons = rule_priority(Kind.INCIDENT, found)
        assert got == Priority.P3
        assert "only_one_user" in found
        assert not any("whole_office_down" in reason for reason in reasons)

    def test_numbers_of_people_block_a_department(self) -> None:
        found = find_signals("Терминалы", "Пять кладовщиков не могут работать")
        assert rule_priority(Kind.INCIDENT, found)[0] == Priority.P2

    def test_beeps_are_not_people(self) -> None:
        found = find_signals("PC", "PC gives three long beeps at startup and no display.")
        assert "department_blocked" not in found

    def test_a_request_for_the_whole_office_is_wide_not_broken(self) -> None:
        found = find_signals("Подписи", "Сделайте единую подпись для всех сотрудников.")
        assert rule_priority(Kind.REQUEST, found)[0] == Priority.P2
        assert rule_priority(Kind.INCIDENT, found)[0] == Priority.P1

    def test_cosmetic_incident_is_p4(self) -> None:
        found = find_signals("Emails", "Every email arrives twice. Not a big deal, just messy.")
        assert rule_priority(Kind.INCIDENT, found)[0] == Priority.P4

    def test_a_deadline_raises_an_incident_one_level(self) -> None:
        found = find_signals("Printer", "The printer jams and the report is due today.")
        assert rule_priority(Kind.INCIDENT, found)[0] == Priority.P2

    def test_vip_sender_raises_an_incident_to_p2(self) -> None:
        got, reasons = rule_priority(Kind.INCIDENT, {}, vip_sender=True)
        assert got == Priority.P2
        assert any("vip_sender" in reason for reason in reasons)

    def test_alert_severity_field_wins_over_loose_words(self) -> None:
        found = find_signals("[FIRING:1] HighMemoryUsage", "severity = warning", Kind.ALERT)
        assert rule_priority(Kind.ALERT, found)[0] == Priority.P3

    def test_signals_by_kind_skip_other_families(self) -> None:
        text = ("[RESOLVED] Printer", "Весь офис без принтера. severity = info")
        assert "whole_office_down" not in find_signals(*text, Kind.ALERT)
        assert "alert_resolved" not in find_signals(*text, Kind.INCIDENT)
        both = find_signals(*text)
        assert {"whole_office_down", "alert_resolved"} <= set(both)

    def test_tokens_name_the_kind_the_signals_and_the_rule(self) -> None:
        found = {"deadline_today": "today"}
        tokens = signal_tokens(Kind.INCIDENT, found, Priority.P2)
        assert "sig:deadline_today|incident" in tokens
        assert "rule:P2" in tokens
        assert "kind:incident" in tokens


def test_alternation_matches_the_same_phrases() -> None:
    import re

    phrases = ["принтер", "печат", "print(?!er)", "printer", "[cс]:", "ac(?!\\w)"]
    factored = re.compile(f"(?:{alternation(phrases)})")
    plain = re.compile("(?:" + "|".join(phrases) + ")")
    for text in ["принтер печатает", "printer print", "диск c: полный", "ac access", "nothing"]:
        assert factored.findall(text) == plain.findall(text)


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
    got, reasons = rule_priority(Kind.QUESTION, find_signals("Как", "Как добавить подпись?"))
    assert got == Priority.P4
    assert reasons == ("question → P4",)
