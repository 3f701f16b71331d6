"""The HTTP transport the RT and Zendesk adapters share: timeouts, retries, error mapping.

Every request has a timeout. Only requests that are safe to repeat (GETs, and POSTs carrying
an idempotency key the server honours) are retried, with a short backoff, on connection
failures, timeouts, 429 and 5xx. Failures surface as the typed errors of `supportbot.errors`;
BackendUnavailable says in `code` whether the request surely never reached the server
("unreachable") or its outcome is unknown ("timeout", "server_error"). Only method, path,
status and duration are logged -- never bodies.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Optional

import requests
from urllib3.exceptions import NewConnectionError

from supportbot.errors import BackendError, BackendUnavailable, Conflict, Forbidden, InvalidRequest, NotFound

logger = logging.getLogger(__name__)

_ERRORS_BY_STATUS = {401: Forbidden, 403: Forbidden, 404: NotFound, 409: Conflict}
MAX_RETRY_AFTER = 5.0  # seconds we are willing to wait on a 429's Retry-After


class _Transient(Exception):
    def __init__(self, error: BackendUnavailable, wait: float = 0.0) -> None:
        super().__init__(error.message)
        self.error, self.wait = error, wait


class JsonApi:
    """One JSON-over-HTTP API: a base URL, credentials, a timeout and a retry budget."""

    def __init__(self, name: str, base_url: str, *, auth: Any = None, timeout: float = 5.0,
                 retries: int = 2, backoff: float = 0.1, session: Optional[requests.Session] = None,
                 error_for: Optional[Callable[[requests.Response], Optional[BackendError]]] = None) -> None:
        self.name, self.base_url = name, base_url.rstrip("/")
        self.timeout, self.retries, self.backoff = timeout, max(0, retries), backoff
        self.session = session or requests.Session()
        self.session.auth = auth
        self._error_for_backend = error_for

    def request(self, method: str, path: str, *, body: Any = None, params: Optional[Dict[str, str]] = None,
                headers: Optional[Dict[str, str]] = None, retry: Optional[bool] = None) -> Any:
        """Send one logical request and return the decoded 2xx JSON body (None when empty)."""
        retryable = method == "GET" if retry is None else retry
        attempts = 1 + (self.retries if retryable else 0)
        for attempt in range(attempts):
            try:
                return self._send(method, path, body, params, headers or {})
            except _Transient as transient:
                if attempt + 1 >= attempts:
                    raise transient.error from None
                time.sleep(max(transient.wait, self.backoff * (2**attempt)))
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, path: str, body: Any, params: Any, headers: Dict[str, str]) -> Any:
        started = time.monotonic()
        try:
            response = self.session.request(method, self.base_url + path, json=body, params=params,
                                            headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            logger.warning("%s %s %s failed after %.0f ms: %s", self.name, method, path,
                           _ms_since(started), type(exc).__name__)
            raise _Transient(_unavailable(self.name, exc)) from None
        logger.debug("%s %s %s -> %s in %.0f ms", self.name, method, path, response.status_code,
                     _ms_since(started))
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(self._error(response), _retry_after(response))
        if not 200 <= response.status_code < 300:
            raise self._error(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise BackendUnavailable(f"{self.name} returned a body that is not JSON",
                                     status=response.status_code) from None

    def _error(self, response: requests.Response) -> BackendError:
        status = response.status_code
        specific = self._error_for_backend(response) if self._error_for_backend else None
        if specific is not None:
            return specific
        if status == 429:
            return BackendUnavailable(f"{self.name} is rate limiting us", code="rate_limited", status=status)
        if status >= 500 or status < 400:
            return BackendUnavailable(f"{self.name} answered HTTP {status}", code="server_error", status=status)
        return _ERRORS_BY_STATUS.get(status, InvalidRequest)(f"{self.name} answered HTTP {status}", status=status)


def _unavailable(name: str, exc: requests.RequestException) -> BackendUnavailable:
    if _never_sent(exc):
        return BackendUnavailable(f"{name} unreachable ({type(exc).__name__})", code="unreachable")
    if isinstance(exc, requests.Timeout):
        return BackendUnavailable(f"{name} did not answer in time", code="timeout")
    return BackendUnavailable(f"{name} connection failed ({type(exc).__name__})", code="connection_failed")


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the server (refused, or no connection in time)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _retry_after(response: requests.Response) -> float:
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(response.headers.get("Retry-After", "0"))))
    except ValueError:
        return 0.0


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000
