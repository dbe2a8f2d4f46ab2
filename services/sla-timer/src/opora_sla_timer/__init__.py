"""Opora sla-timer: runs each contract's deadlines and emits warnings, breaches, escalations."""

__version__ = "0.1.0"
