"""The demo store's own pages (served by supportbot.demo next to the widget)."""
from __future__ import annotations

import re

import requests


def test_billing_page_links_each_invoice_to_its_signed_document(demo):
    page = requests.get(f"{demo}/billing", timeout=10)
    assert page.status_code == 200
    links = re.findall(r'<a href="([^"]+/documents/invoices/(INV-[0-9-]+)\?[^"]+)">Download</a>', page.text)
    assert links, page.text
    for url, invoice_id in links:
        document = requests.get(url.replace("&amp;", "&"), timeout=10)
        assert document.status_code == 200 and invoice_id in document.text
