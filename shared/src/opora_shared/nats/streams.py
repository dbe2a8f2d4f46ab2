"""Streams and KV buckets, created or brought up to date idempotently (``opora provision``).

This module is the one place that declares them; services only bind to what exists
(FastStream subscribers use ``JStream(..., declare=False)``).
"""

import contextlib
import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from opora_shared import subjects

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class StorePolicy:
    """Retention knobs for the streams, with production-minded defaults."""

    events_max_age_s: float = 0.0
    """0 keeps every event forever: the stream is the audit trail."""
    dlq_max_age_s: float = 90 * DAY_S
    duplicate_window_s: float = 300.0
    """Nats-Msg-Id dedup window: long enough to cover a retried publish after a reconnect."""
    inbound_max_age_s: float = 7 * DAY_S
    """Integrators' messages: read within seconds; kept a week for inspection."""
    max_msg_bytes: int = 4 * 1024 * 1024
    replicas: int = 1
    """3 on a NATS cluster."""


def stream_configs(policy: StorePolicy) -> list[StreamConfig]:
    """The streams Opora needs."""
    return [
        StreamConfig(
            name=subjects.EVENTS_STREAM,
            description="Every ticket event: the system of record and the audit trail",
            subjects=[f"{subjects.EVENTS_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=policy.events_max_age_s,
            max_msg_size=policy.max_msg_bytes,
            duplicate_window=policy.duplicate_window_s,
            num_replicas=policy.replicas,
            allow_direct=True,
            allow_atomic=True,  # batch stages store a fetched batch's events with one commit
            deny_delete=True,
            deny_purge=False,
        ),
        StreamConfig(
            name=subjects.SLA_STREAM,
            description="SLA timers (message schedules) and what they fire",
            subjects=[f"{subjects.SLA_PREFIX}.sched.>", f"{subjects.SLA_PREFIX}.fire.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            # one message per subject: a republished schedule replaces the old one, and a
            # fired message replaces the previous firing of the same timer
            max_msgs_per_subject=1,
            max_age=0,  # never let limits delete a pending schedule (it would never fire)
            duplicate_window=policy.duplicate_window_s,
            num_replicas=policy.replicas,
            allow_msg_schedules=True,
            allow_rollup_hdrs=True,
            allow_atomic=True,  # the sla-timer stores a fetched batch's schedules at once
            deny_purge=False,
        ),
        StreamConfig(
            name=subjects.INTAKE_STREAM,
            description="What the intake did with every inbound mail, with the reason",
            subjects=[f"{subjects.INTAKE_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=policy.dlq_max_age_s,
            duplicate_window=policy.duplicate_window_s,
            num_replicas=policy.replicas,
            allow_direct=True,
        ),
        StreamConfig(
            name=subjects.INBOUND_STREAM,
            description="What integrators publish (opora.in.<tenant>.events), for the intake",
            subjects=[f"{subjects.INBOUND_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=policy.inbound_max_age_s,
            max_msg_size=policy.max_msg_bytes,
            duplicate_window=policy.duplicate_window_s,
            num_replicas=policy.replicas,
            allow_direct=True,
        ),
        StreamConfig(
            name=subjects.DLQ_STREAM,
            description="Messages a consumer gave up on, each with the reason",
            subjects=[f"{subjects.DLQ_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=policy.dlq_max_age_s,
            max_msg_size=policy.max_msg_bytes * 2,
            duplicate_window=policy.duplicate_window_s,
            num_replicas=policy.replicas,
            allow_direct=True,
        ),
    ]


def bucket_configs(policy: StorePolicy) -> list[KeyValueConfig]:
    """The KV buckets Opora needs."""
    return [
        KeyValueConfig(
            bucket=subjects.TICKET_IDS_BUCKET,
            description="ticket number counter and channel-id index",
            history=1,
            storage=StorageType.FILE,
            replicas=policy.replicas,
            direct=True,
        ),
        KeyValueConfig(
            bucket=subjects.SLA_BUCKET,
            description="each ticket's SLA clocks",
            history=1,
            storage=StorageType.FILE,
            replicas=policy.replicas,
            direct=True,
        ),
        KeyValueConfig(
            bucket=subjects.MAIL_GUARD_BUCKET,
            description="daily counters of automatic mail (loop guard)",
            history=1,
            ttl=2 * DAY_S,
            storage=StorageType.FILE,
            replicas=policy.replicas,
            direct=True,
        ),
        KeyValueConfig(
            bucket=subjects.TOKENS_BUCKET,
            description="API tokens by SHA-256; never the token itself",
            history=5,
            storage=StorageType.FILE,
            replicas=policy.replicas,
            direct=True,
        ),
        KeyValueConfig(
            bucket=subjects.CONTRACTS_BUCKET,
            description="tenant contracts and the team file (YAML), watched by the services",
            history=10,
            storage=StorageType.FILE,
            replicas=policy.replicas,
            direct=True,
        ),
        KeyValueConfig(
            bucket=subjects.TICKETS_BUCKET,
            description="ticket summaries by <tenant>.<ticket id>, for lists and filters",
            history=1,
            storage=StorageType.FILE,
            replicas=policy.replicas,
            direct=True,
        ),
        KeyValueConfig(
            bucket=subjects.LOAD_BUCKET,
            description="each engineer's open assigned tickets (routing load)",
            history=1,
            storage=StorageType.FILE,
            replicas=policy.replicas,
            direct=True,
        ),
        KeyValueConfig(
            bucket=subjects.NOTIFY_BUCKET,
            description="notification idempotency records and per-recipient rate windows",
            history=1,
            # longer than the notifier's OPORA_NOTIFY_MAX_AGE_S (7 days): a replayed trigger
            # older than that sends nothing, so its record may go
            ttl=30 * DAY_S,
            storage=StorageType.FILE,
            replicas=policy.replicas,
            direct=True,
        ),
    ]


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create a stream, or update it to this config when it exists with another."""
    assert config.name is not None  # noqa: S101 - every config above is named
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
        log.info("created stream %s", config.name)
        return
    try:
        await js.update_stream(config)
    except BadRequestError as exc:
        log.warning("stream %s kept its config: %s", config.name, exc.description)


ATOMIC_BUCKETS = frozenset({subjects.TICKETS_BUCKET, subjects.SLA_BUCKET})
"""The buckets batch stages write with atomic batches (the ticket index, the SLA clocks)."""


async def ensure_bucket(js: JetStreamContext, config: KeyValueConfig) -> None:
    """Create a KV bucket, and bring its stream up to date (direct gets, atomic batches).

    Direct gets matter for speed: without them every ``kv.get`` is a JetStream API request,
    served one at a time by the server's API queue (and a miss counts as an API error); with
    them the stream answers gets itself. ``bench/bench_e2e.py`` measured the difference.
    Atomic batches let a batch stage write many keys with one commit (the ticket index, the
    SLA clocks); ``KeyValueConfig`` has no such field, so the stream is updated after creation.
    """
    name = f"KV_{config.bucket}"
    with contextlib.suppress(BadRequestError):  # it exists, perhaps with an older config
        await js.create_key_value(config)
    current = (await js.stream_info(name)).config
    wanted = current.evolve(
        allow_direct=config.direct,
        allow_atomic=config.bucket in ATOMIC_BUCKETS or None,
        description=config.description,
        num_replicas=config.replicas,
    )
    if wanted == current:
        return
    try:
        await js.update_stream(wanted)
        log.info("updated bucket %s", config.bucket)
    except BadRequestError as exc:
        log.warning("bucket %s kept its config: %s", config.bucket, exc.description)


async def provision(js: JetStreamContext, policy: StorePolicy | None = None) -> None:
    """Create or update every stream and bucket; safe to run any number of times."""
    policy = policy or StorePolicy()
    for stream in stream_configs(policy):
        await ensure_stream(js, stream)
    for bucket in bucket_configs(policy):
        await ensure_bucket(js, bucket)
    await js.create_object_store(
        subjects.ATTACHMENTS_BUCKET,
        config=ObjectStoreConfig(
            description="attachments and original messages",
            storage=StorageType.FILE,
            replicas=policy.replicas,
        ),
    )


async def check_ready(js: JetStreamContext) -> list[str]:
    """The streams and buckets that are missing; empty when the service can work."""
    missing = []
    for name in (
        subjects.EVENTS_STREAM,
        subjects.SLA_STREAM,
        subjects.INTAKE_STREAM,
        subjects.INBOUND_STREAM,
        subjects.DLQ_STREAM,
    ):
        try:
            await js.stream_info(name)
        except NotFoundError:
            missing.append(name)
    for stream in (
        f"KV_{subjects.TICKET_IDS_BUCKET}",
        f"KV_{subjects.TOKENS_BUCKET}",
        f"KV_{subjects.MAIL_GUARD_BUCKET}",
        f"KV_{subjects.SLA_BUCKET}",
        f"KV_{subjects.CONTRACTS_BUCKET}",
        f"KV_{subjects.LOAD_BUCKET}",
        f"KV_{subjects.TICKETS_BUCKET}",
        f"KV_{subjects.NOTIFY_BUCKET}",
        f"OBJ_{subjects.ATTACHMENTS_BUCKET}",
    ):
        try:
            await js.stream_info(stream)
        except NotFoundError:
            missing.append(stream)
    return missing
