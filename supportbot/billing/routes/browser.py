"""Pages a browser opens from links: the invoice document, the card-update form and the
account unlock and email-confirmation pages.

A single-use token or a signature is their authorisation, so they are public
(`ctx_public=True`): a browser has no API key. Their errors are pages too (see `service`).
"""

from __future__ import annotations

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.billing.routes.common import html_response, in_thread, store


def add_routes(app: Sanic) -> None:
    @app.get("/documents/invoices/<iid>", ctx_public=True)
    async def invoice_document(request: Request, iid: str) -> HTTPResponse:
        app.ctx.links.check_invoice(iid, request.args.get("expires"), request.args.get("sig"))
        return html_response(await in_thread(store(request).customers.invoice_document, iid))

    @app.get("/pay/update", ctx_public=True)
    async def card_form(request: Request) -> HTTPResponse:
        token = request.args.get("token")
        return html_response(await in_thread(store(request).payment_methods.payment_link_page,
                                             token))

    @app.post("/pay/update", ctx_public=True)
    async def save_card(request: Request) -> HTTPResponse:
        form = {name: request.form.get(name) or "" for name in
                ("token", "card_number", "exp_month", "exp_year")}
        status, body = await in_thread(store(request).payment_methods.save_card, form["token"],
                                       form)
        return html_response(body, status)

    @app.get("/account/unlock", ctx_public=True)
    async def unlock(request: Request) -> HTTPResponse:
        token = request.args.get("token")
        return html_response(await in_thread(store(request).accounts.unlock, token))

    @app.get("/account/confirm-email", ctx_public=True)
    async def confirm_email(request: Request) -> HTTPResponse:
        token = request.args.get("token")
        return html_response(await in_thread(store(request).accounts.confirm_email, token))
