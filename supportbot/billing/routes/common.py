"""What every route module of the billing service uses to answer a request.

Responses (`json_response`, `html_response`), what the request carries (`caller`,
`conversation_id`, `public_base`), running the blocking `Store` in a worker thread
(`in_thread`) and the one way a route makes a keyed write (`keyed_write`).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, Dict, Optional, Tuple

from sanic.request import Request
from sanic.response import HTTPResponse, html

from supportbot.billing.auth import Caller
from supportbot.billing.idempotency import Reissue, Write, fingerprint, write_once
from supportbot.billing.operations import Store
from supportbot.billing.validation import ApiError, dumps

CONVERSATION_ID_MAX = 255


def json_response(
    payload: Any, status: int = 200, headers: Optional[Dict[str, str]] = None
) -> HTTPResponse:
    body = payload if isinstance(payload, str) else dumps(payload)
    return HTTPResponse(body, status=status, headers=headers, content_type="application/json")


def html_response(body: str, status: int = 200) -> HTTPResponse:
    return html(body, status=status, headers={"Cache-Control": "no-store"})


def store(request: Request) -> Store:
    return request.app.ctx.store


def caller(request: Request) -> Caller:
    """Who sent this request, as authenticated by `service._add_authentication`."""
    return request.ctx.caller


def conversation_id(request: Request) -> Optional[str]:
    """The caller's conversation (header X-Conversation-Id), for the verification counters."""
    value = (request.headers.get("X-Conversation-Id") or "").strip()
    if len(value) > CONVERSATION_ID_MAX:
        raise ApiError(400, "invalid_conversation_id",
                       f"X-Conversation-Id must be at most {CONVERSATION_ID_MAX} characters")
    return value or None


def public_base(request: Request) -> str:
    """Where links point: env BILLING_PUBLIC_URL, else this request's own origin."""
    return request.app.ctx.links.base(request.scheme, request.host)


async def in_thread(blocking: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking `Store` method without holding up the event loop."""
    call = functools.partial(blocking, *args)
    return await asyncio.get_running_loop().run_in_executor(None, call)


async def keyed_write(request: Request, key: str, scope: str, fields: Dict[str, Any],
                      decide: Callable[..., Tuple[Any, ...]], *args: Any,
                      reissue: Optional[Reissue] = None) -> HTTPResponse:
    """Run `decide(session, *args)` once per Idempotency-Key; replays get the stored answer."""
    method_path = f"{request.method} {request.path}"
    write = Write(scope, key, method_path, fingerprint(method_path, fields))
    status, body, replayed = await in_thread(
        write_once, store(request).sessions, write, lambda session: decide(session, *args), reissue)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return json_response(body, status=status, headers=headers)
