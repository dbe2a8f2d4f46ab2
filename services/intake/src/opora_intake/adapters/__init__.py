"""Intake adapters: KV and other I/O."""
