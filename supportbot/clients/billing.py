"""Typed HTTP client for the billing & orders service (see supportbot/billing/openapi.yaml).

Every call carries the client's API key (`Authorization: Bearer`) and has a timeout. Reads
(GETs, customer verification, refund quotes, plan-change previews) and writes that carry an
idempotency key (every write the service offers) are retried with a short backoff on
connection failures, timeouts and 5xx; 4xx answers, 429 included, are never retried.
Failures surface as the typed errors of `supportbot.errors`.
Only method, path, status and duration are logged -- never bodies, keys or conversation ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, Union
from urllib.parse import quote

import requests

from supportbot import settings
from supportbot.errors import (
    BackendError,
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidRequest,
    NeedsReview,
    NotFound,
    RateLimited,
    Unauthorized,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
Amount = Union[Decimal, str, int]


# --- what the service returns ------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str
    locked: bool = False
    credit_balance: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class OrderItem:
    sku: str
    name: str
    qty: int
    unit_price: Decimal


@dataclass(frozen=True)
class Order:
    id: str
    customer_id: str
    status: str  # processing | shipped | delivered | cancelled
    carrier: Optional[str]
    tracking_number: Optional[str]
    eta: Optional[dt.date]
    shipping_address: str
    placed_at: dt.datetime
    delivered_at: Optional[dt.datetime]
    total: Decimal
    currency: str
    items: Tuple[OrderItem, ...]


@dataclass(frozen=True)
class Invoice:
    id: str
    customer_id: str
    order_id: Optional[str]
    amount: Decimal
    currency: str
    status: str  # paid | open | void
    issued_at: dt.datetime
    document_url: Optional[str] = None  # signed, expires after 7 days


@dataclass(frozen=True)
class Payment:
    id: str
    customer_id: str
    invoice_id: Optional[str]
    order_id: Optional[str]
    amount: Decimal
    currency: str
    status: str  # succeeded | failed | refunded
    failure_reason: Optional[str]  # insufficient_funds | card_declined | expired_card
    card_last4: str
    created_at: dt.datetime


@dataclass(frozen=True)
class Refund:
    id: str
    customer_id: str
    order_id: Optional[str]
    invoice_id: Optional[str]
    amount: Decimal
    currency: str
    reason: str
    status: str  # requested | approved | processed
    created_at: dt.datetime
    payment_id: Optional[str] = None  # set when the refund returns a duplicate charge


@dataclass(frozen=True)
class OrderCancellation:
    order: Order  # status "cancelled"
    refund: Optional[Refund]  # what was paid back; None when nothing had been paid


@dataclass(frozen=True)
class RefundQuote:
    eligible: bool
    max_refundable: Decimal
    currency: str
    # None when eligible, else outside_policy | already_refunded | not_delivered |
    # exceeds_refundable
    reason: Optional[str]


@dataclass(frozen=True)
class DuplicateCharge:
    payment: Payment  # the later, duplicate charge
    original_payment_id: str


@dataclass(frozen=True)
class Dispute:
    id: str
    customer_id: str
    payment_id: str
    amount: Decimal
    currency: str
    reason: str
    status: str  # open
    created_at: dt.datetime


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    monthly_price: Decimal
    currency: str


@dataclass(frozen=True)
class RetentionOffer:
    id: str
    description: str
    percent_off: int
    months: int


@dataclass(frozen=True)
class Subscription:
    id: str
    customer_id: str
    plan_id: str
    plan_name: str
    monthly_price: Decimal
    currency: str
    status: str  # active | cancelled
    renews_at: Optional[dt.date]
    ends_at: Optional[dt.date]  # the day access ends, once cancelled
    started_at: dt.datetime
    discount_percent: int
    discount_months: int
    retention_offer: Optional[RetentionOffer]  # offered while active and not yet accepted


@dataclass(frozen=True)
class PlanChangePreview:
    subscription_id: str
    from_plan: str
    to_plan: str
    amount_due: Decimal  # negative: a credit
    currency: str
    effective_date: dt.date
    next_renewal_amount: Decimal


@dataclass(frozen=True)
class PlanChange:
    subscription: Subscription
    amount_due: Decimal
    currency: str
    invoice_id: Optional[str]  # the new open invoice when something is due


@dataclass(frozen=True)
class SecureLink:
    url: str
    expires_at: dt.datetime


# --- parsing: any surprise in a 2xx body becomes BackendUnavailable ----------------------


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_text(value: Any) -> Optional[str]:
    return None if value is None else _text(value)


def _money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError("money must be a decimal string")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError("money must be finite")
    return amount


def _datetime(value: Any) -> dt.datetime:
    # fromisoformat() only learned the "Z" suffix in Python 3.11.
    parsed = dt.datetime.fromisoformat(_text(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _opt_datetime(value: Any) -> Optional[dt.datetime]:
    return None if value is None else _datetime(value)


def _opt_date(value: Any) -> Optional[dt.date]:
    return None if value is None else dt.date.fromisoformat(_text(value))


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected a boolean")
    return value


def _customer(d: Dict[str, Any]) -> Customer:
    return Customer(id=_text(d["id"]), name=_text(d["name"]), email=_text(d["email"]),
                    locked=_bool(d.get("locked", False)),
                    credit_balance=_money(d.get("credit_balance", "0.00")))


def _order_item(d: Dict[str, Any]) -> OrderItem:
    return OrderItem(sku=_text(d["sku"]), name=_text(d["name"]), qty=_int(d["qty"]),
                     unit_price=_money(d["unit_price"]))


def _order(d: Dict[str, Any]) -> Order:
    return Order(
        id=_text(d["id"]), customer_id=_text(d["customer_id"]), status=_text(d["status"]),
        carrier=_opt_text(d["carrier"]), tracking_number=_opt_text(d["tracking_number"]),
        eta=_opt_date(d["eta"]), shipping_address=_text(d["shipping_address"]),
        placed_at=_datetime(d["placed_at"]), delivered_at=_opt_datetime(d["delivered_at"]),
        total=_money(d["total"]), currency=_text(d["currency"]),
        items=tuple(_order_item(item) for item in _array(d["items"])),
    )


def _invoice(d: Dict[str, Any]) -> Invoice:
    return Invoice(
        id=_text(d["id"]), customer_id=_text(d["customer_id"]), order_id=_opt_text(d["order_id"]),
        amount=_money(d["amount"]), currency=_text(d["currency"]), status=_text(d["status"]),
        issued_at=_datetime(d["issued_at"]), document_url=_opt_text(d.get("document_url")),
    )


def _payment(d: Dict[str, Any]) -> Payment:
    return Payment(
        id=_text(d["id"]), customer_id=_text(d["customer_id"]),
        invoice_id=_opt_text(d["invoice_id"]), order_id=_opt_text(d["order_id"]),
        amount=_money(d["amount"]), currency=_text(d["currency"]), status=_text(d["status"]),
        failure_reason=_opt_text(d["failure_reason"]), card_last4=_text(d["card_last4"]),
        created_at=_datetime(d["created_at"]),
    )


def _refund(d: Dict[str, Any]) -> Refund:
    return Refund(
        id=_text(d["id"]), customer_id=_text(d["customer_id"]),
        order_id=_opt_text(d["order_id"]), invoice_id=_opt_text(d["invoice_id"]),
        amount=_money(d["amount"]), currency=_text(d["currency"]), reason=_text(d["reason"]),
        status=_text(d["status"]), created_at=_datetime(d["created_at"]),
        payment_id=_opt_text(d.get("payment_id")),
    )


def _cancellation(d: Dict[str, Any]) -> OrderCancellation:
    refund = d["refund"]
    return OrderCancellation(order=_order(d["order"]),
                             refund=None if refund is None else _refund(refund))


def _duplicate(d: Dict[str, Any]) -> DuplicateCharge:
    return DuplicateCharge(payment=_payment(d["payment"]),
                           original_payment_id=_text(d["original_payment_id"]))


def _dispute(d: Dict[str, Any]) -> Dispute:
    return Dispute(
        id=_text(d["id"]), customer_id=_text(d["customer_id"]), payment_id=_text(d["payment_id"]),
        amount=_money(d["amount"]), currency=_text(d["currency"]), reason=_text(d["reason"]),
        status=_text(d["status"]), created_at=_datetime(d["created_at"]),
    )


def _plan(d: Dict[str, Any]) -> Plan:
    return Plan(id=_text(d["id"]), name=_text(d["name"]),
                monthly_price=_money(d["monthly_price"]), currency=_text(d["currency"]))


def _offer(d: Any) -> Optional[RetentionOffer]:
    if d is None:
        return None
    return RetentionOffer(id=_text(d["id"]), description=_text(d["description"]),
                          percent_off=_int(d["percent_off"]), months=_int(d["months"]))


def _subscription(d: Dict[str, Any]) -> Subscription:
    return Subscription(
        id=_text(d["id"]), customer_id=_text(d["customer_id"]), plan_id=_text(d["plan_id"]),
        plan_name=_text(d["plan_name"]), monthly_price=_money(d["monthly_price"]),
        currency=_text(d["currency"]), status=_text(d["status"]),
        renews_at=_opt_date(d["renews_at"]), ends_at=_opt_date(d["ends_at"]),
        started_at=_datetime(d["started_at"]), discount_percent=_int(d["discount_percent"]),
        discount_months=_int(d["discount_months"]), retention_offer=_offer(d["retention_offer"]),
    )


def _preview(d: Dict[str, Any]) -> PlanChangePreview:
    return PlanChangePreview(
        subscription_id=_text(d["subscription_id"]), from_plan=_text(d["from_plan"]),
        to_plan=_text(d["to_plan"]), amount_due=_money(d["amount_due"]),
        currency=_text(d["currency"]), effective_date=dt.date.fromisoformat(
            _text(d["effective_date"])),
        next_renewal_amount=_money(d["next_renewal_amount"]),
    )


def _plan_change(d: Dict[str, Any]) -> PlanChange:
    return PlanChange(subscription=_subscription(d["subscription"]),
                      amount_due=_money(d["amount_due"]), currency=_text(d["currency"]),
                      invoice_id=_opt_text(d["invoice_id"]))


def _secure_link(d: Dict[str, Any]) -> SecureLink:
    return SecureLink(url=_text(d["url"]), expires_at=_datetime(d["expires_at"]))


def _quote(d: Dict[str, Any]) -> RefundQuote:
    return RefundQuote(eligible=_bool(d["eligible"]), max_refundable=_money(d["max_refundable"]),
                       currency=_text(d["currency"]), reason=_opt_text(d["reason"]))


def _array(value: Any) -> list:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value


def _parse(parser: Callable[[Any], T], payload: Any, what: str) -> T:
    try:
        return parser(payload)
    except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
        raise BackendUnavailable(f"billing returned an unexpected {what}: {exc}") from None


# --- error mapping -----------------------------------------------------------------------

_ERRORS_BY_STATUS = {400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
                     409: Conflict, 422: InvalidRequest, 429: RateLimited}
_ERRORS_BY_CODE = {"needs_review": NeedsReview}


def _error_for(response: requests.Response) -> BackendError:
    """The typed error for a non-2xx response, keeping the service's `code` when it sent one."""
    status = response.status_code
    if status >= 500 or status < 400:
        return BackendUnavailable(f"billing answered HTTP {status}", status=status)
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = None, f"billing answered HTTP {status}"
    error_class = _ERRORS_BY_CODE.get(code or "") or _ERRORS_BY_STATUS.get(status, InvalidRequest)
    if error_class is RateLimited:
        return RateLimited(message, code=code, status=status,
                           retry_after=_retry_after(response.headers.get("Retry-After")))
    return error_class(message, code=code, status=status)


