"""Prometheus metrics of the assistant's servers, defined in one place (docs/observability.md).

Each server is its own process with its own registry and its own `GET /metrics` on its own
port: the Rasa server (channels, turns, the loaded model), the action server (actions,
fallbacks, handoffs) and the billing service. `instrument(app, server)` adds that route and
the HTTP request metrics to a Sanic app before it starts; the channels do it for Rasa's app
with `instrument_on_register`, since Rasa builds that app itself.

`/metrics` is open unless SUPPORTBOT_METRICS_TOKEN is set; then it needs
`Authorization: Bearer <token>`. Either way keep it off the public internet (the proxy in
front of Rasa should refuse `/metrics`).

Label values are bounded: routes are Sanic's route patterns (`/orders/<order_id>`, never the
id), unknown actions and channels are counted as "other", and no label ever holds text a
customer typed.
"""
from __future__ import annotations

import hmac
import time
from typing import Any, Callable, Iterable, Optional

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot import settings

TOKEN_SETTING = "SUPPORTBOT_METRICS_TOKEN"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
TURN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
CHANNELS = frozenset({"rest", "socketio", "slack"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The actions that answer a fallback (config.yml, data/rules/fallback.yml), by kind.
FALLBACK_ACTIONS = {"action_handle_nlu_fallback": "nlu", "action_repair_fallback": "dialogue"}

disable_created_metrics()  # no `_created` series beside every counter: dashboards never use them

# Each metric is registered only by the servers that update it (SERVER_METRICS), so a server's
# /metrics shows no series that can never move there. `registry=None` defers that to `instrument`.
HTTP_REQUESTS = Counter(
    "supportbot_http_requests_total", "HTTP requests answered, by server, route pattern, method and status.",
    ["server", "route", "method", "status"], registry=None)
HTTP_LATENCY = Histogram(
    "supportbot_http_request_duration_seconds", "Time from request head to response, by server and route.",
    ["server", "route", "method"], buckets=HTTP_BUCKETS, registry=None)
ERRORS = Counter(
    "supportbot_errors_total", "Unhandled errors (a 5xx, a failed turn), by server and exception class.",
    ["server", "kind"], registry=None)
TURNS = Counter(
    "supportbot_turns_total", "Customer messages the assistant handled, by channel.", ["channel"], registry=None)
TURN_LATENCY = Histogram(
    "supportbot_turn_duration_seconds", "Time from a customer's message to the assistant's last answer.",
    ["channel"], buckets=TURN_BUCKETS, registry=None)
ACTIONS = Counter(
    "supportbot_actions_total", "Custom actions run, by action and outcome (ok, rejected, not_found, error).",
    ["action", "outcome"], registry=None)
ACTION_LATENCY = Histogram(
    "supportbot_action_duration_seconds", "Time one custom action took, by action.", ["action"],
    buckets=TURN_BUCKETS, registry=None)
HANDOFFS = Counter(
    "supportbot_handoffs_total", "Conversations handed to a person, by reason, team and priority.",
    ["reason", "team", "priority"], registry=None)
FALLBACKS = Counter(
    "supportbot_fallbacks_total",
    "Turns the assistant did not understand: nlu (NLU unsure) or dialogue (no rule or story fits).",
    ["kind"], registry=None)
MODEL = Info(
    "supportbot_model", "The model the Rasa server has loaded (changes when a new one is swapped in).",
    registry=None)
SOCKETIO_CONNECTIONS = Gauge(
    "supportbot_socketio_connections", "Web chat sockets connected to this Rasa server.", registry=None)

for _kind in sorted(set(FALLBACK_ACTIONS.values())):
    FALLBACKS.labels(_kind)  # both kinds exist from the start, at 0, so rates work at once

SERVER_METRICS = {
    "rasa": (HTTP_REQUESTS, HTTP_LATENCY, ERRORS, TURNS, TURN_LATENCY, MODEL, SOCKETIO_CONNECTIONS),
    "actions": (HTTP_REQUESTS, HTTP_LATENCY, ERRORS, ACTIONS, ACTION_LATENCY, FALLBACKS, HANDOFFS),
    "billing": (HTTP_REQUESTS, HTTP_LATENCY, ERRORS),
}
_registered: set = set()


def _register(server: str) -> None:
    """Expose `server`'s metrics in this process's registry (with the process's CPU, memory and
    file descriptors, which prometheus_client collects by default); each one once."""
    for metric in SERVER_METRICS[server]:
        if id(metric) not in _registered:
            REGISTRY.register(metric)
            _registered.add(id(metric))


def channel_label(name: Optional[str]) -> str:
    """A channel's name as a label: one of CHANNELS, else "other" (REST clients may name their own)."""
    return name if name in CHANNELS else "other"


def action_label(name: Any, known: Iterable[str]) -> str:
    return name if isinstance(name, str) and name in known else "other"


def count_handoff(reason: str, team: Optional[str], priority: Optional[str]) -> None:
    HANDOFFS.labels(reason, team or "none", priority or "none").inc()


def count_action(name: str, outcome: str, seconds: float) -> None:
    ACTIONS.labels(name, outcome).inc()
    ACTION_LATENCY.labels(name).observe(seconds)
    if outcome == "ok" and name in FALLBACK_ACTIONS:
        FALLBACKS.labels(FALLBACK_ACTIONS[name]).inc()


def set_model(model_id: Optional[str], model_file: Optional[str]) -> None:
    MODEL.info({"model_id": model_id or "none", "model_file": model_file or "none"})


def authorized(request: Request) -> bool:
    """Whether the caller may read /metrics: anyone when no token is set, else its bearer."""
    token = settings.get(TOKEN_SETTING)
    if not token:
        return True
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def instrument(app: Sanic, server: str, skip_prefixes: Iterable[str] = (),
               before_scrape: Optional[Callable[[Sanic], None]] = None) -> None:
    """Add GET /metrics and the HTTP request metrics (every request but those under
    `skip_prefixes` and /metrics itself) to `app`; call before the app starts.
    `before_scrape(app)` updates gauges read from the app (the model) at each scrape."""
    _register(server)
    skipped = ("/metrics", *skip_prefixes)

    @app.signal("http.lifecycle.request")
    async def started(request: Request) -> None:
        request.ctx.metrics_started = time.perf_counter()

    @app.signal("http.lifecycle.response")
    async def answered(request: Request, response: HTTPResponse) -> None:
        if request.path.startswith(skipped):
            return
        route = getattr(request, "route", None)
        label = "/" + route.path if route is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"  # any token parses as one
        HTTP_REQUESTS.labels(server, label, method, str(response.status)).inc()
        started_at = getattr(request.ctx, "metrics_started", None)
        if started_at is not None:
            HTTP_LATENCY.labels(server, label, method).observe(time.perf_counter() - started_at)

    @app.signal("http.lifecycle.exception")
    async def failed(request: Request, exception: BaseException) -> None:
        status = getattr(exception, "status_code", None) or getattr(exception, "status", None)
        if not isinstance(status, int) or status >= 500:
            ERRORS.labels(server, type(exception).__name__).inc()

    async def metrics(request: Request) -> HTTPResponse:
        if not authorized(request):
            return response.json({"error": f"/metrics needs the {TOKEN_SETTING} bearer token."}, status=401)
        if before_scrape is not None:
            before_scrape(request.app)
        return response.raw(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    app.route("/metrics", methods=["GET"], name="supportbot_metrics", ctx_public=True)(metrics)


def _rasa_model(app: Sanic) -> None:
    agent = getattr(app.ctx, "agent", None)
    processor = getattr(agent, "processor", None)
    path = getattr(processor, "model_path", None)
    set_model(getattr(agent, "model_id", None) if agent else None, getattr(path, "name", None))


class InstrumentingBlueprint(Blueprint):
    """A blueprint without routes that instruments the Rasa server's app when it is registered
    on it: the only moment a channel holds the app before its routes are fixed (Rasa builds the
    app itself). A channel returns it beside its own: `(blueprint, InstrumentingBlueprint(...))`,
    which Sanic registers like one. Several channels may: the first one instruments the app,
    and calls `on_app(app)` then."""

    def __init__(self, name: str, on_app: Optional[Callable[[Sanic], None]] = None) -> None:
        super().__init__(name)
        self.ctx.on_app = on_app

    def register(self, app: Sanic, options: Any) -> None:
        super().register(app, options)
        if getattr(app.ctx, "supportbot_instrumented", False):
            return
        app.ctx.supportbot_instrumented = True
        instrument(app, "rasa", skip_prefixes=("/socket.io",), before_scrape=_rasa_model)
        if self.ctx.on_app is not None:
            self.ctx.on_app(app)


class Turn:
    """Times one customer message through a channel: `with Turn(channel): ...`."""

    def __init__(self, channel: Optional[str]) -> None:
        self.channel = channel_label(channel)

    def __enter__(self) -> Turn:
        self.started = time.perf_counter()
        return self

    def __exit__(self, kind: Any, error: Any, _: Any) -> None:
        TURNS.labels(self.channel).inc()
        TURN_LATENCY.labels(self.channel).observe(time.perf_counter() - self.started)
        if kind is not None and issubclass(kind, Exception):
            ERRORS.labels("rasa", kind.__name__).inc()
