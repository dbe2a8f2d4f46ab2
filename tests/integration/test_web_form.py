"""The web form and the status page against a real nats-server, over real HTTP."""

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from opora_intake.adapters.attachments import AttachmentStore
from opora_intake.app import create_app
from opora_intake.settings import IntakeSettings
from opora_shared.events import (
    Actor,
    SlaArmed,
    TicketAssigned,
    TicketReceived,
    TicketUpdated,
)
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.nats.server import free_port
from opora_shared.status_links import StatusLinks
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
from opora_shared.vocabulary import Priority, Scope, TicketChange

RU = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}
SECRET_NOTE = "внутренняя заметка: у клиента просрочен счёт"
ENGINEER = "maria@opora.local"


@pytest.fixture
async def intake(nats_url, tmp_path) -> AsyncIterator[tuple[str, object, IntakeSettings]]:
    """The intake app over real HTTP on a free port, with small limits for the size tests."""
    settings = IntakeSettings(
        nats_url=nats_url,
        http_port=free_port(),
        smtp_port=0,
        var_dir=tmp_path,
        max_json_bytes=64 * 1024,
        max_attachment_bytes=100 * 1024,
        max_attachments_bytes=150 * 1024,
        web_max_body_bytes=300 * 1024,
        web_max_files=3,
    )
    app = create_app(settings, registry=CollectorRegistry())
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=settings.http_port, log_config=None, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started:
            break
        await asyncio.sleep(0.025)
    assert server.started, "intake did not start"
    yield f"http://127.0.0.1:{settings.http_port}", app, settings
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


async def fresh_form(http: httpx.AsyncClient, **headers: str) -> dict[str, str]:
    """The hidden fields of a freshly rendered form."""
    page = await http.get("/", headers=headers)
    assert page.status_code == 200
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
    assert set(hidden) == {"lang", "idempotency_key", "form_token"}
    return hidden


def fields(hidden: dict[str, str], **overrides: str) -> dict[str, str]:
    data = {
        **hidden,
        "name": "Анна Петрова",
        "email": "anna@romashka.ru",
        "subject": "Не печатает принтер в бухгалтерии",
        "description": "Замяло бумагу, на экране ошибка E-23.\nПерезагрузка не помогла.",
    }
    data.update(overrides)
    return data


def ticket_number(page: str) -> str:
    match = re.search(r"<h1>(?:Заявка|Ticket) #(\d+) (?:принята|received)</h1>", page)
    assert match, page
    return match.group(1)


def status_href(page: str) -> str:
    match = re.search(r'href="(status/[^"]+)"', page)
    assert match, page
    return "/" + match.group(1)