def _retry_after(value: Optional[str]) -> Optional[int]:
    """Seconds from a Retry-After header; None for a missing or HTTP-date value."""
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


_HEADER_SAFE = re.compile(r"^[\x21-\x7e]{1,255}$")


def _conversation_header(conversation_id: str) -> str:
    """The id itself when it is a plain header value, else a digest of it (same id, same
    value): a Slack thread or socket.io id passes as is, odd characters never break a call."""
    if _HEADER_SAFE.match(conversation_id):
        return conversation_id
    return "sha256:" + hashlib.sha256(conversation_id.encode("utf-8", "replace")).hexdigest()


class _Transient(Exception):
    """A failure worth retrying (no answer, or a 5xx); carries the error to raise at the end."""

    def __init__(self, error: BackendUnavailable) -> None:
        super().__init__(error.message)
        self.error = error


# --- the client --------------------------------------------------------------------------


class BillingClient:
    """Talks to one billing service; safe to share across actions."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 5.0,
        retries: int = 2,
        session: Optional[requests.Session] = None,
        backoff: float = 0.1,
        api_key: Optional[str] = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if api_key is not None and not _HEADER_SAFE.match(api_key):
            raise ValueError("api_key must be 1-255 visible ASCII characters")
        # Without a key every call is refused (Unauthorized): the service has no open mode.
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.session = session or requests.Session()

    def __repr__(self) -> str:  # never show the key
        return f"BillingClient({self.base_url!r}, keyed={bool(self._auth)})"

    @classmethod
    def from_env(cls) -> BillingClient:
        """Env BILLING_URL (default http://127.0.0.1:5056), BILLING_TIMEOUT seconds (5) and
        BILLING_API_KEY, this client's key from the service's BILLING_API_KEYS."""
        api_key = settings.get("BILLING_API_KEY")
        if api_key is None:
            logger.error("BILLING_API_KEY is not set: the billing service will refuse every call")
        return cls(settings.get("BILLING_URL"), timeout=settings.number("BILLING_TIMEOUT"), api_key=api_key)

    # -- service and customers

    def health(self) -> bool:
        """True when the service answers; otherwise raises BackendUnavailable."""
        payload = self.request("GET", "health")
        if not isinstance(payload, dict) or payload.get("status") != "ok":
            raise BackendUnavailable("billing is not healthy")
        return True

    def verify_customer(
        self, email: str, order_id: str, *, conversation_id: Optional[str] = None
    ) -> Customer:
        """The customer owning `order_id` whose email is `email`; NotFound otherwise.

        Failed attempts are counted per conversation (`conversation_id`, sent as
        X-Conversation-Id), per customer and per client; once one count is full the service
        answers RateLimited (429, `retry_after` seconds) even for the right details.
        """
        headers = None
        if conversation_id:
            headers = {"X-Conversation-Id": _conversation_header(conversation_id)}
        payload = self.request("POST", "customers", "verify", read_only=True, headers=headers,
                               body={"email": email, "order_id": order_id})
        return _parse(_customer, payload, "customer")

    def get_customer(self, cid: str) -> Customer:
        return _parse(_customer, self.request("GET", "customers", cid), "customer")

    # -- orders, invoices, payments

    def get_order(self, cid: str, oid: str) -> Order:
        return _parse(_order, self.request("GET", "customers", cid, "orders", oid), "order")

    def list_orders(self, cid: str) -> Tuple[Order, ...]:
        return self._list("orders", _order, cid)

    def get_invoice(self, cid: str, iid: str) -> Invoice:
        payload = self.request("GET", "customers", cid, "invoices", iid)
        return _parse(_invoice, payload, "invoice")

    def list_invoices(self, cid: str) -> Tuple[Invoice, ...]:
        return self._list("invoices", _invoice, cid)

    def list_payments(self, cid: str) -> Tuple[Payment, ...]:
        return self._list("payments", _payment, cid)

    def find_duplicate_payments(self, cid: str) -> Tuple[DuplicateCharge, ...]:
        """Succeeded charges repeating an earlier one (same amount and invoice/order, < 24 h)."""
        payload = self.request("GET", "customers", cid, "payments", "duplicates")
        return _parse(lambda p: tuple(_duplicate(row) for row in _array(p["duplicates"])),
                      payload, "duplicates")

    def cancel_order(
        self, cid: str, oid: str, *, reason: Optional[str], idempotency_key: str
    ) -> OrderCancellation:
        """Cancel a `processing` order, refunding what was paid for it in the same step.

        InvalidRequest already_shipped / already_delivered / already_cancelled when refused.
        """
        payload = self.request("POST", "customers", cid, "orders", oid, "cancel",
                               body={"reason": reason}, idempotency_key=idempotency_key)
        return _parse(_cancellation, payload, "order cancellation")

    def change_shipping_address(
        self, cid: str, oid: str, address: str, *, idempotency_key: str
    ) -> Order:
        """Ship a `processing` order to `address` (10-500 characters, newlines allowed).

        InvalidRequest already_shipped / already_delivered / already_cancelled when refused,
        invalid_field for an unusable address.
        """
        payload = self.request("PUT", "customers", cid, "orders", oid, "shipping-address",
                               body={"address": address}, idempotency_key=idempotency_key)
        return _parse(_order, payload, "order")

    # -- refunds

    def refund_quote(
        self,
        cid: str,
        *,
        order_id: Optional[str] = None,
        invoice_id: Optional[str] = None,
        payment_id: Optional[str] = None,
        amount: Optional[Amount] = None,
    ) -> RefundQuote:
        """Whether (and how much) can be refunded; a read, so it may be retried."""
        body = _refund_target(order_id, invoice_id, payment_id)
        if amount is not None:
            body["amount"] = str(amount)
        payload = self.request("POST", "customers", cid, "refunds", "quote", body=body,
                               read_only=True)
        return _parse(_quote, payload, "refund quote")

    def create_refund(
        self,
        cid: str,
        *,
        order_id: Optional[str] = None,
        invoice_id: Optional[str] = None,
        payment_id: Optional[str] = None,
        amount: Amount,
        reason: str,
        idempotency_key: str,
    ) -> Refund:
        """Create an approved refund. Reuse `idempotency_key` to retry the same refund safely.

        `payment_id` refunds a duplicate charge. Policy refusals raise InvalidRequest with code
        outside_policy, already_refunded, not_delivered, not_duplicate or exceeds_refundable;
        a key reused for another request raises Conflict.
        """
        body = {**_refund_target(order_id, invoice_id, payment_id), "amount": str(amount),
                "reason": reason}
        payload = self.request("POST", "customers", cid, "refunds", body=body,
                               idempotency_key=idempotency_key)
        return _parse(_refund, payload, "refund")

    def get_refund(self, cid: str, rid: str) -> Refund:
        return _parse(_refund, self.request("GET", "customers", cid, "refunds", rid), "refund")

    def list_refunds(self, cid: str, order_id: Optional[str] = None) -> Tuple[Refund, ...]:
        params = {"order_id": order_id} if order_id else None
        return self._list("refunds", _refund, cid, params=params)

    # -- disputes

    def create_dispute(
        self, cid: str, *, payment_id: str, reason: str, idempotency_key: str
    ) -> Dispute:
        """Open a dispute; InvalidRequest not_disputable / already_disputed when refused."""
        payload = self.request("POST", "customers", cid, "disputes", idempotency_key=idempotency_key,
                               body={"payment_id": payment_id, "reason": reason})
        return _parse(_dispute, payload, "dispute")

    def list_disputes(self, cid: str) -> Tuple[Dispute, ...]:
        return self._list("disputes", _dispute, cid)

    # -- plans and subscriptions

    def list_plans(self) -> Tuple[Plan, ...]:
        payload = self.request("GET", "plans")
        return _parse(lambda p: tuple(_plan(row) for row in _array(p["plans"])), payload,
                      "plans")

    def list_subscriptions(self, cid: str) -> Tuple[Subscription, ...]:
        return self._list("subscriptions", _subscription, cid)

    def get_subscription(self, cid: str, sid: str) -> Subscription:
        payload = self.request("GET", "customers", cid, "subscriptions", sid)
        return _parse(_subscription, payload, "subscription")

    def cancel_subscription(
        self, cid: str, sid: str, *, reason: Optional[str], idempotency_key: str
    ) -> Subscription:
        """Cancel at the end of the paid period; InvalidRequest already_cancelled."""
        payload = self.request("POST", "customers", cid, "subscriptions", sid, "cancel",
                               body={"reason": reason}, idempotency_key=idempotency_key)
        return _parse(_subscription, payload, "subscription")

    def accept_retention_offer(
        self, cid: str, sid: str, *, offer_id: str, idempotency_key: str
    ) -> Subscription:
        """Apply the offer; InvalidRequest offer_unavailable when it is not on offer."""
        payload = self.request("POST", "customers", cid, "subscriptions", sid,
                               "retention-offer", body={"offer_id": offer_id},
                               idempotency_key=idempotency_key)
        return _parse(_subscription, payload, "subscription")

    def preview_plan_change(self, cid: str, sid: str, plan_id: str) -> PlanChangePreview:
        """What a switch would cost now; InvalidRequest same_plan / not_active, NotFound."""
        payload = self.request("POST", "customers", cid, "subscriptions", sid, "plan-change",
                               "preview", body={"plan_id": plan_id}, read_only=True)
        return _parse(_preview, payload, "plan change preview")

    def change_plan(self, cid: str, sid: str, plan_id: str, *, idempotency_key: str) -> PlanChange:
        payload = self.request("POST", "customers", cid, "subscriptions", sid, "plan-change",
                               body={"plan_id": plan_id}, idempotency_key=idempotency_key)
        return _parse(_plan_change, payload, "plan change")

    # -- payment methods and account

    def create_payment_method_link(self, cid: str, *, idempotency_key: str) -> SecureLink:
        """A single-use 30-minute link where the customer enters a new card themselves."""
        payload = self.request("POST", "customers", cid, "payment-method-links", body={},
                               idempotency_key=idempotency_key)
        return _parse(_secure_link, payload, "payment method link")

    def request_password_reset(self, email: str, *, idempotency_key: str) -> None:
        """Always accepted: a reset email goes out only if an account has this address."""
        self.request("POST", "password-resets", body={"email": email},
                     idempotency_key=idempotency_key)

    def request_account_unlock(self, email: str, *, idempotency_key: str) -> None:
        """Always accepted: mails an unlock link (locked) or sign-in help (not locked)."""
        self.request("POST", "account-unlocks", body={"email": email},
                     idempotency_key=idempotency_key)

    def update_customer_name(self, cid: str, name: str, *, idempotency_key: str) -> Customer:
        payload = self.request("PATCH", "customers", cid, body={"name": name},
                               idempotency_key=idempotency_key)
        return _parse(_customer, payload, "customer")

    def request_email_change(self, cid: str, new_email: str, *, idempotency_key: str) -> None:
        """Mails a confirmation link to `new_email`; Conflict email_taken,
        InvalidRequest same_email."""
        self.request("POST", "customers", cid, "email-changes", body={"new_email": new_email},
                     idempotency_key=idempotency_key)

    # -- transport

    def request(
        self,
        method: str,
        *path_parts: str,
        body: Optional[Dict[str, Any]] = None,
        params: Optional[Dict[str, str]] = None,
        idempotency_key: Optional[str] = None,
        read_only: bool = False,
        headers: Optional[Dict[str, str]] = None,
    ) -> Any:
        """Send one logical request and return the decoded 2xx JSON body.

        The single place that applies the API key, timeouts, retries and error mapping.
        Retried only when repeating it cannot do harm: GETs, `read_only` POSTs, and requests
        with an idempotency key; and only on no answer or a 5xx, never on a 4xx such as 429.
        """
        path = "/" + "/".join(quote(str(part), safe="") for part in path_parts)
        headers = {**(headers or {}), **self._auth}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        retryable = method == "GET" or read_only or bool(idempotency_key)
        attempts = 1 + (self.retries if retryable else 0)
        for attempt in range(attempts):
            try:
                return self._send(method, path, body, params, headers)
            except _Transient as transient:
                if attempt + 1 >= attempts:
                    raise transient.error from None
                time.sleep(self.backoff * (2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, path: str, body: Any, params: Any, headers: Dict) -> Any:
        started = time.monotonic()
        try:
            response = self.session.request(method, self.base_url + path, json=body,
                                            params=params, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            logger.warning("billing %s %s failed after %.0f ms: %s", method, path,
                           _ms_since(started), type(exc).__name__)
            raise _Transient(BackendUnavailable(
                f"billing unreachable ({type(exc).__name__})")) from None
        logger.debug("billing %s %s -> %s in %.0f ms", method, path, response.status_code,
                     _ms_since(started))
        if response.status_code >= 500:
            raise _Transient(_error_for(response))
        if not 200 <= response.status_code < 300:
            raise _error_for(response)
        try:
            return response.json()
        except ValueError:
            raise BackendUnavailable("billing returned a body that is not JSON",
                                     status=response.status_code) from None

    def _list(
        self, name: str, parser: Callable[[Any], T], cid: str, **kwargs: Any
    ) -> Tuple[T, ...]:
        payload = self.request("GET", "customers", cid, name, **kwargs)
        return _parse(lambda p: tuple(parser(row) for row in _array(p[name])), payload, name)


def _refund_target(
    order_id: Optional[str], invoice_id: Optional[str], payment_id: Optional[str]
) -> Dict[str, Any]:
    given = {name: value for name, value in (("order_id", order_id), ("invoice_id", invoice_id),
                                             ("payment_id", payment_id)) if value is not None}
    if len(given) != 1:
        raise ValueError("give exactly one of order_id, invoice_id or payment_id")
    return given


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000
