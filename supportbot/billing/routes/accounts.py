"""Routes for account help: a link to update the card, email-address changes, password resets
and account unlocks. The last two are not made under a customer (scope `ANONYMOUS`)."""

from __future__ import annotations

from typing import Any, Callable, Tuple

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.billing.idempotency import ANONYMOUS, idempotency_key
from supportbot.billing.routes.common import keyed_write, public_base, store
from supportbot.billing.validation import email_field, json_body


def add_routes(app: Sanic) -> None:
    @app.post("/customers/<cid>/payment-method-links")
    async def payment_link(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        if request.body:
            json_body(request)  # no fields, but a body must still be JSON
        methods = store(request).payment_methods
        return await keyed_write(request, key, cid, {}, methods.decide_payment_link, cid,
                                 public_base(request), reissue=methods.reissue_payment_link)

    @app.post("/customers/<cid>/email-changes")
    async def email_change(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        new_email = email_field(json_body(request), "new_email")
        return await keyed_write(request, key, cid, {"new_email": new_email},
                                 store(request).accounts.decide_email_change, cid, new_email,
                                 public_base(request))

    @app.post("/password-resets")
    async def password_reset(request: Request) -> HTTPResponse:
        return await _mail_by_email(request, store(request).accounts.decide_password_reset)

    @app.post("/account-unlocks")
    async def account_unlock(request: Request) -> HTTPResponse:
        return await _mail_by_email(request, store(request).accounts.decide_unlock)


async def _mail_by_email(request: Request, decide: Callable[..., Tuple[Any, ...]]) -> HTTPResponse:
    """A mail asked for by email address alone, so not under a customer (scope `ANONYMOUS`)."""
    key = idempotency_key(request)
    email = email_field(json_body(request), "email")
    return await keyed_write(request, key, ANONYMOUS, {"email": email}, decide, email,
                             public_base(request))
