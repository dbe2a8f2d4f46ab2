"""Delivery channels of the notifier."""
