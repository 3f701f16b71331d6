"""Typed errors raised by every backend client.

Clients translate transport failures and HTTP statuses into these few classes so that one
mapping (in the actions layer) can turn them into honest customer-facing responses.
"""

from __future__ import annotations

from typing import Optional


class BackendError(Exception):
    """Base class: something went wrong talking to a backend system."""

    default_code = "backend_error"

    def __init__(
        self, message: str = "", code: Optional[str] = None, status: Optional[int] = None
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.code
        self.status = status  # HTTP status when there was a response, else None
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class BackendUnavailable(BackendError):
    """Connection refused, timeout, 5xx, or a response the client cannot understand."""

    default_code = "unavailable"


class NotFound(BackendError):
    """404: the resource does not exist, or belongs to someone else."""

    default_code = "not_found"


class Forbidden(BackendError):
    """401/403: the caller may not do this."""

    default_code = "forbidden"


class Conflict(BackendError):
    """409: the request conflicts with the current state (e.g. a reused idempotency key)."""

    default_code = "conflict"


class InvalidRequest(BackendError):
    """400/422 and other 4xx: the service refused the request; `code` says why."""

    default_code = "invalid_request"
