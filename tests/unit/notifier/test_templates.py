"""Every template renders for every trigger, tenant and language, with StrictUndefined.
The notices come from the planner itself (not hand-made contexts), so a variable a template
uses but the planner does not provide fails here, never in a client's mail.
"""

import dataclasses
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address

import pytest
from markupsafe import escape

from opora_notifier.digest import bundles
from opora_notifier.notices import Audience, Medium, Trigger
from opora_notifier.planning import Planner, Reach
from opora_notifier.rendering import BOUNDARY, Renderer, build_email
from opora_shared.contracts import DigestPolicy
from opora_shared.events import Actor
from opora_shared.ticket_index import summarize
from opora_shared.tickets import fold
from opora_shared.vocabulary import Category, Language, Priority, Scope, SlaTarget, TicketChange

SENDER = Address(display_name="Opora Support", addr_spec="support@opora.local")
RENDERER = Renderer()


def every_notice(planner, make_ticket, book, tenant, language, requester):
    """All the notices one tenant's tickets can cause, one ticket per scope and priority."""
    contract = book.get(tenant)
    notices = []
    scopes = [Scope.INCLUDED, Scope.BILLABLE, Scope.EXCLUDED, Scope.NEEDS_REVIEW]
    for number, (scope, priority) in enumerate(
        zip(scopes, [Priority.P1, Priority.P2, Priority.P3, Priority.P4], strict=True), start=1
    ):
        ticket = make_ticket(tenant=tenant, ticket_id=str(number), requester=requester)
        ticket.received().classified(
            scope=scope,
            priority=priority,
            language=language,
            category=Category.ACCOUNTING_SOFTWARE if scope is Scope.BILLABLE else Category.OTHER,
            reasons=(f"consumables is {scope} in X's contract",),
        )
        if contract is None:
            notices += planner.unknown_sender(ticket.facts, ticket.events[-1])
            continue
        notices += planner.armed(ticket.facts, contract, ticket.armed())
        ticket.assigned("maria")
        for target in SlaTarget:
            notices += planner.sla_warning(ticket.facts, contract, ticket.warning(target=target))
            notices += planner.sla_breached(ticket.facts, contract, ticket.breached(target=target))
        notices += planner.escalated(ticket.facts, contract, ticket.escalated())
        for change, text in [
            (TicketChange.REPLIED, "Первая строка\n\nВторая <b>не тег</b>"),
            (TicketChange.WAITING_ON_CLIENT, "Send a screenshot & the error"),
            (TicketChange.RESOLVED, None),
            (TicketChange.RESOLVED, "Fixed"),
            (TicketChange.APPROVED if number % 2 else TicketChange.DECLINED, None),
        ]:
            event = ticket.updated(change, text=text, actor=Actor(kind="engineer", id="maria"))
            notices += planner.updated(ticket.facts, contract, event)
    if contract is not None:
        notices += digest_notices(planner, make_ticket, contract, language)
    return notices


def digest_notices(planner, make_ticket, contract, language):
    """The day's digests: maria's own P3 (breached, with a deadline) and an unassigned P4 for
    the lead (no deadline, no assignee), in the tenant's language."""
    mine = make_ticket(tenant=contract.tenant, ticket_id="501").received()
    mine.classified(priority=Priority.P3, language=language).armed()
    mine.assigned("maria").breached()
    nobodys = make_ticket(tenant=contract.tenant, ticket_id="502", subject="Вопрос <про> & счёт")
    nobodys.received().classified(priority=Priority.P4, language=language)
    summaries = [summarize(fold(t.events), t.events) for t in (mine, nobodys)]
    found = bundles(summaries, DigestPolicy(), planner.team)
    day = date(2026, 11, 27)
    return planner.digest(contract, found, day, datetime(2026, 11, 27, 6, 0, tzinfo=UTC))


@pytest.fixture
def full_planner(team, links):
    return Planner(team=team, reach=Reach(telegram=True, slack=True, webhook=True), links=links)


CASES = [
    ("romashka", Language.RU, "anna@romashka.ru"),
    ("romashka", Language.EN, "anna@romashka.ru"),
    ("vector", Language.EN, "bob@vector-logistics.com"),
    ("vector", Language.RU, "bob@vector-logistics.com"),
    ("unknown", Language.RU, "x@gmail.com"),
    ("unknown", Language.EN, "x@gmail.com"),
]


