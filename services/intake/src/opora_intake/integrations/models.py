"""HTTP and NATS models of the integrations.

The generic integrator event is Opora's own schema: strict (``extra="forbid"``), so a 422 names
the field. Alertmanager and PagerDuty payloads are other tools' schemas, taken as they are: the
fields Opora reads are validated, anything else (Grafana's additions to the Alertmanager
format, PagerDuty's ``images``...) is ignored.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["trigger", "acknowledge", "resolve"]
Outcome = Literal["created", "updated", "unchanged", "acknowledged", "resolved", "ignored"]

Source = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\s\x00-\x1f\x7f]+$",
        description="the sending tool or its instance: zabbix, grafana, https://mon.example/am",
        examples=["zabbix"],
    ),
]
DedupKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="the same key updates (or resolves) the same ticket",
        examples=["srv-db01/disk-c"],
    ),
]
Severity = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="the tool's word: disaster, critical, high, error, warning, average, info...",
        examples=["critical"],
    ),
]


class IntegrationEvent(BaseModel):
    """The generic integrator event: one alert, opened, acknowledged or resolved."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: Source
    dedup_key: DedupKey
    summary: str = Field(min_length=1, max_length=998, description="becomes the ticket's subject")
    action: Action = Field(default="trigger", description="trigger opens or updates the ticket")
    severity: Severity | None = None
    resource: str | None = Field(
        default=None, max_length=255, description="the host, service or device concerned"
    )
    details: dict[str, Any] = Field(
        default_factory=dict, description="anything else, shown in the ticket as key = value"
    )


class IntegrationAccepted(BaseModel):
    """What an integration event did."""

    tenant: str
    source: str
    dedup_key: str
    outcome: Outcome = Field(
        description="created: a new ticket; updated: a note with what changed; unchanged: "
        "nothing new; acknowledged, resolved; ignored: no open ticket for the key"
    )
    ticket_id: str | None = Field(default=None, description="the ticket the key maps to")


# -- Prometheus Alertmanager (and Grafana alerting, which sends the same format) -------------


class AlertmanagerAlert(BaseModel):
    """One alert of an Alertmanager notification."""

    model_config = ConfigDict(extra="ignore")

    status: str = Field(default="firing", max_length=32, description="firing or resolved")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = Field(default=None, max_length=64)
    endsAt: str | None = Field(default=None, max_length=64)
    generatorURL: str | None = Field(default=None, max_length=4096)
    fingerprint: str | None = Field(default=None, max_length=128)
    valueString: str | None = Field(
        default=None, max_length=4096, description="Grafana: the values that fired"
    )


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook payload (version 4), as Alertmanager sends it."""

    model_config = ConfigDict(extra="ignore")

    version: str | None = Field(default=None, max_length=16)
    groupKey: str = Field(min_length=1, max_length=8192, description="one ticket per alert group")
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = Field(default="", max_length=1024)
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = Field(default="", max_length=4096)
    alerts: list[AlertmanagerAlert] = Field(default_factory=list, max_length=10_000)
    title: str | None = Field(default=None, max_length=998, description="Grafana only")


# -- PagerDuty Events API v2 ------------------------------------------------------------------


class PagerDutyPayload(BaseModel):
    """The ``payload`` of a PagerDuty trigger event."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1, max_length=255, description="the affected system")
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: str | None = Field(default=None, max_length=64)
    component: str | None = Field(default=None, max_length=255)
    group: str | None = Field(default=None, max_length=255)
    class_: str | None = Field(default=None, alias="class", max_length=255)
    custom_details: Any = None


class PagerDutyLink(BaseModel):
    """A link of a PagerDuty event."""

    model_config = ConfigDict(extra="ignore")

    href: str = Field(max_length=4096)
    text: str | None = Field(default=None, max_length=1024)


class PagerDutyEvent(BaseModel):
    """A PagerDuty Events API v2 event (``POST /v2/enqueue``)."""

    model_config = ConfigDict(extra="ignore")

    routing_key: str = Field(
        min_length=1,
        max_length=256,
        description="an Opora token with events:write (one tenant), or, when the request "
        "carries an Authorization header, anything (a tenant id for a multi-tenant token)",
    )
    event_action: Action
    dedup_key: str | None = Field(
        default=None,
        max_length=255,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="required for acknowledge and resolve",
    )
    payload: PagerDutyPayload | None = Field(default=None, description="required for trigger")
    client: str | None = Field(default=None, max_length=255)
    client_url: str | None = Field(default=None, max_length=4096)
    links: list[PagerDutyLink] = Field(default_factory=list, max_length=50)


class PagerDutyAccepted(BaseModel):
    """PagerDuty's answer shape, plus what Opora did."""

    status: Literal["success"] = "success"
    message: str = "Event processed"
    dedup_key: str
    outcome: Outcome
    ticket_id: str | None = None
