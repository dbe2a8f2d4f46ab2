"""The notifier's I/O besides the channels: the idempotency ledger in JetStream KV."""
