"""What the intake's routes need at run time, built by the composition root."""

from dataclasses import dataclass, field

from faststream.nats import NatsBroker
from faststream.nats.publisher.usecase import LogicPublisher

from opora_intake.adapters.chat_replies import ChatReplies
from opora_intake.adapters.ticket_ids import TicketIds
from opora_intake.integrations.ingest import AlertIntake
from opora_intake.mail_intake import MailIntake
from opora_intake.metrics import IntakeMetrics
from opora_intake.settings import IntakeSettings
from opora_shared.approvals import ApprovalSigner
from opora_shared.chat_buttons import ButtonSigner
from opora_shared.contract_store import ContractStore
from opora_shared.errors import NotReadyError
from opora_shared.nats.broker import jetstream
from opora_shared.service import Clock


@dataclass
class IntakeRuntime:
    """Settings, broker, contracts, ticket numbers, approval links, metrics and the clock."""

    settings: IntakeSettings
    broker: NatsBroker
    received: LogicPublisher
    contracts: ContractStore
    metrics: IntakeMetrics
    clock: Clock
    _ids: TicketIds | None = field(default=None)
    mail: "MailIntake | None" = field(default=None)
    signer: ApprovalSigner | None = field(default=None)
    """Checks approval links (built at start: it may create the key file)."""
    _alerts: AlertIntake | None = field(default=None)
    chat: ChatReplies | None = field(default=None)
    """Answers chat button presses (built at start: it holds an HTTP client)."""
    buttons: ButtonSigner | None = field(default=None)
    """Checks Mattermost buttons' tokens (built at start, with the signer)."""

    @property
    def ids(self) -> TicketIds:
        """The ticket number allocator (there once the broker is connected)."""
        if self._ids is None:
            msg = "intake is not connected to NATS yet"
            raise NotReadyError(msg)
        return self._ids

    @property
    def alerts(self) -> AlertIntake:
        """Integration alerts to ticket events (there once the broker is connected)."""
        if self._alerts is None:
            ids = self.ids  # NotReadyError before the broker is connected
            self._alerts = AlertIntake(
                broker=self.broker,
                received=self.received,
                js=jetstream(self.broker),
                ids=ids,
                metrics=self.metrics,
                clock=self.clock,
            )
        return self._alerts
