"""Integrations: alerts from other tools become tickets, updates and resolutions.

Four ways in, one way through. ``POST /v1/events`` (the generic integrator event, or a
CloudEvent in structured or binary mode), ``POST /v1/integrations/alertmanager`` (Alertmanager's
webhook as is), ``POST /v1/integrations/pagerduty`` (PagerDuty Events API v2) and the NATS
subject ``opora.in.<tenant>.events`` are each read into an ``AlertSignal`` by the pure
``normalize`` module; ``ingest.AlertIntake`` turns a signal into ticket events, deduplicated by
(tenant, source, dedup key).
"""
