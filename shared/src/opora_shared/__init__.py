"""Opora's common library: event contract, vocabulary, settings, contracts and NATS helpers.

Everything every service shares lives here, once. Nothing here talks to the network at import.
"""

__version__ = "0.1.0"
