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
    """403: the caller may not do this."""

    default_code = "forbidden"


class Conflict(BackendError):
    """409: the request conflicts with the current state (e.g. a reused idempotency key)."""

    default_code = "conflict"


class InvalidRequest(BackendError):
    """400/422 and other 4xx: the service refused the request; `code` says why."""

    default_code = "invalid_request"


class Unauthorized(BackendUnavailable):
    """401: the service did not accept this client's credentials (missing or wrong API key).

    A deployment fault, not the customer's: to them the backend is simply unavailable, so it
    is a BackendUnavailable (never retried, since the same key would fail again)."""

    default_code = "unauthorized"


class NeedsReview(BackendError):
    """403 needs_review: allowed by policy, but above what this client may do on its own (the
    assistant's refund and dispute auto-limits); a person with an agent key has to decide."""

    default_code = "needs_review"


class RateLimited(BackendError):
    """429 too_many_attempts: too many failed attempts; `retry_after` says how many seconds
    to wait (None when the service did not say). Never retried automatically."""

    default_code = "too_many_attempts"

    def __init__(
        self,
        message: str = "",
        code: Optional[str] = None,
        status: Optional[int] = None,
        retry_after: Optional[int] = None,
    ) -> None:
        super().__init__(message, code, status)
        self.retry_after = retry_after
