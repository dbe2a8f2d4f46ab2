"""Suite-wide configuration; the real-NATS fixtures come from ``opora_shared.testing.plugin``."""
