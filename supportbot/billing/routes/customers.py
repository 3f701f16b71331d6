"""Routes about one customer: verification, their record and name, and their collections
(orders, invoices, payments, disputes, subscriptions) and duplicate charges."""

from __future__ import annotations

from typing import Any, Callable, Dict
from urllib.parse import quote

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.billing.idempotency import idempotency_key
from supportbot.billing.models import Dispute, Invoice, Order, Payment, Subscription
from supportbot.billing.routes.common import (
    caller,
    conversation_id,
    in_thread,
    json_response,
    keyed_write,
    public_base,
    store,
)
from supportbot.billing.validation import ApiError, json_body, order_id_field, text_field


def add_routes(app: Sanic) -> None:
    @app.post("/customers/verify")
    async def verify(request: Request) -> HTTPResponse:
        data = json_body(request)
        email = text_field(data, "email", 254)
        if "@" not in email:
            raise ApiError(400, "invalid_field", "'email' must be an email address")
        order_id = order_id_field(data)
        return json_response(await in_thread(store(request).customers.verify, email, order_id,
                                             caller(request), conversation_id(request)))

    @app.get("/customers/<cid>")
    async def get_customer(request: Request, cid: str) -> HTTPResponse:
        return json_response(await in_thread(store(request).customers.customer, cid))

    @app.patch("/customers/<cid>")
    async def rename_customer(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        name = text_field(json_body(request), "name", 200)
        return await keyed_write(request, key, cid, {"name": name},
                                 store(request).customers.decide_rename, cid, name)

    @app.get("/customers/<cid>/payments/duplicates")
    async def duplicates(request: Request, cid: str) -> HTTPResponse:
        found = await in_thread(store(request).customers.duplicates, cid)
        return json_response({"duplicates": found})

    _add_collection(app, "orders", Order, Order.placed_at)
    _add_collection(app, "invoices", Invoice, Invoice.issued_at, decorate=_with_document_url)
    _add_collection(app, "payments", Payment, Payment.created_at, with_item_route=False)
    _add_collection(app, "disputes", Dispute, Dispute.created_at, with_item_route=False)
    _add_collection(app, "subscriptions", Subscription, Subscription.started_at)


def _with_document_url(request: Request, invoice: Dict[str, Any]) -> Dict[str, Any]:
    url = request.app.ctx.links.invoice_url(public_base(request), quote(invoice["id"], safe=""))
    return {**invoice, "document_url": url}


def _add_collection(
    app: Sanic, name: str, model: Any, newest_first: Any, with_item_route: bool = True,
    decorate: Callable[[Request, Dict[str, Any]], Dict[str, Any]] = lambda _, row: row,
) -> None:
    async def list_items(request: Request, cid: str) -> HTTPResponse:
        rows = await in_thread(store(request).customers.list_rows, model, cid, newest_first)
        return json_response({name: [decorate(request, row) for row in rows]})

    async def get_item(request: Request, cid: str, item_id: str) -> HTTPResponse:
        row = await in_thread(store(request).customers.get, model, cid, item_id)
        return json_response(decorate(request, row))

    app.add_route(list_items, f"/customers/<cid>/{name}", methods=["GET"], name=f"list_{name}")
    if with_item_route:
        app.add_route(get_item, f"/customers/<cid>/{name}/<item_id>", methods=["GET"],
                      name=f"get_{name}")
