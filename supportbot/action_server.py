"""The action server: rasa-sdk's ActionExecutor behind a caller check, on loopback.

`rasa run actions` listens on every interface, answers anyone, and runs each action on its
single event loop, so one slow billing call holds every conversation. This server:

- answers only callers that send `Authorization: Bearer $ACTION_SERVER_TOKEN` (Rasa sends it:
  `headers` of `action_endpoint` in endpoints.yml), compared in constant time, before the body
  is read as an action call;
- binds to 127.0.0.1 unless told otherwise (`--host`, `ACTION_SERVER_HOST`);
- runs every action in a bounded pool of worker threads (`ACTION_SERVER_THREADS`, default 16),
  each with its own event loop, so blocking client calls inside sync or async actions never
  stall other conversations;
- answers errors without echoing the request (it holds the customer's messages);
- serves Prometheus metrics of its requests, actions, fallbacks and handoffs at `/metrics`
  (docs/observability.md), and logs JSON lines naming the conversation when
  SUPPORTBOT_LOG_FORMAT=json.

Run it as `python -m supportbot.action_server --port 5055` (docs/security.md).
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import itertools
import json
import logging
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Optional

from rasa_sdk import utils as sdk_utils
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot import logs, metrics, settings
from supportbot.handoff import routing
from supportbot.redact import install_log_masking

logger = logging.getLogger(__name__)

TOKEN_ENV = "ACTION_SERVER_TOKEN"
# A tracker of a long conversation is a few MB at most; Sanic's default is 100 MB.
REQUEST_MAX_SIZE = 20 * 1024 * 1024
PUBLIC_PATHS = {"/health", "/metrics"}  # /metrics checks its own token (metrics.authorized)

_thread_state = threading.local()
_app_numbers = itertools.count()


def _run_on_thread_loop(executor: ActionExecutor, action_call: Dict[str, Any]) -> Any:
    """Run one action to completion on this worker thread's own event loop; its log lines
    name the conversation."""
    loop = getattr(_thread_state, "loop", None)
    if loop is None:
        loop = _thread_state.loop = asyncio.new_event_loop()
    sender = action_call.get("sender_id")
    with logs.conversation(sender if isinstance(sender, str) else None):
        return loop.run_until_complete(executor.run(action_call))


def authorized(request: Request, token: str) -> bool:
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def _action_call(request: Request) -> Optional[Dict[str, Any]]:
    """The JSON object Rasa sent (deflate-compressed or not), or None when it is not one."""
    body = request.body or b""
    try:
        if request.headers.get("content-encoding") == "deflate":
            body = zlib.decompress(body)
        call = json.loads(body)
    except (ValueError, zlib.error, RecursionError):
        return None
    return call if isinstance(call, dict) else None


def create_app(actions_package: str, token: str, threads: int) -> Sanic:
    if not token:
        raise ValueError(f"{TOKEN_ENV} is empty: the action server must authenticate Rasa")
    # Sanic refuses two apps of one name in a process; tests may build several.
    app = Sanic(f"supportbot_actions_{next(_app_numbers)}", configure_logging=False)
    app.config.REQUEST_MAX_SIZE = REQUEST_MAX_SIZE
    executor = ActionExecutor()
    executor.register_package(actions_package)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="action")
    metrics.instrument(app, "actions")

    @app.on_request
    async def check_caller(request: Request) -> Optional[HTTPResponse]:
        if request.path in PUBLIC_PATHS or authorized(request, token):
            return None
        return response.json({"error": "unauthorized"}, status=401)

    @app.get("/health")
    async def health(_: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    @app.get("/actions")
    async def actions(_: Request) -> HTTPResponse:
        return response.json([{"name": name} for name in executor.actions if name])

    @app.post("/webhook")
    async def webhook(request: Request) -> HTTPResponse:
        action_call = _action_call(request)
        if action_call is None or not isinstance(action_call.get("next_action"), str):
            return response.json({"error": "The body must be a JSON action call."}, status=400)
        sdk_utils.check_version_compatibility(action_call.get("version"))
        loop = asyncio.get_running_loop()
        name = metrics.action_label(action_call["next_action"], executor.actions)
        started, outcome = time.perf_counter(), "error"
        try:
            result = await loop.run_in_executor(pool, _run_on_thread_loop, executor, action_call)
            outcome = "ok"
        except ActionExecutionRejection as error:
            outcome = "rejected"
            return response.json({"error": error.message, "action_name": error.action_name}, status=400)
        except ActionNotFoundException as error:
            outcome = "not_found"
            return response.json({"error": error.message, "action_name": error.action_name}, status=404)
        finally:
            metrics.count_action(name, outcome, time.perf_counter() - started)
        return response.json(result)

    @app.exception(Exception)
    async def internal_error(request: Request, error: Exception) -> HTTPResponse:
        logger.error("Action call failed on %s", request.path, exc_info=error)
        return response.json({"error": "internal error"}, status=500)

    @app.after_server_stop
    async def stop_pool(*_: Any) -> None:
        pool.shutdown(wait=False)

    return app


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description="Run the assistant's action server.")
    parser.add_argument("--host", default=settings.get("ACTION_SERVER_HOST"))
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--actions", default="actions", help="the package with the actions")
    parser.add_argument("--threads", type=int,
                        default=settings.integer("ACTION_SERVER_THREADS", minimum=1))
    args = parser.parse_args(argv)
    install_log_masking()
    try:
        json_logs = logs.configure("actions")
    except ValueError as error:
        parser.exit(2, f"{error}\n")
    if not json_logs:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    token = settings.get(TOKEN_ENV) or ""
    if not token:
        parser.exit(2, f"{TOKEN_ENV} is not set: the action server answers only Rasa, which sends "
                       "it (endpoints.yml). `supportbot run` generates one.\n")
    try:  # a wrong routing map stops the server here, with the reason, not at the first handoff
        routing.from_env()
    except ValueError as error:
        parser.exit(2, f"{error}\n")
    app = create_app(args.actions, token, args.threads)
    logger.info("Action server on http://%s:%d (%d worker threads)", args.host, args.port, args.threads)
    app.run(host=args.host, port=args.port, workers=1, access_log=False)


if __name__ == "__main__":
    main()
