"""SLA timer adapters: the clocks' KV state and the NATS message schedules."""