class TestEveryTemplateRenders:
    @pytest.mark.parametrize(("tenant", "language", "requester"), CASES)
    def test_for_every_trigger_tenant_and_language(
        self, full_planner, make_ticket, book, tenant, language, requester
    ):
        notices = every_notice(full_planner, make_ticket, book, tenant, language, requester)
        assert notices
        for notice in notices:
            for lang in Language:  # team members and outside addresses may read either
                variant = dataclasses.replace(
                    notice, recipient=dataclasses.replace(notice.recipient, language=lang)
                )
                out = RENDERER.render(variant)
                if notice.ticket_id:
                    assert f"[#{notice.ticket_id}]" in out.subject, out.subject
                else:  # the digest: about many tickets, tagged with none
                    assert notice.trigger is Trigger.DIGEST
                    assert "[#" not in out.subject, out.subject
                assert "\n" not in out.subject
                for part in (out.subject, out.text, out.html, out.chat):
                    assert "None" not in part, (notice.trigger, lang, part)
                    assert "{{" not in part
                    assert "{%" not in part
                assert out.text.strip()
                assert out.chat.strip()
                assert out.html.lstrip().startswith("<!DOCTYPE html>")
                assert f'lang="{lang.value}"' in out.html

    def test_the_cases_cover_every_trigger_and_template_file(self, full_planner, make_ticket, book):
        seen = set()
        for tenant, language, requester in CASES:
            for notice in every_notice(
                full_planner, make_ticket, book, tenant, language, requester
            ):
                seen.add(notice.trigger)
        assert seen == set(Trigger)
        shipped = {
            name
            for name in RENDERER.templates()
            if not name.rpartition("/")[2].startswith("_") and "/" in name
        }
        expected = {
            f"{lang.value}/{trigger.value}.{kind}.j2"
            for lang in Language
            for trigger in Trigger
            for kind in ("txt", "html")
        }
        assert shipped == expected


class TestWhatTheyShow:
    def render(self, planner, ticket, contract, method="armed", *args):
        notices = getattr(planner, method)(ticket.facts, contract, *args)
        return [(n, RENDERER.render(n)) for n in notices]

    def test_the_acknowledgement_says_covered_deadline_and_how_to_reply(
        self, planner, ticket, romashka
    ):
        ticket.received().classified()
        ((_notice, out),) = self.render(planner, ticket, romashka, "armed", ticket.armed())
        assert out.subject == "[#1042] Заявка принята: Принтер не печатает"
        assert "Заявка входит в ваш договор обслуживания." in out.text
        assert "Мы ответим до 26.11.2026 12:00 (Europe/Moscow)." in out.text
        assert "Замяло бумагу в принтере на втором этаже" in out.text
        assert "[#1042]" in out.text

    def test_billable_says_why_and_that_the_approver_was_asked(self, planner, make_ticket, vector):
        ticket = make_ticket(tenant="vector", requester="bob@vector-logistics.com", name="Bob")
        ticket.received().classified(
            scope=Scope.BILLABLE,
            language=Language.EN,
            reasons=("new equipment is billable in Vector Logistics's contract",),
        )
        (ack, _), (request, rendered) = self.render(
            planner, ticket, vector, "armed", ticket.armed()
        )
        ack_text = RENDERER.render(ack).text
        assert "billed separately (your contract lists purchase and installation of new" in (
            " ".join(ack_text.split())
        )
        assert "We have asked your company's approver" in ack_text
        assert request.context["approve_url"] in rendered.text
        assert request.context["decline_url"] in rendered.text
        assert rendered.html.count("/v1/approvals/") == 2

    def test_engineers_words_are_escaped_in_html_and_kept_in_text(self, planner, ticket, romashka):
        ticket.received().classified()
        event = ticket.updated(TicketChange.REPLIED, text="Use <script>alert(1)</script> & reboot")
        ((_, out),) = self.render(planner, ticket, romashka, "updated", event)
        assert "Use <script>alert(1)</script> & reboot" in out.text
        assert "<script>" not in out.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; reboot" in out.html
        assert out.subject == "[#1042] Re: [#1042] Принтер не печатает" or out.subject == (
            "Re: [#1042] Принтер не печатает"
        )

    def test_a_subject_full_of_markup_is_escaped_in_the_html_title(
        self, planner, make_ticket, romashka
    ):
        ticket = make_ticket(subject='<img src=x onerror="alert(1)">')
        ticket.received().classified(priority=Priority.P1)
        for _, out in self.render(planner, ticket, romashka, "armed", ticket.armed()):
            assert "<img" not in out.html
            assert "&lt;img" in out.html

    def test_the_page_names_priority_client_and_deadline(self, planner, ticket, romashka):
        ticket.received().classified(priority=Priority.P1)
        _, (_page, out) = self.render(planner, ticket, romashka, "armed", ticket.armed())
        assert out.subject == "[#1042] P1 ООО «Ромашка»: Принтер не печатает"
        assert "до 26.11.2026 12:00 (Europe/Moscow)" in out.text
        assert out.chat.splitlines()[0] == "P1 #1042 ООО «Ромашка»: Принтер не печатает"
        assert "https://support.example.com/tickets/romashka/1042" in out.text


