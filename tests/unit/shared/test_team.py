"""The team file's chat handles: who a chat user is, and the mistakes the loader refuses."""

from pathlib import Path

import pytest
import yaml

from opora_shared.errors import ContractError
from opora_shared.team import load_team, parse_team

TEAM = Path(__file__).resolve().parents[3] / "deploy" / "team.yml"


@pytest.fixture(scope="module")
def team():
    return load_team(TEAM)


def with_chat(**chats: dict) -> bytes:
    """The demo team with these people's chat handles replaced."""
    data = yaml.safe_load(TEAM.read_text(encoding="utf-8"))
    for person in [*data["engineers"], data["lead"], data["account_manager"]]:
        if person["id"] in chats:
            person["chat"] = chats[person["id"]]
    return yaml.safe_dump(data, allow_unicode=True).encode()


class TestTelegramUsers:
    def test_the_user_id_names_the_member(self, team):
        assert team.member_by_telegram(700000001).id == "maria"
        assert team.member_by_telegram("700000001", "someone_else").id == "maria"

    def test_a_username_counts_only_for_members_without_an_id(self, team):
        assert team.member_by_telegram(1, "Opora_Duty").id == "duty"
        assert team.member_by_telegram(1, "@opora_duty").id == "duty"
        assert team.member_by_telegram(1, None) is None
        assert team.member_by_telegram(1, "maria") is None

    def test_a_username_does_not_stand_in_for_a_member_who_has_an_id(self):
        team = parse_team(
            with_chat(maria={"telegram_user_id": "42", "telegram_username": "maria_k"}), "t"
        )
        assert team.member_by_telegram(7, "maria_k") is None
        assert team.member_by_telegram(42).id == "maria"


class TestSlackUsers:
    def test_slack_or_mattermost_ids_name_engineers_and_the_lead(self, team):
        assert team.member_by_slack("U07MARIA01").id == "maria"
        assert team.member_by_slack("8X1M9KQ3NFGY7P4JZ6R2W5TCAE").id == "lead"
        assert team.member_by_slack("U0STRANGER") is None
        assert team.member_by_slack("") is None


class TestRefused:
    def test_two_people_with_one_handle(self):
        with pytest.raises(ContractError, match=r"chat.slack_user_id: maria and duty share 'u1'"):
            parse_team(with_chat(maria={"slack_user_id": "U1"}, duty={"slack_user_id": "u1"}), "t")

    @pytest.mark.parametrize(
        "chat",
        [
            {"telegram_user_id": "@maria"},
            {"telegram_user_id": 700000001},  # unquoted: YAML makes it a number
            {"telegram_username": "ab"},
            {"slack_user_id": "U 1"},
            {"skype": "maria"},
        ],
    )
    def test_malformed_handles_name_the_field(self, chat):
        with pytest.raises(ContractError, match="chat"):
            parse_team(with_chat(maria=chat), "t")