class TestFormPage:
    async def test_the_form_is_served_in_the_browsers_language(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            ru = await http.get("/", headers=RU)
            en = await http.get("/?lang=en", headers=RU)
            css = await http.get("/static/web.css")
        assert ru.status_code == en.status_code == 200
        assert ru.headers["content-type"].startswith("text/html")
        assert '<html lang="ru">' in ru.text
        assert "Новая заявка" in ru.text
        assert '<html lang="en">' in en.text
        assert ru.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in ru.headers["content-security-policy"]
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")

    async def test_openapi_ui_still_works_and_lists_no_html_routes(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            docs = await http.get("/docs")
            openapi = (await http.get("/openapi.json")).json()
        assert docs.status_code == 200
        assert "/" not in openapi["paths"]
        assert not any(path.startswith("/status") for path in openapi["paths"])
        assert "/v1/tickets" in openapi["paths"]


class TestSubmit:
    async def test_a_ticket_with_an_attachment_is_stored_and_numbered(self, intake, js):
        base, _, _ = intake
        screenshot = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await fresh_form(http, **RU)
            response = await http.post(
                "/",
                data=fields(hidden),
                files=[
                    ("attachments", ("C:\\Users\\anna\\ошибка.png", screenshot, "image/png")),
                    ("attachments", ("notes.txt", b"E-23 again", "text/plain")),
                ],
            )
        assert response.status_code == 200, response.text
        assert '<html lang="ru">' in response.text
        ticket_id = ticket_number(response.text)
        assert "Мы ответим на anna@romashka.ru" in response.text
        assert "Файлов приложено: 2." in response.text
        assert "Что дальше" in response.text
        assert response.headers["referrer-policy"] == "no-referrer"

        events = await ticket_events(js, ticket_id, tenant="romashka")
        received = [e for e in events if isinstance(e, TicketReceived)]
        assert len(received) == 1
        event = received[0]
        assert event.channel == "web"
        assert event.requester.email == "anna@romashka.ru"
        assert event.requester.name == "Анна Петрова"
        assert event.subject == "Не печатает принтер в бухгалтерии"
        assert event.body.startswith("Замяло бумагу")
        assert event.source_ref == f"webform:{hidden['idempotency_key']}"
        assert [(a.filename, a.content_type, a.size) for a in event.attachments] == [
            ("ошибка.png", "image/png", len(screenshot)),
            ("notes.txt", "text/plain", 10),
        ]
        store = AttachmentStore(js)
        assert await store.get(event.attachments[0].object_name) == screenshot
        assert event.attachments[0].object_name.startswith(f"{ticket_id}/")

    async def test_an_unknown_sender_still_gets_a_ticket(self, intake, js):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await fresh_form(http)
            response = await http.post("/", data=fields(hidden, email="someone@gmail.com"))
        assert response.status_code == 200
        ticket_id = ticket_number(response.text)
        events = await ticket_events(js, ticket_id, tenant="unknown")
        assert any(isinstance(e, TicketReceived) for e in events)

    async def test_a_double_submit_makes_one_ticket(self, intake, js):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await fresh_form(http, **RU)
            first, second = await asyncio.gather(
                http.post("/", data=fields(hidden)), http.post("/", data=fields(hidden))
            )
            third = await http.post("/", data=fields(hidden))
        assert first.status_code == second.status_code == third.status_code == 200
        numbers = {ticket_number(r.text) for r in (first, second, third)}
        assert len(numbers) == 1
        assert "вторая заявка не создана" in third.text
        events = await ticket_events(js, numbers.pop())
        assert sum(isinstance(e, TicketReceived) for e in events) == 1

    async def test_another_render_makes_another_ticket(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            one = await http.post("/", data=fields(await fresh_form(http)))
            two = await http.post("/", data=fields(await fresh_form(http)))
        assert ticket_number(one.text) != ticket_number(two.text)


class TestRefused:
    async def test_errors_re_render_the_form_with_values_and_a_message_per_field(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await fresh_form(http, **RU)
            response = await http.post(
                "/", data=fields(hidden, name="", email="anna(at)romashka", subject="  ")
            )
        assert response.status_code == 422
        page = response.text
        assert "<title>Ошибка: " in page
        assert 'role="alert"' in page
        assert '<a href="#name">Укажите ваше имя</a>' in page
        assert '<a href="#email">Адрес почты должен быть вида name@example.ru</a>' in page
        assert '<a href="#subject">Укажите тему</a>' in page
        assert 'value="anna(at)romashka"' in page
        assert "Перезагрузка не помогла." in page
        # the same render's idempotency key: fixing the form makes the ticket
        assert f'value="{hidden["idempotency_key"]}"' in page

    async def test_a_fixed_form_then_goes_through(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await fresh_form(http)
            refused = await http.post("/", data=fields(hidden, email="nope"))
            again = dict(
                re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', refused.text)
            )
            accepted = await http.post("/", data=fields(again))
        assert refused.status_code == 422
        assert accepted.status_code == 200
        ticket_number(accepted.text)

    @pytest.mark.parametrize(
        "tamper",
        [
            {"form_token": "forged"},
            {"form_token": ""},
            {"idempotency_key": str(uuid.uuid4())},
            {"idempotency_key": "../../etc"},
        ],
    )
    async def test_a_form_without_a_valid_token_is_refused_keeping_the_values(self, intake, tamper):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await fresh_form(http, **RU)
            response = await http.post("/", data={**fields(hidden), **tamper})
        assert response.status_code == 400
        assert "Форма устарела" in response.text
        assert "Не печатает принтер в бухгалтерии" in response.text
        assert "Заявка #" not in response.text

    async def test_a_cross_site_post_is_refused(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await fresh_form(http)
            response = await http.post(
                "/", data=fields(hidden), headers={"Sec-Fetch-Site": "cross-site"}
            )
        assert response.status_code == 403
        assert "Ticket #" not in response.text

    async def test_a_file_over_its_limit_is_413_with_the_form_saying_which(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await fresh_form(http, **RU)
            response = await http.post(
                "/",
                data=fields(hidden),
                files=[("attachments", ("большой.zip", b"z" * (101 * 1024), "application/zip"))],
            )
        assert response.status_code == 413
        assert "Файл «большой.zip» больше 100 КБ" in response.text
        assert 'id="attachments-error"' in response.text
        assert "Не печатает принтер в бухгалтерии" in response.text

    async def test_too_many_files_is_422(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await fresh_form(http)
            files = [("attachments", (f"{i}.txt", b"x", "text/plain")) for i in range(4)]
            response = await http.post("/?lang=en", data=fields(hidden), files=files)
        assert response.status_code == 422
        assert "Attach at most 3 files" in response.text

    async def test_a_body_over_the_limit_is_a_413_page(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await fresh_form(http)
            response = await http.post(
                "/?lang=en",
                data=fields(hidden),
                files=[("attachments", ("huge.bin", b"h" * (400 * 1024), "application/zip"))],
            )
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("text/html")
        assert "larger than 300 KB" in response.text

    async def test_a_malformed_body_is_a_400_page_not_a_500(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.post(
                "/",
                content=b"--xx\r\nnonsense",
                headers={"Content-Type": "multipart/form-data"},
            )
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")

    async def test_a_json_body_is_a_form_with_errors(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.post("/", json={"from": "anna@romashka.ru"})
        assert response.status_code in (400, 422)
        assert response.headers["content-type"].startswith("text/html")

    async def test_the_api_keeps_its_own_json_limit(self, intake):
        base, _, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.post("/v1/tickets", content=b"x" * (70 * 1024))
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"


async def submit(http: httpx.AsyncClient, **overrides: str) -> tuple[str, str]:
    """A ticket through the form: its number and its status path."""
    response = await http.post("/", data=fields(await fresh_form(http), **overrides))
    assert response.status_code == 200, response.text
    return ticket_number(response.text), status_href(response.text)


class TestStatusPage:
    async def test_status_verdict_deadlines_and_public_updates_only(self, intake, js):
        base, app, _ = intake
        broker = app.state.runtime.broker
        async with httpx.AsyncClient(base_url=base) as http:
            ticket_id, path = await submit(http)
            received = next(
                e
                for e in await ticket_events(js, ticket_id, tenant="romashka")
                if isinstance(e, TicketReceived)
            )
            at = received.occurred_at
            envelope = {"tenant": "romashka", "ticket_id": ticket_id}
            for event in (
                make_ticket_classified(
                    **envelope, occurred_at=at + timedelta(seconds=1), scope=Scope.BILLABLE
                ),
                SlaArmed(
                    **envelope,
                    event_id=uuid.uuid4(),
                    occurred_at=at + timedelta(seconds=2),
                    priority=Priority.P3,
                    first_response_due=at + timedelta(hours=2),
                    resolution_due=at + timedelta(days=3),
                    timezone="Europe/Moscow",
                ),
                TicketAssigned(
                    **envelope,
                    event_id=uuid.uuid4(),
                    occurred_at=at + timedelta(seconds=3),
                    assignee="maria",
                    assignee_email=ENGINEER,
                    priority=Priority.P3,
                    rule="skill_least_load",
                ),
                TicketUpdated(
                    **envelope,
                    event_id=uuid.uuid4(),
                    occurred_at=at + timedelta(seconds=4),
                    change=TicketChange.NOTE,
                    actor=Actor(kind="engineer", id="maria"),
                    text=SECRET_NOTE,
                ),
                TicketUpdated(
                    **envelope,
                    event_id=uuid.uuid4(),
                    occurred_at=at + timedelta(seconds=5),
                    change=TicketChange.REPLIED,
                    actor=Actor(kind="engineer", id="maria"),
                    text="Подойду в 15:00, оставьте принтер включённым",
                ),
            ):
                await publish_event(broker, event)
            page = await http.get(path, headers={"Accept-Language": "en"})
            english = await http.get(path + "?lang=en")
        assert page.status_code == 200
        text = page.text
        assert '<html lang="ru">' in text  # the contract's language, not the browser's
        assert f"<h1>Заявка #{ticket_id}</h1>" in text
        assert "Не печатает принтер в бухгалтерии" in text
        assert "В работе" in text
        assert "Оплачивается отдельно: ждём согласия ответственного лица вашей компании" in text
        assert "Europe/Moscow" in text
        assert "Назначен инженер" in text
        assert "Подойду в 15:00, оставьте принтер включённым" in text
        assert SECRET_NOTE not in text
        assert ENGINEER not in text
        assert "maria" not in text
        assert "anna@romashka.ru" not in text
        assert page.headers["x-robots-tag"] == "noindex, nofollow"
        assert page.headers["cache-control"] == "no-store"
        assert english.status_code == 200
        assert '<html lang="en">' in english.text
        assert "Billed separately" in english.text

    async def test_a_bad_or_foreign_link_is_the_same_404(self, intake, js):
        base, _, settings = intake
        links = StatusLinks.from_settings(settings)
        vector_ticket = make_ticket_received(tenant="vector")
        _, app, _ = intake
        await publish_event(app.state.runtime.broker, vector_ticket)
        async with httpx.AsyncClient(base_url=base) as http:
            ticket_id, path = await submit(http)
            ok = await http.get(path)
            answers = [
                await http.get("/status/nonsense"),
                await http.get(path[:-3] + "abc"),
                await http.get("/status/" + StatusLinks(b"z" * 32).sign("romashka", ticket_id)),
                # a genuine token, but for the number under another tenant
                await http.get("/status/" + links.sign("vector", ticket_id)),
                await http.get("/status/" + links.sign("romashka", vector_ticket.ticket_id)),
                await http.get("/status/" + links.sign("romashka", "999999999997")),
                await http.get("/status/" + "a" * 5000),
            ]
            seen = await http.get("/status/" + links.sign("vector", vector_ticket.ticket_id))
        assert ok.status_code == 200
        assert [a.status_code for a in answers] == [404] * len(answers)
        assert len({a.text for a in answers[:3]}) == 1
        assert all("Принтер" not in a.text for a in answers)
        assert seen.status_code == 200
        assert '<html lang="en">' in seen.text
