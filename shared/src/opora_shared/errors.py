"""Errors raised by the shared library; every Opora error derives from OporaError."""


class OporaError(Exception):
    """Base class of every error Opora raises on purpose."""


class ConfigError(OporaError):
    """A setting or configuration file is invalid; the message names it and the fix."""


class ContractError(ConfigError):
    """A contract file is invalid; the message names the file, the field and the fix."""


class NotReadyError(OporaError):
    """NATS or a stream the service needs is not there (yet)."""


class PoisonMessageError(OporaError):
    """A message can never be processed; it goes to the dead-letter subject at once."""


class TicketNotFoundError(OporaError):
    """No ticket has this id (or it belongs to a tenant the caller may not see)."""
