"""Email end to end over real SMTP: acknowledged once; duplicates, auto-replies, bounces not;
a reply threads into its ticket."""

import smtplib
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import httpx

from opora_shared.testing.waiting import poll_until


def send(running, msg: EmailMessage) -> str:
    with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=20) as client:
        client.send_message(msg, to_addrs=["support@opora.local"])
        code, _ = client.noop()
        assert code == 250
    return msg["Message-ID"]


def mail(subject, body, sender="anna@romashka.ru", **headers):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@opora.local"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="romashka.ru")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def outbox(running):
    return sorted(running.outbox.glob("*.eml"))


def acks_for(running, message_id):
    """Acknowledgements whose In-Reply-To is this client mail."""
    found = []
    for path in outbox(running):
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        if parsed["In-Reply-To"] == message_id:
            found.append(parsed)
    return found


def ticket(running, ticket_id):
    response = httpx.get(
        f"{running.http}/v1/tickets/{ticket_id}",
        timeout=10,
        headers={"Authorization": f"Bearer {running.admin_token}"},
    )
    assert response.status_code == 200
    return response.json()


class TestEmailChannel:
    def test_request_duplicate_autoreply_bounce_and_reply(self, running):
        first = mail("Не работает принтер", "Принтер в бухгалтерии не печатает, замяло бумагу")
        send(running, first)
        (ack,) = poll_until(
            lambda: acks_for(running, first["Message-ID"]), timeout=15, message="acknowledgement"
        )
        ticket_id = ack["X-Opora-Ticket"]
        assert f"[#{ticket_id}]" in ack["Subject"]
        assert ack["Auto-Submitted"] == "auto-replied"
        assert ack["References"] == first["Message-ID"]

        send(running, first)  # the same message again
        auto = mail(
            f"Автоответ: Re: [#{ticket_id}] Заявка принята",
            "Я в отпуске",
            Auto_Submitted="auto-replied",
            In_Reply_To=ack["Message-ID"],
        )
        send(running, auto)
        bounce = mail(
            "Undelivered Mail Returned to Sender",
            "delivery failed",
            sender="MAILER-DAEMON@romashka.ru",
        )
        send(running, bounce)
        reply = mail(
            f"Re: [#{ticket_id}] Заявка принята",
            "Забыла сказать: модель HP 1020",
            In_Reply_To=ack["Message-ID"],
            References=ack["Message-ID"],
        )
        send(running, reply)

        def replied():
            view = ticket(running, ticket_id)
            changes = [e.get("change") for e in view["events"] if e["type"] == "ticket.updated"]
            return view if "client_replied" in changes else None

        view = poll_until(replied, timeout=15, message="the reply on the ticket")
        changes = [e.get("change") for e in view["events"] if e["type"] == "ticket.updated"]
        assert changes == ["automatic_reply", "client_replied"]
        texts = [e["text"] for e in view["events"] if e.get("change") == "client_replied"]
        assert texts == ["Забыла сказать: модель HP 1020"]
        received = [e for e in view["events"] if e["type"] == "ticket.received"]
        assert len(received) == 1
        # exactly one acknowledgement went out for all of that
        assert len(acks_for(running, first["Message-ID"])) == 1
        assert len(outbox(running)) == len({p.name.split("-")[0] for p in outbox(running)})
