"""Domain errors with stable codes; the GraphQL layer turns them into `extensions.code`."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An expected failure a caller can act on, named by a stable code."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class NotFound(DomainError):
    code = "NOT_FOUND"


class InvalidInput(DomainError):
    code = "BAD_USER_INPUT"


class InvalidPhone(DomainError):
    code = "INVALID_PHONE"


class IdentityConflict(DomainError):
    code = "IDENTITY_CONFLICT"


class NotImplementedYet(DomainError):
    code = "NOT_IMPLEMENTED"
