"""Intake errors, turned into HTTP answers by the API."""

from nats.errors import Error as NatsError

from opora_shared.errors import NotReadyError, OporaError

NATS_UNAVAILABLE = (NatsError, TimeoutError, NotReadyError)
"""What a request handler meets when NATS cannot answer: 503, nothing recorded, retry."""


class IntakeError(OporaError):
    """Base of the intake's own errors."""


class BusUnavailableError(IntakeError):
    """NATS did not store the ticket; the caller should retry later (503)."""


class EngineerCommandError(IntakeError):
    """An engineer's mail asks for something the intake cannot do; the message says why."""


class ChatPayloadError(IntakeError):
    """A chat platform's request is not the shape it documents; the message says what."""
