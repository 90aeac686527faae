"""Errors that carry a diagnosis: what happened, and what to do about it.

Every layer raises these; the CLI maps them to an exit code and one message, the API to an
RFC 9457 problem document, the action to an ``::error::`` annotation.
"""

from __future__ import annotations

from typing import ClassVar


class SignerError(Exception):
    """Base error. ``detail`` says what was wrong, ``fix`` what to do next."""

    exit_code: ClassVar[int] = 2
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, fix: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix

    def explain(self) -> str:
        return f"{self.detail} {self.fix}".strip()


class UsageError(SignerError):
    """The input is malformed (a name, a flag, a request body)."""


class AuthenticationError(SignerError):
    exit_code = 3
    status = 401
    title = "Unauthenticated"


class PermissionDenied(SignerError):
    exit_code = 3
    status = 403
    title = "Forbidden"


class NotFound(SignerError):
    exit_code = 1
    status = 404
    title = "Not found"


class Conflict(SignerError):
    status = 409
    title = "Conflict"


class TooLarge(SignerError):
    status = 413
    title = "Payload too large"


class RateLimited(SignerError):
    status = 429
    title = "Too many requests"


class Unavailable(SignerError):
    """A dependency (database, issuer JWKS, the service itself) cannot be reached."""

    exit_code = 4
    status = 503
    title = "Service unavailable"


class VerificationFailed(SignerError):
    exit_code = 1
    status = 422
    title = "Verification failed"


_BY_STATUS: dict[int, type[SignerError]] = {
    400: UsageError,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: UsageError,
    429: RateLimited,
}


def from_status(status: int, detail: str) -> SignerError:
    """The client's view of a problem document the service sent."""
    if status >= 500:
        return Unavailable(detail)
    return _BY_STATUS.get(status, UsageError)(detail)