class TestMail:
    def mail(self, notice, **kwargs):
        msg = build_email(
            notice,
            RENDERER.render(notice),
            sender=SENDER,
            message_id="<opora.1042.n@opora.local>",
            now=notice.occurred_at,
            **kwargs,
        )
        return message_from_bytes(msg.as_bytes(policy=policy.SMTP), policy=policy.default)

    def test_the_acknowledgement_is_an_automatic_reply_threaded_under_the_request(
        self, planner, ticket, romashka
    ):
        ticket.received().classified()
        (ack,) = planner.armed(ticket.facts, romashka, ticket.armed())
        mail = self.mail(ack)
        assert mail["Auto-Submitted"] == "auto-replied"
        assert mail["X-Auto-Response-Suppress"] == "All"
        assert mail["In-Reply-To"] == "<client-1@romashka.ru>"
        assert mail["References"] == "<client-1@romashka.ru>"
        assert mail["From"].addresses[0].addr_spec == "support@opora.local"
        assert mail["Reply-To"].addresses[0].addr_spec == "support@opora.local"
        assert mail["To"].addresses[0].display_name == "Анна"
        assert mail.get_content_type() == "multipart/alternative"
        assert "входит в ваш договор" in mail.get_body(("plain",)).get_content()
        assert "<strong>#1042</strong>" in mail.get_body(("html",)).get_content()

    def test_the_parts_are_split_by_the_fixed_boundary_unless_a_part_contains_it(
        self, planner, make_ticket, romashka
    ):
        for subject, fixed in (("Принтер", True), (f"--{BOUNDARY} в тексте", False)):
            ticket = make_ticket(subject=subject)
            ticket.received().classified()
            (ack,) = planner.armed(ticket.facts, romashka, ticket.armed())
            mail = self.mail(ack)
            assert (mail.get_boundary() == BOUNDARY) is fixed
            text, html = (part.get_content() for part in mail.iter_parts())
            assert subject in text
            assert escape(subject) in html

    def test_text_only_when_asked(self, planner, ticket, romashka):
        ticket.received().classified()
        (ack,) = planner.armed(ticket.facts, romashka, ticket.armed())
        mail = self.mail(ack, html=False)
        assert mail.get_content_type() == "text/plain"
        assert "Europe/Moscow" in mail.get_content()

    def test_alerts_are_auto_generated_and_an_engineers_answer_is_not_automatic(
        self, planner, ticket, romashka
    ):
        ticket.received().classified(priority=Priority.P1)
        _, page = planner.armed(ticket.facts, romashka, ticket.armed())
        assert self.mail(page)["Auto-Submitted"] == "auto-generated"
        assert page.recipient.audience is Audience.TEAM
        reply = planner.updated(
            ticket.facts, romashka, ticket.updated(TicketChange.REPLIED, text="Едем")
        )[0]
        mail = self.mail(reply)
        assert mail["Auto-Submitted"] is None
        assert mail["X-Auto-Response-Suppress"] is None
        assert mail["In-Reply-To"].startswith("<opora.1042.")
        assert mail["References"].split()[0] == "<client-1@romashka.ru>"

    def test_every_mail_is_tagged_with_the_ticket(self, planner, ticket, romashka):
        ticket.received().classified(priority=Priority.P2, scope=Scope.EXCLUDED)
        for notice in planner.armed(ticket.facts, romashka, ticket.armed()):
            if notice.recipient.medium is Medium.EMAIL:
                mail = self.mail(notice)
                assert "[#1042]" in mail["Subject"]
                assert mail["X-Opora-Ticket"] == "1042"
