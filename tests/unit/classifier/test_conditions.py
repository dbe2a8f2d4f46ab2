"""Contract conditions detected from text, with the phrase that fired."""

import pytest

from opora_classifier.conditions import detect_conditions


@pytest.mark.parametrize(
    ("subject", "body", "category", "condition"),
    [
        ("Тонер", "Закончился тонер, закажите два картриджа.", "printing", "consumables"),
        ("Paper", "Please order 5 boxes of A4 paper.", "printing", "consumables"),
        ("Почта на телефоне", "Настройте почту на мой личный телефон.", "email", "personal_device"),
        (
            "Son's laptop",
            "Could you look at my son's laptop? Full of pop-ups.",
            "workstation",
            "personal_device",
        ),
        (
            "Новый ноутбук",
            "Купите новый ноутбук для бухгалтера и настройте.",
            "workstation",
            "new_equipment",
        ),
        ("Monitor", "Could I get a second monitor for my desk?", "workstation", "new_equipment"),
        (
            "Сервер",
            "Приезжайте в субботу перенести сервер в новую стойку.",
            "server_infra",
            "onsite_out_of_hours",
        ),
        (
            "Firewall",
            "Can an engineer be on site on Sunday to swap the firewall?",
            "network",
            "onsite_out_of_hours",
        ),
        ("Кондиционер", "Не работает кондиционер в кабинете директора.", "other", "non_it"),
        ("Cleaning", "The kitchen was not cleaned, please tell the cleaners.", "other", "non_it"),
    ],
)
def test_condition_detected_with_reason(
    subject: str, body: str, category: str, condition: str
) -> None:
    found, reasons = detect_conditions(subject, body, category=category)
    assert condition in found
    assert any(condition in reason for reason in reasons)


@pytest.mark.parametrize(
    ("subject", "body", "category"),
    [
        ("Принтер", "Принтер замял бумагу и не печатает.", "printing"),
        ("Printer offline", "The printer in dispatch shows offline.", "printing"),
        ("Пароль", "Не могу войти, пароль не подходит.", "accounts_access"),
        ("Keyboard", "My keyboard stopped working.", "workstation"),
    ],
)
def test_plain_tickets_have_no_conditions(subject: str, body: str, category: str) -> None:
    assert detect_conditions(subject, body, category=category) == ((), ())


def test_non_it_needs_the_other_category() -> None:
    assert detect_conditions("Chair", "my chair broke", category="workstation")[0] == ()
