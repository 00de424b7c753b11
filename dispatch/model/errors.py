"""Why a command could not be done, in domain terms; the HTTP layer maps each to a status."""
from __future__ import annotations


class DomainError(ValueError):
    """A command refused by the business rules; the message is fit to show the person who asked."""


class NotFound(DomainError):
    """The thing the command names does not exist."""


class Conflict(DomainError):
    """Not possible in the current state of the rescue, driver or payment."""


class Invalid(DomainError):
    """The command's own values are out of range."""
