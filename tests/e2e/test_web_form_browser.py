"""The web form in a real headless browser: Debian's Chromium driven by Playwright.

The intake is served by uvicorn on a free port against the suite's nats-server; the browser
fills the form in Russian with the keyboard only, sends a file, reads the ticket number, follows
the status link; and sees a refused form's errors announced and focusable.
"""

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect
from prometheus_client import CollectorRegistry

from opora_intake.app import create_app
from opora_intake.settings import IntakeSettings
from opora_shared.events import TicketReceived
from opora_shared.nats.history import ticket_events
from opora_shared.nats.server import free_port

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 30_000  # the machine runs other suites at the same time

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed (Debian package `chromium`; scripts/ensure-test-tools "
    "installs it as root)",
)


@pytest.fixture
async def intake_url(nats_url, tmp_path) -> AsyncIterator[str]:
    """The intake over real HTTP on 127.0.0.1 and a free port, in this test's event loop."""
    settings = IntakeSettings(
        nats_url=nats_url, http_port=free_port(), smtp_port=0, var_dir=tmp_path
    )
    app = create_app(settings, registry=CollectorRegistry())
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=settings.http_port, log_config=None, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(800):
        if server.started:
            break
        await asyncio.sleep(0.025)
    assert server.started, "intake did not start"
    yield f"http://127.0.0.1:{settings.http_port}"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=15)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, through Playwright (no browser download)."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, timeout=TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def new_page(browser: Browser, locale: str) -> Page:
    context = await browser.new_context(locale=locale, java_script_enabled=False)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def tab_to(page: Page, selector: str, *, presses: int = 15) -> None:
    """Press Tab until the element has the focus (keyboard only, like a person without a mouse)."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    pytest.fail(f"{selector} cannot be reached with Tab")


async def test_a_client_sends_the_form_in_russian_and_follows_the_status_link(
    intake_url, browser, js
):
    page = await new_page(browser, "ru-RU")
    await page.goto(intake_url + "/")
    await expect(page.locator("html")).to_have_attribute("lang", "ru")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Новая заявка")

    # keyboard only: Tab to each field, type, and Enter on the button
    await tab_to(page, "#name")
    await page.keyboard.type("Анна Петрова")
    await page.keyboard.press("Tab")
    await page.keyboard.type("anna@romashka.ru")
    await page.keyboard.press("Tab")
    await page.keyboard.type("Не печатает принтер в бухгалтерии")
    await page.keyboard.press("Tab")
    await page.keyboard.type("Замяло бумагу, на экране ошибка E-23.")
    await expect(page.get_by_label("Описание")).to_be_focused()
    await page.get_by_label("Файлы").set_input_files(
        {"name": "ошибка.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n" * 64}
    )
    await tab_to(page, "button[type=submit]", presses=4)
    await expect(page.get_by_role("button", name="Отправить заявку")).to_be_focused()
    await page.keyboard.press("Enter")

    heading = page.get_by_role("heading", level=1)
    await expect(heading).to_have_text(re.compile(r"^Заявка #\d+ принята$"))
    ticket_id = re.sub(r"\D", "", await heading.inner_text())
    await expect(page.get_by_text("Что дальше")).to_be_visible()
    await expect(page.get_by_text("Файлов приложено: 1.")).to_be_visible()

    events = await ticket_events(js, ticket_id, tenant="romashka")
    received = next(e for e in events if isinstance(e, TicketReceived))
    assert received.subject == "Не печатает принтер в бухгалтерии"
    assert [a.filename for a in received.attachments] == ["ошибка.png"]

    await page.get_by_role("link", name="Страница статуса заявки").click()
    await expect(page).to_have_url(re.compile(r"/status/[\w.-]+$"))
    await expect(page.locator("html")).to_have_attribute("lang", "ru")
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Заявка #{ticket_id}")
    await expect(page.get_by_text("Не печатает принтер в бухгалтерии")).to_be_visible()
    await expect(page.get_by_text("Получена, разбирается")).to_be_visible()
    await expect(page.get_by_text("Заявка получена через веб-форму")).to_be_visible()
    await page.context.close()


async def test_a_refused_form_announces_its_errors_and_leads_to_each_field(intake_url, browser):
    page = await new_page(browser, "en-US")
    await page.goto(intake_url + "/?lang=en")
    await page.get_by_label("Your name").fill("Bob")
    await page.get_by_label("Email address").fill("bob(at)vector-logistics.com")
    await page.get_by_role("button", name="Send request").click()

    await expect(page).to_have_title(re.compile(r"^Error: New support request"))
    summary = page.get_by_role("alert")
    await expect(summary).to_be_visible()
    await expect(summary).to_be_focused()  # autofocus: read out first, no script needed
    await expect(summary).to_contain_text("Please check the form")
    await expect(summary).to_contain_text("Enter an email address like name@example.com")
    await expect(summary).to_contain_text("Enter a subject")
    await expect(summary).to_contain_text("Describe what is wrong")

    email = page.get_by_label("Email address")
    await expect(email).to_have_value("bob(at)vector-logistics.com")
    await expect(email).to_have_attribute("aria-invalid", "true")
    await expect(email).to_have_accessible_description(
        re.compile(r"Error: Enter an email address like name@example.com")
    )
    await expect(page.get_by_label("Your name")).to_have_value("Bob")

    # from the summary, a link per problem moves the keyboard focus to its field
    await summary.get_by_role("link", name="Enter a subject").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Subject")).to_be_focused()
    await page.context.close()
