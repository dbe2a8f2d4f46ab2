"""NATS and JetStream helpers: connecting, provisioning, publishing, dead letters, history."""
