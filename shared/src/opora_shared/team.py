"""The provider's team as data: engineers, their skills and shifts, on-duty, lead, manager.

One YAML file (``deploy/team.yml`` in the embedded default, the brief's team). Routing picks
an assignee from it; the notifier finds who to alert; the intake recognises team senders.
Validated like contracts: errors name the file, the field and the fix. Pure.
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opora_shared.contracts import Calendar, contract_revision, describe_errors
from opora_shared.errors import ContractError
from opora_shared.types import Address
from opora_shared.vocabulary import Category, Language


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChatHandles(_Model):
    """Where a person reads chat alerts, and who they are when they press its buttons.

    Each is optional. ``telegram_chat_id`` and ``slack_channel`` say where alerts go; the user
    ids say whose button presses act as this person (``docs/engineer-actions.md``).
    """

    telegram_chat_id: str | None = None
    slack_channel: str | None = Field(default=None, description="a Slack/Mattermost channel")
    telegram_user_id: str | None = Field(
        default=None,
        pattern=r"^[1-9][0-9]{0,19}$",
        description="their Telegram user id (a number, quoted): the bot's buttons act as them",
    )
    telegram_username: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_]{3,31}$",
        description="their Telegram username without @; used only when the user id is not set "
        "(a username can change hands, an id cannot)",
    )
    slack_user_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9]{1,40}$",
        description="their Slack (U024BE7LH) or Mattermost (26 characters) user id: their "
        "button presses act as them",
    )


class Engineer(_Model):
    """One person of the provider who can take tickets."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="short name: maria")
    email: Address
    name: str | None = None
    language: Language = Language.RU
    skills: tuple[Category, ...] = Field(default=(), description="categories they can take")
    shift: str = Field(description="a key of ``shifts``")
    max_open: int = Field(default=20, ge=1, description="most open tickets they should carry")
    chat: ChatHandles = ChatHandles()


class TeamGroup(_Model):
    """A team that owns some categories."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    categories: tuple[Category, ...]


class Person(_Model):
    """A team lead or account manager: alerted, not assigned."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    email: Address
    name: str | None = None
    language: Language = Language.RU
    chat: ChatHandles = ChatHandles()


class Team(_Model):
    """The provider's whole team."""

    shifts: dict[str, Calendar] = Field(description="named working calendars")
    teams: tuple[TeamGroup, ...]
    engineers: tuple[Engineer, ...]
    on_duty: str = Field(description="id of the engineer on duty round the clock")
    lead: Person
    account_manager: Person
    revision: str = Field(default="", description="set on load: hash of the file")

    @model_validator(mode="after")
    def _consistent(self) -> "Team":
        ids = [e.id for e in self.engineers]
        if len(set(ids)) != len(ids):
            msg = "engineers: two engineers share an id; ids must be unique"
            raise ValueError(msg)
        for engineer in self.engineers:
            if engineer.shift not in self.shifts:
                msg = (
                    f"engineers.{engineer.id}.shift: {engineer.shift!r} is not a shift; "
                    f"use one of {sorted(self.shifts)}"
                )
                raise ValueError(msg)
        if self.on_duty not in ids:
            msg = f"on_duty: {self.on_duty!r} is not an engineer id; use one of {sorted(ids)}"
            raise ValueError(msg)
        for handle in ("telegram_user_id", "telegram_username", "slack_user_id"):
            holders: dict[str, str] = {}
            for person in self.members():
                value = getattr(person.chat, handle)
                if value is None:
                    continue
                key = value.lower()
                if key in holders:
                    msg = f"chat.{handle}: {holders[key]} and {person.id} share {value!r}"
                    raise ValueError(msg)
                holders[key] = person.id
        owned: dict[Category, str] = {}
        for group in self.teams:
            for category in group.categories:
                if category in owned:
                    msg = f"teams: {category} is owned by both {owned[category]} and {group.id}"
                    raise ValueError(msg)
                owned[category] = group.id
        return self

    def engineer(self, engineer_id: str) -> Engineer | None:
        """An engineer by id, or None."""
        return next((e for e in self.engineers if e.id == engineer_id), None)

    def duty(self) -> Engineer:
        """The on-duty engineer."""
        engineer = self.engineer(self.on_duty)
        assert engineer is not None  # noqa: S101 - checked by the validator
        return engineer

    def team_for(self, category: Category) -> str | None:
        """The id of the team that owns a category, or None."""
        return next((g.id for g in self.teams if category in g.categories), None)

    def members(self) -> list[Engineer | Person]:
        """Everyone who may act on tickets: the engineers, the lead and the account manager."""
        return [*self.engineers, self.lead, self.account_manager]

    def member_by_email(self, address: str) -> Engineer | Person | None:
        """The engineer, lead or manager with this address (case-insensitive), or None."""
        address = address.strip().lower()
        for person in self.members():
            if person.email.lower() == address:
                return person
        return None

    def member_by_telegram(
        self, user_id: int | str, username: str | None = None
    ) -> Engineer | Person | None:
        """The member with this Telegram user id; else, for members without an id, the
        username (case-insensitive, without @); else None."""
        wanted = str(user_id)
        for person in self.members():
            if person.chat.telegram_user_id == wanted:
                return person
        name = (username or "").lstrip("@").lower()
        if not name:
            return None
        for person in self.members():
            chat = person.chat
            if chat.telegram_user_id is None and (chat.telegram_username or "").lower() == name:
                return person
        return None

    def member_by_slack(self, user_id: str) -> Engineer | Person | None:
        """The member with this Slack or Mattermost user id (case-insensitive), or None."""
        wanted = user_id.strip().lower()
        if not wanted:
            return None
        for person in self.members():
            if (person.chat.slack_user_id or "").lower() == wanted:
                return person
        return None


def parse_team(text: str | bytes, source: str) -> Team:
    """Validate a team file's YAML text; raise ContractError naming the source and field."""
    raw = text.encode() if isinstance(text, str) else text
    try:
        data: Any = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        msg = f"{source}: not valid YAML ({exc})"
        raise ContractError(msg) from None
    if not isinstance(data, dict):
        msg = f"{source}: a team file is a mapping (shifts, teams, engineers, on_duty...)"
        raise ContractError(msg)
    data["revision"] = contract_revision(raw)
    try:
        return Team.model_validate(data)
    except ValidationError as exc:
        raise ContractError(describe_errors(exc, source)) from None


def load_team(path: Path) -> Team:
    """Read and validate a team file."""
    if not path.is_file():
        msg = f"{path}: team file not found (set OPORA_TEAM_FILE)"
        raise ContractError(msg)
    return parse_team(path.read_bytes(), str(path))
