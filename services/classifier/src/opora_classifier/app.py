"""The classifier's composition root: settings in, a runnable FastStream app out."""

from collections.abc import Callable, Coroutine
from typing import Any

from faststream import FastStream
from prometheus_client import CollectorRegistry

from opora_classifier import handlers, routing_handlers
from opora_classifier.metrics import ClassifierMetrics
from opora_classifier.settings import ClassifierSettings
from opora_shared.contract_store import ContractStore
from opora_shared.nats.broker import make_broker
from opora_shared.service import Clock, build_app, utc_now


def create_app(
    settings: ClassifierSettings,
    *,
    clock: Clock = utc_now,
    registry: CollectorRegistry | None = None,
) -> FastStream:
    """Wire the classifier: broker, contracts, model, metrics, handlers and routing."""
    registry = registry if registry is not None else CollectorRegistry()
    broker = make_broker(settings, service="classifier", registry=registry)
    contracts = ContractStore(
        settings.contracts_dir, settings.team_file, seed=settings.contracts_seed
    )
    model = handlers.ModelHolder(settings.model_dir)

    handlers.register(
        broker,
        settings,
        contracts=contracts,
        model=model,
        metrics=ClassifierMetrics(registry),
        clock=clock,
    )
    background: list[Callable[[], Coroutine[Any, Any, None]]] = []
    if settings.routing:
        router = routing_handlers.register(broker, settings, contracts=contracts, clock=clock)
        background.append(lambda: router.run_shift_checks(settings.shift_check_interval_s))
    return build_app(
        broker,
        title="opora-classifier",
        description="Tags every ticket with category, kind, scope, priority and language, "
        "and assigns it to an engineer.",
        on_start=model.load,
        contracts=contracts,
        background=background,
        registry=registry,
        tap_history=settings.routing,  # routing reads every classified ticket's history
    )
