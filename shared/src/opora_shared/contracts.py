"""Tenant contracts as data: who the client is, what is covered, the SLA, hours and escalation.

One YAML file per tenant under ``deploy/contracts/``. Loading validates with pydantic and turns
errors into a ContractError naming the file, the field and the fix. Pure: no network here.
"""

import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from opora_shared.errors import ContractError
from opora_shared.types import UNKNOWN_TENANT, Address, TenantId
from opora_shared.vocabulary import Category, Language, Priority, Scope

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d)\s*$")
_HOURS = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            msg = f"{value!r} is not a duration; write e.g. '15m', '2h' or '3d' (business days)"
            raise ValueError(msg)
        return f"{float(match[1])}{match[2][0]}"
    return value


Duration = Annotated[str, BeforeValidator(_duration)]
"""'15m', '2h' or '3d'; a day is one working day of the contract's calendar."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceCatalogue(_Model):
    """Which categories the contract includes, bills for extra, or excludes; and conditions."""

    included: tuple[Category, ...]
    billable: tuple[Category, ...] = ()
    excluded: tuple[Category, ...] = ()
    conditions: dict[str, Scope] = Field(
        default_factory=dict,
        description="scope of a condition whatever the category: consumables, personal_device, "
        "new_equipment, onsite_out_of_hours, non_it",
    )

    @model_validator(mode="after")
    def _disjoint(self) -> "ServiceCatalogue":
        seen: dict[Category, str] = {}
        for name in ("included", "billable", "excluded"):
            for category in getattr(self, name):
                if category in seen:
                    msg = f"category {category!r} is in both {seen[category]} and {name}; keep one"
                    raise ValueError(msg)
                seen[category] = name
        return self

    def scope_of(self, category: Category) -> Scope:
        """The scope a category has in this catalogue (excluded when not listed)."""
        if category in self.included:
            return Scope.INCLUDED
        if category in self.billable:
            return Scope.BILLABLE
        return Scope.EXCLUDED


class Targets(_Model):
    """One duration per priority."""

    P1: Duration
    P2: Duration
    P3: Duration
    P4: Duration

    def for_priority(self, priority: Priority) -> str:
        """The target for one priority."""
        value: str = getattr(self, priority.value)
        return value


class SlaPolicy(_Model):
    """First-response and resolution targets, which priorities run round the clock, warnings."""

    first_response: Targets
    resolution: Targets
    round_the_clock: tuple[Priority, ...] = ()
    warn_at: float = Field(default=0.8, gt=0, lt=1)


class Calendar(_Model):
    """Business hours: timezone, weekly hours, public holidays and the contract's own days."""

    timezone: str
    hours: dict[Weekday, tuple[str, ...]]
    holidays: str | None = Field(default=None, description="country code for public holidays")
    extra_days_off: tuple[str, ...] = ()
    extra_working_days: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _valid(self) -> "Calendar":
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown timezone {self.timezone!r}; use an IANA name like 'Europe/Moscow'"
            raise ValueError(msg) from None
        for day, intervals in self.hours.items():
            for interval in intervals:
                match = _HOURS.match(interval)
                if not match or (match[1], match[2]) >= (match[3], match[4]):
                    msg = f"hours.{day}: {interval!r} is not 'HH:MM-HH:MM' with start before end"
                    raise ValueError(msg)
        return self

    @property
    def is_24x7(self) -> bool:
        """True when every hour of every day is business time."""
        return all(self.hours.get(day) == ("00:00-24:00",) for day in WEEKDAYS)

    def working_day(self) -> timedelta:
        """Length of the longest working day, what '1d' of a target means."""
        if self.is_24x7:
            return timedelta(hours=24)
        longest = timedelta()
        for intervals in self.hours.values():
            total = timedelta()
            for interval in intervals:
                start, end = interval.split("-")
                h1, m1 = (int(x) for x in start.split(":"))
                h2, m2 = (int(x) for x in end.split(":"))
                total += timedelta(hours=h2 - h1, minutes=m2 - m1)
            longest = max(longest, total)
        return longest


class EscalationLevel(_Model):
    """One step of the escalation chain: when it applies, and who hears."""

    level: int = Field(ge=1)
    when: str = Field(description="assigned, first_response_breach, resolution_breach, p1_breach")
    notify: tuple[Address, ...]


class DigestPolicy(_Model):
    """A daily digest of the tenant's open low-priority tickets, to the team (optional)."""

    at: str = Field(
        default="09:00",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="local time (the contract's timezone) from which the day's digest goes",
    )
    to: Literal["assignees", "lead"] = Field(
        default="assignees",
        description="assignees: each engineer their own tickets (unassigned ones to the lead); "
        "lead: all of them to the team lead",
    )
    priorities: tuple[Priority, ...] = Field(
        default=(Priority.P3, Priority.P4), min_length=1, description="which tickets it lists"
    )
    business_days_only: bool = Field(
        default=True, description="no digest on days the contract's calendar has no hours"
    )


