"""Opora notifier: tells engineers and clients what they need to know, once, on their channel."""

__version__ = "0.1.0"
