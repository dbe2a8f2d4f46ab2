"""Contract conditions from a ticket's text: consumables, personal devices, new equipment,
on-site work out of hours, non-IT requests. Pure.

A condition overrides the category's scope in a contract (``services.conditions``), so each one
is detected by named phrases in Russian and English and reported with the phrase that fired.
Stems are matched at a word start on lowercased text with ё folded to е.
"""

import functools
import re
from collections.abc import Sequence

CONSUMABLES = "consumables"
PERSONAL_DEVICE = "personal_device"
NEW_EQUIPMENT = "new_equipment"
ONSITE_OUT_OF_HOURS = "onsite_out_of_hours"
NON_IT = "non_it"
CONDITIONS = (CONSUMABLES, PERSONAL_DEVICE, NEW_EQUIPMENT, ONSITE_OUT_OF_HOURS, NON_IT)


def alternation(phrases: Sequence[str]) -> str:
    """The phrases as one regex alternation, factored by first letter (same matches, faster).

    Python's regex engine tries the branches of an alternation one by one at every position;
    a branch that starts with a literal is rejected on its first character. Grouping phrases
    under their first letter ("п(?:ринтер|ечат)") turns a hundred checks per position into a
    few dozen. Order within a letter is kept, so earlier (longer) phrases still win.
    """
    groups: dict[str, list[str]] = {}
    rest: list[str] = []
    for phrase in phrases:
        if len(phrase) > 1 and phrase[0].isalnum() and phrase[1] not in "?*+{|":
            groups.setdefault(phrase[0], []).append(phrase[1:])
        else:
            rest.append(phrase)
    return "|".join([f"{first}(?:{'|'.join(tails)})" for first, tails in groups.items()] + rest)


def _any(*stems: str) -> str:
    return "(?:" + alternation(stems) + ")"


_W = r"(?<!\w)"
_NEAR = r"[^.!?\n]{0,60}?"  # within the same sentence, a few words apart

