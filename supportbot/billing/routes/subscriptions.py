"""Routes for plans and subscriptions: list plans, cancel, accept the retention offer, and
preview or make a plan change."""

from __future__ import annotations

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.billing.idempotency import idempotency_key
from supportbot.billing.routes.common import in_thread, json_response, keyed_write, store
from supportbot.billing.validation import json_body, optional_text, text_field


def add_routes(app: Sanic) -> None:
    @app.get("/plans")
    async def list_plans(request: Request) -> HTTPResponse:
        return json_response({"plans": await in_thread(store(request).subscriptions.plans)})

    base = "/customers/<cid>/subscriptions/<sid>"

    @app.post(f"{base}/cancel")
    async def cancel(request: Request, cid: str, sid: str) -> HTTPResponse:
        key = idempotency_key(request)
        reason = optional_text(json_body(request), "reason", 500)
        return await keyed_write(request, key, cid, {"reason": reason},
                                 store(request).subscriptions.decide_cancel, cid, sid, reason)

    @app.post(f"{base}/retention-offer")
    async def accept_offer(request: Request, cid: str, sid: str) -> HTTPResponse:
        key = idempotency_key(request)
        offer_id = text_field(json_body(request), "offer_id", 64)
        return await keyed_write(request, key, cid, {"offer_id": offer_id},
                                 store(request).subscriptions.decide_offer, cid, sid, offer_id)

    @app.post(f"{base}/plan-change/preview")
    async def preview(request: Request, cid: str, sid: str) -> HTTPResponse:
        plan_id = text_field(json_body(request), "plan_id", 16)
        return json_response(await in_thread(store(request).subscriptions.preview_plan_change,
                                             cid, sid, plan_id))

    @app.post(f"{base}/plan-change")
    async def change_plan(request: Request, cid: str, sid: str) -> HTTPResponse:
        key = idempotency_key(request)
        plan_id = text_field(json_body(request), "plan_id", 16)
        return await keyed_write(request, key, cid, {"plan_id": plan_id},
                                 store(request).subscriptions.decide_plan_change, cid, sid,
                                 plan_id)
