"""Reference billing & orders service: `create_app` builds the Sanic app that serves it.

It stands in for a real commerce backend so the assistant, its actions and its tests have
something honest to talk to. The contract is in `openapi.yaml`; the rules worth knowing
(authentication, customer scoping, refund policy and auto-limits, verification rate limit,
idempotency, duplicate charges, proration, links, outbox) are in docs/billing-service.md.
This module is the app around the routes: request guards, authentication (every JSON route
except the service routes needs an API key), error rendering, Prometheus metrics
(supportbot.metrics) and the lifecycle of the `Store`. The routes are in `routes/`, the
database work in `operations/`, the rules in `validation`, `idempotency`, `policy` and `cards`.
"""

from __future__ import annotations

import itertools
import logging
import re
from typing import Any, Callable, Optional
from urllib.parse import unquote

from sanic import Sanic
from sanic.exceptions import InvalidUsage, SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot import metrics, settings
from supportbot.billing import pages
from supportbot.billing.auth import ApiKeys, bearer_token
from supportbot.billing.limits import Limits
from supportbot.billing.links import LinkError, Links
from supportbot.billing.operations import Store
from supportbot.billing.routes import accounts, browser, customers, health, orders, refunds, subscriptions
from supportbot.billing.routes.common import html_response, json_response
from supportbot.billing.routes.health import OPENAPI_PATH  # noqa: F401 -- imported from here
from supportbot.billing.validation import ApiError, error_payload, not_found, unauthorized

logger = logging.getLogger(__name__)

REQUEST_MAX_SIZE = 64 * 1024
CONTENT_LENGTH_RE = re.compile(r"^[0-9]+$")
SANIC_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
_app_numbers = itertools.count(1)


def create_app(db_url: str, refund_window_days: Optional[int] = None,
               api_keys: Optional[ApiKeys] = None, limits: Optional[Limits] = None) -> Sanic:
    """Build the app; the database engine is created when the server starts.

    `refund_window_days` defaults to env BILLING_REFUND_WINDOW_DAYS, else 30. Links are
    signed with env BILLING_LINK_SECRET and point at env BILLING_PUBLIC_URL (see `links`).
    `api_keys` defaults to env BILLING_API_KEYS (see `auth`) and `limits` to the env settings
    of `limits`; both raise `auth.ConfigError` when set wrong, and there is no keyless mode.
    """
    if refund_window_days is None:
        refund_window_days = settings.integer("BILLING_REFUND_WINDOW_DAYS", minimum=1)
    api_keys = api_keys if api_keys is not None else ApiKeys.from_env()
    limits = limits if limits is not None else Limits.from_env()
    # Sanic refuses two apps with one name in a process; tests may build several.
    app = Sanic(f"supportbot_billing_{next(_app_numbers)}")
    app.config.REQUEST_MAX_SIZE = REQUEST_MAX_SIZE
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.links = Links.from_env()
    app.ctx.api_keys = api_keys
    metrics.instrument(app, "billing")  # GET /metrics, public to API keys (docs/observability.md)
    for add_routes in (_add_request_guards, _add_authentication, health.add_routes,
                       customers.add_routes, orders.add_routes, refunds.add_routes,
                       subscriptions.add_routes, accounts.add_routes, browser.add_routes,
                       _add_error_handlers):
        add_routes(app)
    _add_lifecycle(app, lambda: Store(db_url, refund_window_days, limits))
    return app


def _reject_nul(*parts: str) -> None:
    # Ids in the path or query never contain NUL, and Postgres would fail on it: not found.
    if any("\x00" in unquote(part) for part in parts):
        raise not_found("Resource")


def _add_request_guards(app: Sanic) -> None:
    # Runs once the head is parsed, before Sanic reads the body or routes the request.
    @app.signal("http.lifecycle.request")
    async def check_request_head(request: Request) -> None:
        _reject_nul(request.path, request.query_string)
        # Sanic 21.12 trusts int(Content-Length): "-5" makes it spin forever on the body and
        # stalls every request, so refuse anything that is not one plain number.
        lengths = request.headers.getall("content-length", [])
        if len(lengths) > 1 or any(not CONTENT_LENGTH_RE.match(v.strip()) for v in lengths):
            raise InvalidUsage("Bad Content-Length header")


def _add_authentication(app: Sanic) -> None:
    """Every route needs `Authorization: Bearer <key>` unless registered with `ctx_public=True`.

    Runs once the route is known and before the body is read, so an unauthenticated caller
    gets 401 before any validation (which could tell what exists) and cannot make us read
    its upload."""

    @app.signal("http.routing.after")
    async def authenticate(request: Request, route: Any, kwargs: Any, handler: Any) -> None:
        if getattr(route.ctx, "public", False):
            return
        headers = request.headers.getall("authorization", [])
        token = bearer_token(headers[0]) if len(headers) == 1 else None
        found = app.ctx.api_keys.identify(token) if token is not None else None
        if found is None:
            logger.warning("refused %s %s from %s: no valid API key", request.method,
                           route.path, request.ip)
            raise unauthorized()
        request.ctx.caller = found


def _add_error_handlers(app: Sanic) -> None:
    @app.exception(ApiError)
    async def api_error(request: Request, exc: ApiError) -> HTTPResponse:
        return json_response(error_payload(exc.code, exc.message), status=exc.status,
                             headers=exc.headers)

    @app.exception(LinkError)
    async def link_error(request: Request, exc: LinkError) -> HTTPResponse:
        # Browser pages answer errors as pages too.
        titles = {403: "Link not valid", 404: "Not found", 410: "Link expired"}
        title = titles.get(exc.status, "Something went wrong")
        return html_response(pages.message_page(title, exc.message), exc.status)

    @app.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
        status = getattr(exc, "status_code", 500) or 500
        code = SANIC_ERROR_CODES.get(status, "bad_request" if status < 500 else "internal_error")
        message = str(exc) if status < 500 else "Internal error"
        return json_response(error_payload(code, message), status=status)

    @app.exception(Exception)
    async def internal_error(request: Request, exc: Exception) -> HTTPResponse:
        if getattr(request, "route", None) is None:
            # Sanic failed while parsing the request itself (e.g. "Content-Length: abc"):
            # the client's fault, and no handler of ours ran.
            return json_response(error_payload("bad_request", "Malformed HTTP request"), 400)
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return json_response(error_payload("internal_error", "Internal error"), status=500)


def _add_lifecycle(app: Sanic, make_store: Callable[[], Store]) -> None:
    @app.before_server_start
    async def open_store(app: Sanic, _loop: Any) -> None:
        app.ctx.store = make_store()

    @app.after_server_stop
    async def close_store(app: Sanic, _loop: Any) -> None:
        app.ctx.store.engine.dispose()
