"""Routes that change an order before it ships: cancel it, or change its shipping address."""

from __future__ import annotations

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.billing.idempotency import idempotency_key
from supportbot.billing.routes.common import caller, keyed_write, store
from supportbot.billing.validation import address_field, json_body, optional_text


def add_routes(app: Sanic) -> None:
    base = "/customers/<cid>/orders/<oid>"

    @app.post(f"{base}/cancel")
    async def cancel_order(request: Request, cid: str, oid: str) -> HTTPResponse:
        key = idempotency_key(request)
        reason = optional_text(json_body(request), "reason", 500)
        return await keyed_write(request, key, cid, {"reason": reason},
                                 store(request).orders.decide_cancel_order, cid, oid, reason,
                                 caller(request))

    @app.put(f"{base}/shipping-address")
    async def change_shipping_address(request: Request, cid: str, oid: str) -> HTTPResponse:
        key = idempotency_key(request)
        address = address_field(json_body(request), "address")
        return await keyed_write(request, key, cid, {"address": address},
                                 store(request).orders.decide_shipping_address, cid, oid, address)
