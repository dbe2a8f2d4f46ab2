"""The sla-timer's composition root: settings in, a runnable FastStream app out."""

from faststream import FastStream
from prometheus_client import CollectorRegistry

from opora_shared.contract_store import ContractStore
from opora_shared.nats.broker import make_broker
from opora_shared.service import Clock, build_app, utc_now
from opora_sla_timer import handlers
from opora_sla_timer.metrics import SlaMetrics
from opora_sla_timer.settings import SlaTimerSettings


def create_app(
    settings: SlaTimerSettings,
    *,
    clock: Clock = utc_now,
    registry: CollectorRegistry | None = None,
) -> FastStream:
    """Wire the sla-timer: broker, contracts, metrics and handlers."""
    registry = registry if registry is not None else CollectorRegistry()
    broker = make_broker(settings, service="sla-timer", registry=registry)
    contracts = ContractStore(
        settings.contracts_dir, settings.team_file, seed=settings.contracts_seed
    )
    handlers.register(
        broker, settings, contracts=contracts, metrics=SlaMetrics(registry), clock=clock
    )
    return build_app(
        broker,
        title="opora-sla-timer",
        description="Runs the contract deadlines of every ticket and emits SLA events.",
        contracts=contracts,
        registry=registry,
    )
