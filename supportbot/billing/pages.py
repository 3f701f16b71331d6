"""The few HTML pages the service serves to browsers: invoice documents, the card form,
account confirmations and their error pages. Every interpolated value is HTML-escaped."""

from __future__ import annotations

from html import escape
from typing import Any, Dict, Iterable, Optional, Tuple

SELLER = "Northwind Goods"

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; color: #222; }
table { width: 100%; border-collapse: collapse; margin: 1rem 0; }
th, td { text-align: left; padding: .4rem; border-bottom: 1px solid #ddd; }
td.num, th.num { text-align: right; }
.muted { color: #666; } .error { color: #a00; }
label { display: block; margin: .6rem 0; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  form, .no-print { display: none; }
  a { color: inherit; text-decoration: none; }
}
"""


def page(title: str, body_html: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body>{body_html}</body></html>\n")


def message_page(title: str, message: str) -> str:
    return page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")


def invoice_document(invoice: Dict[str, Any], customer: Dict[str, Any],
                     lines: Iterable[Tuple[str, int, str, str]]) -> str:
    """`lines` are (description, qty, unit price, line total), money already formatted."""
    e = escape
    rows = "".join(
        f"<tr><td>{e(name)}</td><td class='num'>{qty}</td><td class='num'>{e(unit)}</td>"
        f"<td class='num'>{e(total)}</td></tr>"
        for name, qty, unit, total in lines
    )
    currency = e(invoice["currency"])
    return page(f"Invoice {invoice['id']}", f"""
<header><h1>{e(SELLER)}</h1><p class="muted">Invoice</p></header>
<table>
<tr><th>Invoice</th><td>{e(invoice['id'])}</td></tr>
<tr><th>Issued</th><td>{e(invoice['issued_at'][:10])}</td></tr>
<tr><th>Status</th><td>{e(invoice['status'])}</td></tr>
<tr><th>Billed to</th><td>{e(customer['name'])}<br>{e(customer['email'])}</td></tr>
</table>
<table>
<thead><tr><th>Item</th><th class="num">Qty</th><th class="num">Unit price</th>
<th class="num">Amount</th></tr></thead>
<tbody>{rows}</tbody>
<tfoot><tr><th colspan="3">Total</th>
<th class="num">{e(invoice['amount'])} {currency}</th></tr></tfoot>
</table>
<p class="no-print"><button onclick="window.print()">Print</button></p>
""")


def card_form(token: str, error: Optional[str] = None) -> str:
    e = escape
    notice = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    return page("Update your payment method", f"""
<h1>Update your payment method</h1>
<p class="muted">{e(SELLER)} stores only your card's brand and last four digits.</p>
{notice}
<form method="post" action="/pay/update" autocomplete="on">
<input type="hidden" name="token" value="{e(token)}">
<label>Card number <input name="card_number" inputmode="numeric" autocomplete="cc-number"
 required maxlength="23"></label>
<label>Expiry month <input name="exp_month" inputmode="numeric" autocomplete="cc-exp-month"
 required maxlength="2" size="2"></label>
<label>Expiry year <input name="exp_year" inputmode="numeric" autocomplete="cc-exp-year"
 required maxlength="4" size="4"></label>
<button type="submit">Save card</button>
</form>
""")