_CONSUMABLE_ITEM = _any(
    "тонер",
    "картридж",
    "фотобарабан",
    "барабан",
    "бумаг",
    "отработанного тонера",
    "этикет",
    "термоэтикет",
    "заправк",
    "лент",
    "toner",
    "cartridge",
    "drum",
    "paper",
    "waste toner",
    "label roll",
    "labels",
    "ink",
    "чернил",
)
_BUY = _any(
    "купи",
    "покуп",
    "закаж",
    "заказ",
    "закуп",
    "выставьте",
    "нужн",
    "счет",
    "брать",
    "order",
    "buy",
    "purchase",
    "need",
    "get ",
    "bill",
    "replace",
    "замен",
    "run out",
    "ran out",
    "out of",
    "закончил",
    "заканчива",
    "which",
    "какой",
    "какую",
)
_PERSONAL = _any(
    "личн",
    "мой домашн",
    "моем домашн",
    "моего домашн",
    "домашн",
    "свой",
    "своем",
    "своего",
    "своей",
    "своих",
    "мой",
    "моем",
    "не рабоч",
    "не корпоративн",
    "personal",
    "my own",
    "my home",
    "home",
    "private",
    "not a work",
    "not a company",
)
_DEVICE = _any(
    "телефон",
    "смартфон",
    "айфон",
    "iphone",
    "android",
    "андроид",
    "samsung",
    "ноутбук",
    "ноут",
    "компьютер",
    "пк",
    "планшет",
    "ipad",
    "принтер",
    "роутер",
    "macbook",
    "устройств",
    "phone",
    "laptop",
    "computer",
    "pc",
    "tablet",
    "printer",
    "router",
    "device",
    "mac",
)
_PERSONAL_STRONG = _any(
    "сына",
    "сыну",
    "дочк",
    "дочер",
    "жены",
    "мужа",
    "ребенк",
    "для дома",
    "домой",
    "дома [^.]{0,30}мой",
    "не рабочий",
    "не корпоративный",
    "my son",
    "my daughter",
    "my kid",
    "my wife",
    "my husband",
    "for home",
    "not a work",
    "not a company",
)
_NEW = _any(
    "нов(?:ый|ое|ую|ые|ых) (?:мфу|принтер|ноутбук|компьютер|пк|монитор|сервер|телефон|ибп)",
    "втор(?:ой|ое|ую) (?:мфу|принтер|ноутбук|монитор)",
    "купите",
    "купить",
    "закупить",
    "подберите",
    "приобрест",
    "поставьте",
    "replacement",
    "replacements",
    "quote",
    "оцените",
    "new (?:laptop|pc|computer|mfp|printer|monitor|server|phone|tablet|ups|firewall)",
    "second (?:monitor|label printer|printer|mfp|screen)",
    "another (?:monitor|laptop|pc)",
    "buy",
    "purchase",
    "order (?:a|an|some|one|two|three|four|\\d+) ",
    "get an? ",
    "would like (?:a|an|\\d+|three|four) ",
    "want (?:a|an|\\d+|three|four) ",
    "хотим (?:в|купить|второе|новый)",
    "нужен (?:ещ|нов|втор)",
    "нужна (?:нов|втор)",
    "нужно (?:нов|втор)",
    "replaced with the new",
    "замен[аи]ть [^.]{0,30}на новые",
)
_EQUIPMENT = _any(
    "мфу",
    "принтер",
    "ноутбук",
    "компьютер",
    "пк",
    "монитор",
    "сервер",
    "телефон",
    "ибп",
    "гарнитур",
    "дисковод",
    "сканер",
    "планшет",
    "роутер",
    "коммутатор",
    "точк",
    "mfp",
    "printer",
    "laptop",
    "pc",
    "computer",
    "monitor",
    "server",
    "phone",
    "ups",
    "headset",
    "scanner",
    "tablet",
    "router",
    "switch",
    "access point",
    "firewall",
    "drive",
    "webcam",
    "камер",
    "copier",
    "screen",
    "docking",
    "док",
    "трубк",
    "handset",
    "nas",
    "хранилищ",
    "диск",
    "access point",
    "lamp",
    "ламп",
    "ipad",
    "internet line",
)
_OUT_OF_HOURS = _any(
    "в субботу",
    "в воскресенье",
    "на выходн",
    "выходные",
    "ночью",
    "ночь",
    "вечером",
    "после 1[89]",
    "после 2[0-3]",
    "после 18:00",
    "после 19:00",
    "в нерабочее",
    "суббот",
    "on saturday",
    "on sunday",
    "saturday",
    "sunday",
    "weekend",
    "at night",
    "overnight",
    "after hours",
    "after 6pm",
    "after 7pm",
    "after 8pm",
    "after 9pm",
    "in the evening",
    "tonight",
    "out of hours",
    "when the office is closed",
    "night",
    "\\d+ ?pm",
)
_ONSITE = _any(
    "приед",
    "подъех",
    "выезд",
    "на месте",
    "инженер",
    "перенест",
    "перевез",
    "переезд",
    "переезжа",
    "переносим",
    "заменить",
    "обновить",
    "отключить",
    "on site",
    "onsite",
    "on-site",
    "come ",
    "engineer",
    "someone",
    "move",
    "swap",
    "replace",
    "install",
    "shut down",
    "be here",
    "visit",
)
_NON_IT = _any(
    "кофемашин",
    "кофе",
    "уборк",
    "уборщиц",
    "клининг",
    "мебел",
    "стол(?:а|ов|ы)? ",
    "стул",
    "кресл",
    "кондиционер",
    "ключ(?:и|а)? от",
    "ключ ",
    "лифт",
    "отоплени",
    "батаре(?:и|я) ",
    "тарака",
    "дезинсекц",
    "такси",
    "парковк",
    "парковочн",
    "кулер",
    "бутыл",
    "доставка воды",
    "холодильник",
    "чайник",
    "ламп",
    "жалюзи",
    "замок",
    "потол",
    "электрик",
    "автомобил",
    "машину",
    "шредер",
    "повесить",
    "курьер",
    "пропуск",
    "микроволнов",
    "туалет",
    "сантехн",
    "охранник",
    "мастера",
    "coffee",
    "cleaning",
    "cleaner",
    "furniture",
    "desk ",
    "chair",
    "air condition",
    "\\bac\\b",
    "keys",
    "lift",
    "elevator",
    "heating",
    "radiator",
    "pest",
    "taxi",
    "cab ",
    "parking",
    "water cooler",
    "water delivery",
    "fridge",
    "kettle",
    "light bulb",
    "bulb",
    "blinds",
    "door lock",
    "ceiling",
    "leak from",
    "shredder",
    "forklift",
    "visitor",
    "badge",
    "courier",
    "microwave",
    "toilet",
    "plumb",
    "vending",
    "pallet jack",
    "dock door",
    "roller door",
    "mounted on the wall",
    "book a car",
    "electrician",
)

_RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    (
        CONSUMABLES,
        "consumable item to buy",
        re.compile(f"{_W}{_BUY}{_NEAR}{_W}{_CONSUMABLE_ITEM}|{_W}{_CONSUMABLE_ITEM}{_NEAR}{_BUY}"),
    ),
    (
        PERSONAL_DEVICE,
        "personal device",
        re.compile(
            f"{_W}{_PERSONAL_STRONG}|{_W}{_PERSONAL}(?:[^.!?\\n]{{0,25}}?){_W}{_DEVICE}"
            f"|{_W}{_DEVICE}(?:[^.!?\\n]{{0,25}}?){_W}{_PERSONAL}"
        ),
    ),
    (
        NEW_EQUIPMENT,
        "new equipment",
        re.compile(f"{_W}{_NEW}{_NEAR}{_W}{_EQUIPMENT}|{_W}{_EQUIPMENT}{_NEAR}{_W}{_NEW}"),
    ),
    (
        ONSITE_OUT_OF_HOURS,
        "on-site work out of hours",
        re.compile(f"{_W}{_OUT_OF_HOURS}{_NEAR}{_ONSITE}|{_W}{_ONSITE}{_NEAR}{_OUT_OF_HOURS}"),
    ),
    (NON_IT, "not IT", re.compile(f"{_W}{_NON_IT}")),
)
_LABELS = {name: label for name, label, _ in _RULES}
_NEW_EQUIPMENT_VETO = re.compile(
    f"{_W}{_any('тонер', 'картридж', 'бумаг', 'toner', 'cartridge', 'paper', 'drum', 'барабан')}"
)


def normalise(text: str) -> str:
    """Lowercase, ё folded to е, whitespace collapsed: the form every rule here reads."""
    return " ".join(text.lower().replace("ё", "е").split())


@functools.lru_cache(maxsize=16)
def _matches(text: str) -> tuple[tuple[str, str], ...]:
    """Every rule that matches a normalised text, with its phrase, before any narrowing.

    Cached: the priority signals and the scope step read the same ticket's text.
    """
    found = [(name, m.group(0).strip()) for name, _, p in _RULES if (m := p.search(text))]
    if _NEW_EQUIPMENT_VETO.search(text):
        found.append(("_veto", ""))
    return tuple(found)


def find_conditions(text: str, *, category: str | None = None) -> dict[str, str]:
    """The conditions an already normalised text meets, each with the phrase that fired."""
    matches = dict(_matches(text))
    found: dict[str, str] = {}
    for name in CONDITIONS:
        if name not in matches:
            continue
        if name == CONSUMABLES and category not in (None, "printing"):
            continue
        if name == NON_IT and category not in (None, "other"):
            continue
        if name == NEW_EQUIPMENT and (CONSUMABLES in found or "_veto" in matches):
            continue
        found[name] = matches[name]
    return found


def detect_conditions(
    subject: str, body: str, *, category: str | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The contract conditions a ticket meets, and one reason per condition naming the phrase.

    ``category`` (from the model) narrows two rules: consumables only for printing, and non-IT
    only when the model also says ``other`` (a "new office chair" ticket, not a "keyboard").
    """
    found = find_conditions(normalise(f"{subject}. {body}"), category=category)
    return tuple(found), tuple(
        f"'{phrase}' → {_LABELS[name]} ({name})" for name, phrase in found.items()
    )


def conditions_of(subject: str, body: str, *, category: str | None = None) -> tuple[str, ...]:
    """Just the conditions, without reasons."""
    return detect_conditions(subject, body, category=category)[0]


def first_condition(found: Sequence[str], contract_conditions: Sequence[str]) -> str | None:
    """The first detected condition the contract has a rule for, in the fixed order above."""
    for name in CONDITIONS:
        if name in found and name in contract_conditions:
            return name
    return None
