"""The intake's composition root: settings in, an ASGI app out (HTTP API plus the broker)."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from faststream.specification import AsyncAPI
from nats.errors import Error as NatsError
from prometheus_client import CollectorRegistry

from opora_intake import (
    __version__,
    api,
    approvals,
    chat_api,
    indexer,
    nats_integrations,
    tickets_api,
    tokens_api,
    web,
)
from opora_intake.adapters.chat_replies import ChatReplies
from opora_intake.adapters.ticket_ids import TicketIds
from opora_intake.imap_channel import ImapChannel, load_mailboxes
from opora_intake.integrations import api as integrations_api
from opora_intake.mail_intake import MailIntake
from opora_intake.metrics import IntakeMetrics
from opora_intake.ratelimit import install_limits
from opora_intake.runtime import IntakeRuntime
from opora_intake.settings import IntakeSettings
from opora_intake.smtp import start_smtp_server
from opora_shared import subjects
from opora_shared.approvals import ApprovalSigner, signing_key
from opora_shared.chat_buttons import ButtonSigner
from opora_shared.contract_store import ContractStore
from opora_shared.events import TicketReceived
from opora_shared.nats.broker import EVENTS, jetstream, make_broker, reconnect_forever
from opora_shared.service import Clock, freeze_heap, utc_now

log = logging.getLogger(__name__)

DESCRIPTION = "Turns emails, web-form and API requests and tool events into tickets."


def create_app(
    settings: IntakeSettings,
    *,
    clock: Clock = utc_now,
    registry: CollectorRegistry | None = None,
    freeze_when_ready: bool = False,
) -> FastAPI:
    """Wire the intake: broker, contracts, ticket numbers, metrics and routes.

    ``freeze_when_ready`` (the service's ``__main__``) takes the started heap out of the
    garbage collector's full collections (``opora_shared.service.freeze_heap``).
    """
    registry = registry if registry is not None else CollectorRegistry()
    broker = make_broker(settings, service="intake", registry=registry)
    # httpx logs every request URL at INFO; Telegram's holds the bot token
    logging.getLogger("httpx").setLevel(logging.WARNING)
    indexer.register(broker, settings)
    received = broker.publisher(
        subjects.event_template(TicketReceived),
        stream=EVENTS,
        schema=TicketReceived,
        title="ticket.received",
        description="A new ticket entered Opora through one of its channels.",
    )
    runtime = IntakeRuntime(
        settings=settings,
        broker=broker,
        received=received,
        contracts=ContractStore(
            settings.contracts_dir, settings.team_file, seed=settings.contracts_seed
        ),
        metrics=IntakeMetrics(registry),
        clock=clock,
    )
    nats_integrations.register(broker, settings, runtime)  # opora.in.<tenant>.events

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.contracts.load()
        secret = settings.signing_key.get_secret_value() if settings.signing_key else None
        key = signing_key(secret, settings.signing_key_file)
        runtime.signer = ApprovalSigner(key)
        runtime.buttons = ButtonSigner(key)
        token = settings.telegram_bot_token
        chat = ChatReplies(
            httpx.AsyncClient(timeout=settings.chat_http_timeout_s),
            telegram_api_url=settings.telegram_api_url,
            telegram_token=token.get_secret_value() if token else None,
        )
        runtime.chat = chat
        await broker.start()
        reconnect_forever(broker)
        await runtime.contracts.watch(jetstream(broker))
        runtime._ids = TicketIds(jetstream(broker), block_size=settings.id_block_size)
        runtime.mail = MailIntake(
            settings=settings,
            broker=broker,
            received=received,
            contracts=runtime.contracts,
            ids=runtime._ids,
            metrics=runtime.metrics,
            clock=clock,
        )
        smtp = None
        if settings.smtp_port:
            smtp = await start_smtp_server(runtime.mail, settings, runtime.metrics)
        imap = None
        if settings.imap_mailboxes_file is not None:
            imap = ImapChannel(load_mailboxes(settings.imap_mailboxes_file), runtime.mail)
            imap.start()
        if freeze_when_ready:
            freeze_heap()
        try:
            yield
        finally:
            if imap is not None:
                await imap.stop()
            if smtp is not None:
                smtp.close()
            await runtime.contracts.close()
            await chat.close()
            try:
                await broker.stop()
            except NatsError as exc:  # NATS already gone: nothing left to drain
                log.warning("broker stop: %s", type(exc).__name__)

    app = FastAPI(
        title="Opora intake",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(api.router)
    app.include_router(approvals.router)
    app.include_router(tokens_api.router)  # the integrator API (docs/api.md)
    app.include_router(tickets_api.router)
    app.include_router(integrations_api.router)
    app.include_router(chat_api.router)  # chat button presses (docs/engineer-actions.md)
    app.include_router(web.router)  # the web form at / and the status pages
    app.mount(web.STATIC_PATH, web.static_files(), name="static")
    spec = AsyncAPI(broker, title="opora-intake", version=__version__, description=DESCRIPTION)
    app.state.asyncapi = spec

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi() -> dict[str, Any]:
        return spec.to_specification().to_jsonable()  # type: ignore[no-any-return]

    # 429 per IP and token, 413 over OPORA_MAX_JSON_BYTES (the form has its own), no bare 500
    install_limits(app, settings, runtime.metrics, own_limit_paths=frozenset({web.FORM_PATH}))
    return app
