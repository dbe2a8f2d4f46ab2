"""Test support shipped with the shared library: a real nats-server fixture, waiting, factories."""
