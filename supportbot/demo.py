"""The demo store: a few pages of a shop (home, orders, an order, billing) with the support
chat widget embedded, as a host site would embed it (docs/web-widget.md).

It plays the host site's part: it knows who is logged in (the demo customer, alice@example.com)
and signs a short-lived `customer_token` for the widget with SUPPORTBOT_IDENTITY_SECRET; the
order page tells the widget which order it shows. Everything is served from here (pages, the
widget, the socket.io client built into web/dist by `npm ci`): nothing comes from the internet.

  python -m supportbot.demo --port 5057 --rasa-url http://127.0.0.1:5005 --billing-url http://127.0.0.1:5056
"""
from __future__ import annotations

import argparse
import html
import json
import mimetypes
import re
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

from supportbot import settings
from supportbot.clients.billing import BillingClient
from supportbot.errors import BackendError, NotFound
from supportbot.identity import issue_token, secret_from_env

WIDGET_DIR = Path(__file__).resolve().parent.parent / "web" / "dist"
DEMO_CUSTOMER_ID = "C-1001"  # alice@example.com in the billing service's seed data
STATIC_FILES = ("widget.js", "widget.css", "socket.io.min.js")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Northwind</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/widget/widget.css">
<style>
  body {{ margin: 0; font: 16px/1.5 system-ui, "DejaVu Sans", sans-serif; color: #0f172a; background: #f8fafc; }}
  header {{ background: #0f172a; color: #fff; padding: 12px 20px; display: flex; gap: 20px; flex-wrap: wrap;
           align-items: center; }}
  header a {{ color: #fff; text-decoration: none; }} header strong {{ margin-right: auto; }}
  main {{ max-width: 860px; margin: 0 auto; padding: 20px; }}
  table {{ border-collapse: collapse; width: 100%; background: #fff; }}
  th, td {{ text-align: left; padding: 8px 10px; border-bottom: 1px solid #e2e8f0; }}
  .note {{ color: #475569; font-size: 14px; }}
  @media (max-width: 480px) {{ main {{ padding: 12px; }} th, td {{ padding: 6px; }} }}
</style>
</head>
<body>
<header><strong>Northwind</strong>
  <nav aria-label="Store">
    <a href="/">Home</a> · <a href="/orders">Orders</a> · <a href="/billing">Billing</a></nav>
  <span class="note" style="color:#cbd5e1">{who}</span></header>
<main>
<h1>{title}</h1>
{body}
</main>
<script src="/widget/socket.io.min.js"></script>
<script src="/widget/widget.js"></script>
<script>SupportWidget.mount({config});</script>
</body>
</html>
"""


class DemoStore:
    def __init__(self, rasa_url: str, billing: BillingClient, customer_id: str,
                 secret: Optional[str], widget_dir: Path = WIDGET_DIR) -> None:
        self.rasa_url, self.billing, self.customer_id = rasa_url, billing, customer_id
        self.secret, self.widget_dir = secret, widget_dir

    def page(self, path: str) -> Tuple[int, str]:
        """(status, HTML) for a page path."""
        order = re.fullmatch(r"/orders/(\d{7})", path)
        try:
            if path == "/":
                return 200, self.render("Welcome", self.home(), {"type": "home"}, path)
            if path == "/orders":
                return 200, self.render("Your orders", self.orders(), {"type": "orders"}, path)
            if order:
                title, body = self.order(order.group(1))
                return 200, self.render(title, body, {"type": "order", "order_id": order.group(1)}, path)
            if path == "/billing":
                return 200, self.render("Billing", self.invoices(), {"type": "billing"}, path)
        except NotFound:
            pass
        except BackendError as error:
            return 503, self.render("Unavailable", f"<p>The billing service is unavailable: "
                                    f"{html.escape(str(error))}</p>", {"type": "error"}, path)
        return 404, self.render("Not found", "<p>No such page.</p>", {"type": "not_found"}, path)

    def render(self, title: str, body: str, page: Dict[str, Any], path: str) -> str:
        config: Dict[str, Any] = {"socketUrl": self.rasa_url, "page": {**page, "path": path, "title": title}}
        if self.secret:
            config["customerToken"] = issue_token(self.customer_id, self.secret, ttl_seconds=3600)
        who = "Signed in as Alice Martin" if self.secret else "Not signed in (no SUPPORTBOT_IDENTITY_SECRET)"
        # "</" cannot end the script element from inside the JSON.
        config_json = json.dumps(config).replace("</", "<\\/")
        return PAGE.format(title=html.escape(title), body=body, who=who, config=config_json)

    @staticmethod
    def home() -> str:
        return ("<p>Headphones, lamps, socks and more, delivered to your door.</p>"
                "<p>Questions about an order, a refund or your bill? Open the chat at the bottom right: "
                "try <em>where is my order?</em> on an order's page.</p>")

    def orders(self) -> str:
        rows = "".join(
            f'<tr><td><a href="/orders/{o.id}">{o.id}</a></td><td>{o.placed_at:%Y-%m-%d}</td>'
            f"<td>{html.escape(o.status)}</td><td>{o.total} {o.currency}</td></tr>"
            for o in self.billing.list_orders(self.customer_id))
        return ("<table><caption class='note'>Your orders</caption><thead><tr><th>Order</th><th>Placed</th>"
                f"<th>Status</th><th>Total</th></tr></thead><tbody>{rows}</tbody></table>")

    def order(self, order_id: str) -> Tuple[str, str]:
        o = self.billing.get_order(self.customer_id, order_id)
        items = "".join(f"<li>{i.qty} × {html.escape(i.name)} ({i.unit_price} {o.currency})</li>" for i in o.items)
        tracking = f"<p>{html.escape(o.carrier or '')} {html.escape(o.tracking_number or '')}</p>" \
            if o.tracking_number else ""
        return f"Order {o.id}", (f"<p>Status: <strong>{html.escape(o.status)}</strong></p>{tracking}"
                                 f"<ul>{items}</ul><p>Total: {o.total} {o.currency}</p>")

    def invoices(self) -> str:
        rows = "".join(f"<tr><td>{i.id}</td><td>{i.issued_at:%Y-%m-%d}</td><td>{i.amount} {i.currency}</td>"
                       f"<td>{html.escape(i.status)}</td><td>{self.download(i.document_url)}</td></tr>"
                       for i in self.billing.list_invoices(self.customer_id))
        return ("<table><caption class='note'>Invoices</caption><thead><tr><th>Invoice</th><th>Issued</th>"
                f"<th>Amount</th><th>Status</th><th>Document</th></tr></thead><tbody>{rows}</tbody></table>")

    @staticmethod
    def download(url: Optional[str]) -> str:
        """A link to the billing service's signed invoice document."""
        return f"<a href=\"{html.escape(url)}\">Download</a>" if url else ""


class Handler(BaseHTTPRequestHandler):
    def __init__(self, store: DemoStore, *args: Any, **kwargs: Any) -> None:
        self.store = store
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = urlsplit(self.path).path
        if path == "/health":
            return self.send(200, b'{"status": "ok"}', "application/json")
        if path.startswith("/widget/"):
            name = path[len("/widget/"):]
            file = self.store.widget_dir / name
            if name not in STATIC_FILES or not file.is_file():
                return self.send(404, b"Not found (did `npm ci && npm run build` run in web/?)", "text/plain")
            return self.send(200, file.read_bytes(), mimetypes.guess_type(name)[0] or "application/octet-stream")
        status, page = self.store.page(path.rstrip("/") or "/")
        return self.send(status, page.encode("utf-8"), "text/html; charset=utf-8")

    def send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus(status))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        print(f"{self.address_string()} {format % args}", flush=True)


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m supportbot.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5057)
    parser.add_argument("--rasa-url", default="http://127.0.0.1:5005", help="as the browser reaches it")
    parser.add_argument("--billing-url", default="http://127.0.0.1:5056")
    parser.add_argument("--customer-id", default=DEMO_CUSTOMER_ID)
    args = parser.parse_args(argv)
    billing = BillingClient(args.billing_url, timeout=5, api_key=settings.get("BILLING_API_KEY"))
    store = DemoStore(args.rasa_url, billing, args.customer_id,
                      secret_from_env())
    server = ThreadingHTTPServer((args.host, args.port), partial(Handler, store))
    print(f"Demo store on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
