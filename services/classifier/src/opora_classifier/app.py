"""The classifier's composition root: settings in, a runnable FastStream app out."""

from faststream import FastStream
from prometheus_client import CollectorRegistry

from opora_classifier import handlers
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
    """Wire the classifier: broker, contracts, model, metrics and handlers."""
    registry = registry if registry is not None else CollectorRegistry()
    broker = make_broker(settings, service="classifier", registry=registry)
    contracts = ContractStore(settings.contracts_dir, settings.team_file)
    model = handlers.ModelHolder(settings.model_dir)

    handlers.register(
        broker,
        settings,
        contracts=contracts,
        model=model,
        metrics=ClassifierMetrics(registry),
        clock=clock,
    )
    return build_app(
        broker,
        title="opora-classifier",
        description="Tags every ticket with category, kind, scope, priority and language.",
        on_start=model.load,
        contracts=contracts,
    )
