"""Routes for money going back: refund quotes, refunds (created and listed) and disputes."""

from __future__ import annotations

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.billing.idempotency import idempotency_key
from supportbot.billing.models import Refund
from supportbot.billing.routes.common import caller, in_thread, json_response, keyed_write, store
from supportbot.billing.validation import (
    RefundRequest,
    TargetRef,
    amount_field,
    json_body,
    text_field,
)


def add_routes(app: Sanic) -> None:
    @app.post("/customers/<cid>/refunds/quote")
    async def quote_refund(request: Request, cid: str) -> HTTPResponse:
        data = json_body(request)
        ref, amount = TargetRef.from_body(data), amount_field(data, required=False)
        return json_response(await in_thread(store(request).refunds.quote, cid, ref, amount))

    @app.post("/customers/<cid>/refunds")
    async def create_refund(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        req = RefundRequest.from_body(json_body(request))
        return await keyed_write(request, key, cid, req.fields(),
                                 store(request).refunds.decide_refund, cid, req, caller(request))

    @app.get("/customers/<cid>/refunds")
    async def list_refunds(request: Request, cid: str) -> HTTPResponse:
        order_id = request.args.get("order_id")
        filters = [Refund.order_id == order_id] if order_id else []
        rows = await in_thread(store(request).customers.list_rows, Refund, cid,
                               Refund.created_at, *filters)
        return json_response({"refunds": rows})

    @app.get("/customers/<cid>/refunds/<rid>")
    async def get_refund(request: Request, cid: str, rid: str) -> HTTPResponse:
        return json_response(await in_thread(store(request).customers.get, Refund, cid, rid))

    @app.post("/customers/<cid>/disputes")
    async def create_dispute(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        data = json_body(request)
        payment_id, reason = text_field(data, "payment_id", 16), text_field(data, "reason", 500)
        return await keyed_write(request, key, cid, {"payment_id": payment_id, "reason": reason},
                                 store(request).refunds.decide_dispute, cid, payment_id, reason,
                                 caller(request))