class Contract(_Model):
    """One tenant's contract."""

    tenant: TenantId
    name: str
    language: Language
    domains: tuple[str, ...] = ()
    senders: tuple[Address, ...] = Field(default=(), description="known addresses off-domain")
    vip_senders: tuple[Address, ...] = ()
    services: ServiceCatalogue
    sla: SlaPolicy
    calendar: Calendar
    escalation: tuple[EscalationLevel, ...]
    approver: Address
    prepaid_hours_per_month: float | None = Field(
        default=None, ge=0, description="a prepaid block of billable hours; the report shows use"
    )
    digest: DigestPolicy | None = Field(
        default=None,
        description="a daily digest of open low-priority tickets to the team; absent: none",
    )
    revision: str = Field(default="", description="set on load: hash of the file")

    @model_validator(mode="after")
    def _not_reserved(self) -> "Contract":
        if self.tenant == UNKNOWN_TENANT:
            msg = f"tenant id {UNKNOWN_TENANT!r} is reserved for unmatched senders; pick another"
            raise ValueError(msg)
        return self

    def target(
        self, kind: Literal["first_response", "resolution"], priority: Priority
    ) -> timedelta:
        """A target as a duration: minutes and hours as written, days as working days."""
        text = getattr(self.sla, kind).for_priority(priority)
        amount, unit = float(text[:-1]), text[-1]
        if unit == "m":
            return timedelta(minutes=amount)
        if unit == "h":
            return timedelta(hours=amount)
        day = (
            timedelta(hours=24)
            if priority in self.sla.round_the_clock
            else self.calendar.working_day()
        )
        return day * amount


def describe_errors(error: ValidationError, source: str | Path) -> str:
    """A pydantic error as lines a person can act on: the source, then each field and fix."""
    lines = [f"{source}: {error.error_count()} problem(s)"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  - {field}: {item['msg']}")
    return "\n".join(lines)


def parse_contract(raw: bytes, source: str, *, tenant: str | None = None) -> Contract:
    """Validate one contract's YAML; raise ContractError naming the source and field.

    ``tenant`` is the id the contract must carry (from its file name or KV key).
    """
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        msg = f"{source}: not valid YAML ({exc})"
        raise ContractError(msg) from None
    if not isinstance(data, dict):
        msg = f"{source}: a contract is a mapping of fields (tenant, name, services...)"
        raise ContractError(msg)
    data["revision"] = contract_revision(raw)
    try:
        contract = Contract.model_validate(data)
    except ValidationError as exc:
        raise ContractError(describe_errors(exc, source)) from None
    if tenant is not None and contract.tenant != tenant:
        msg = f"{source}: tenant is {contract.tenant!r}; name the file {contract.tenant}.yml"
        raise ContractError(msg)
    return contract


def contract_revision(raw: bytes) -> str:
    """The revision a classification records: the first 12 hex digits of the text's SHA-256."""
    return hashlib.sha256(raw).hexdigest()[:12]


def load_contract(path: Path) -> Contract:
    """Read and validate one contract file; raise ContractError naming file and field."""
    return parse_contract(path.read_bytes(), str(path), tenant=path.stem)


def contract_files(directory: Path) -> list[Path]:
    """The contract files of a directory (``*.yml``, ``*.yaml``), sorted."""
    if not directory.is_dir():
        msg = f"{directory}: contracts directory not found (set OPORA_CONTRACTS_DIR)"
        raise ContractError(msg)
    return sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])


class ContractBook:
    """All tenants' contracts, and the tenant of a sender's address."""

    def __init__(self, contracts: list[Contract]) -> None:
        self._by_tenant = {c.tenant: c for c in contracts}
        self._by_address: dict[str, str] = {}
        self._by_domain: dict[str, str] = {}
        for contract in contracts:
            for address in (*contract.senders, *contract.vip_senders, contract.approver):
                self._by_address[address] = contract.tenant
            for domain in contract.domains:
                owner = self._by_domain.setdefault(domain.lower(), contract.tenant)
                if owner != contract.tenant:
                    msg = f"domain {domain!r} is claimed by both {owner} and {contract.tenant}"
                    raise ContractError(msg)

    @classmethod
    def from_dir(cls, directory: Path) -> "ContractBook":
        """Load every ``*.yml``/``*.yaml`` contract in a directory."""
        return cls([load_contract(path) for path in contract_files(directory)])

    def __contains__(self, tenant: str) -> bool:
        return tenant in self._by_tenant

    def __iter__(self) -> Iterator[Contract]:
        return iter(self._by_tenant.values())

    def get(self, tenant: str) -> Contract | None:
        """The contract of a tenant, or None (the ``unknown`` tenant has none)."""
        return self._by_tenant.get(tenant)

    def tenant_for(self, address: str) -> str:
        """The tenant a sender belongs to: exact address first, then domain, else unknown."""
        address = address.strip().lower()
        if address in self._by_address:
            return self._by_address[address]
        domain = address.rpartition("@")[2]
        while domain:
            if domain in self._by_domain:
                return self._by_domain[domain]
            domain = domain.partition(".")[2]
        return UNKNOWN_TENANT
