"""Opora classifier: tags every ticket with category, kind, scope, priority and language."""

__version__ = "0.1.0"
