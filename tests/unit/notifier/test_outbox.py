"""The outbox channel: one .eml per notification, client and team mail apart, written once."""

from email import message_from_bytes, policy
from email.headerregistry import Address

from opora_notifier.channels import Outgoing
from opora_notifier.channels.outbox import OutboxChannel
from opora_notifier.rendering import Renderer, build_email

SENDER = Address(display_name="Opora Support", addr_spec="support@opora.local")


def outgoing(notice):
    rendered = Renderer().render(notice)
    mail = build_email(
        notice, rendered, sender=SENDER, message_id="<m@opora.local>", now=notice.occurred_at
    )
    return Outgoing(notice, notice.notification_id, rendered, "<m@opora.local>", mail)


async def never(*_):
    raise AssertionError("the outbox needs no commit: its rename is atomic")


class TestOutbox:
    async def test_writes_once_and_confirms_after_a_crash(
        self, planner, ticket, romashka, tmp_path
    ):
        ticket.received().classified()
        (ack,) = planner.armed(ticket.facts, romashka, ticket.armed())
        out = outgoing(ack)
        channel = OutboxChannel(tmp_path / "outbox")
        assert await channel.confirm(out) is False
        assert await channel.send(out, never) == "<m@opora.local>"
        assert await channel.send(out, never) == "<m@opora.local>"
        assert await channel.confirm(out) is True
        (path,) = (tmp_path / "outbox").glob("*.eml")
        assert path.name == f"1042-{ack.notification_id}.eml"
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert "[#1042]" in parsed["Subject"]
        assert b"\xd0" in path.read_bytes()  # 8bit: readable Cyrillic, not base64

    async def test_team_mail_goes_to_its_own_folder(self, planner, ticket, romashka, tmp_path):
        from opora_shared.vocabulary import Priority

        ticket.received().classified(priority=Priority.P1)
        ack, page = planner.armed(ticket.facts, romashka, ticket.armed())
        channel = OutboxChannel(tmp_path)
        await channel.send(outgoing(ack), never)
        await channel.send(outgoing(page), never)
        assert [p.name for p in tmp_path.glob("*.eml")] == [f"1042-{ack.notification_id}.eml"]
        assert [p.name for p in (tmp_path / "team").glob("*.eml")] == [
            f"1042-{page.notification_id}.eml"
        ]
