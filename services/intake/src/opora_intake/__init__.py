"""Opora intake: turns emails, web-form and API requests and tool events into tickets."""

__version__ = "0.1.0"
