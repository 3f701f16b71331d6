"""Reference billing & orders service: a small Sanic JSON API over the tables in `models`.

It stands in for a real commerce backend so the assistant, its actions and its tests have
something honest to talk to. The contract is in `openapi.yaml`; the rules worth knowing
(authentication, customer scoping, refund policy and auto-limits, verification rate limit,
idempotency, duplicate charges, proration, links, outbox) are in docs/billing-service.md. Every
JSON route except the two service routes needs an API key (`_add_authentication`); every JSON
write goes through `Store.write`, the one place that enforces Idempotency-Key.

Database work is synchronous SQLAlchemy run in worker threads, so concurrent requests really
do race each other -- the idempotency and refund-limit guarantees come from the database
(a unique constraint, row locks), not from the event loop happening to serialise requests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import itertools
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import quote, unquote

from sanic import Sanic
from sanic.exceptions import InvalidUsage, SanicException
from sanic.request import Request
from sanic.response import HTTPResponse, html
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from supportbot.billing import limits as attempts  # the verification-attempt counters
from supportbot.billing import pages
from supportbot.billing.auth import ApiKeys, Caller, bearer_token
from supportbot.billing.limits import Limits
from supportbot.billing.links import TOKEN_MINUTES, LinkError, Links, hash_token, new_token
from supportbot.billing.models import (
    CENT,
    RETENTION_OFFER,
    AccountToken,
    Customer,
    Dispute,
    IdempotencyKey,
    Invoice,
    Order,
    Outbox,
    PasswordReset,
    Payment,
    PaymentMethod,
    PaymentMethodLink,
    Plan,
    Refund,
    Subscription,
    iso_datetime,
    make_engine,
    money,
    utcnow,
)

logger = logging.getLogger(__name__)

REQUEST_MAX_SIZE = 64 * 1024
DEFAULT_REFUND_WINDOW_DAYS = 30
MAX_AMOUNT = Decimal("9999999999.99")  # what Numeric(12, 2) can hold
OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")
ORDER_ID_RE = re.compile(r"^[0-9]{7}$")
AMOUNT_RE = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ANONYMOUS = "-"  # idempotency scope of writes not made under a customer
DUPLICATE_WINDOW = dt.timedelta(hours=24)
CONTENT_LENGTH_RE = re.compile(r"^[0-9]+$")
ZERO = Decimal("0.00")
ADDRESS_MIN, ADDRESS_MAX = 10, 500
# Why an order that is no longer `processing` cannot be cancelled or re-addressed.
ORDER_LOCKED = {
    "shipped": ("already_shipped", "This order has already shipped"),
    "delivered": ("already_delivered", "This order has already been delivered"),
    "cancelled": ("already_cancelled", "This order is already cancelled"),
}
NEEDS_REVIEW = "needs_review"  # above the caller's auto-limit: for a person to decide
CONVERSATION_ID_MAX = 255
_app_numbers = itertools.count(1)


class ApiError(Exception):
    """Raised anywhere in a request; rendered as `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers


def dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False)


def error_payload(code: str, message: str) -> Dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def json_response(
    payload: Any, status: int = 200, headers: Optional[Dict[str, str]] = None
) -> HTTPResponse:
    body = payload if isinstance(payload, str) else dumps(payload)
    return HTTPResponse(body, status=status, headers=headers, content_type="application/json")


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def unauthorized() -> ApiError:
    # One answer for every refusal: it says nothing about the key, the route or the customer.
    return ApiError(401, "unauthorized", "Send a valid API key as 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": 'Bearer realm="billing"'})


def too_many_attempts(seconds: Optional[int]) -> ApiError:
    seconds = seconds or 1
    return ApiError(429, "too_many_attempts",
                    f"Too many failed verification attempts; try again in {seconds} seconds",
                    headers={"Retry-After": str(seconds)})


def check_auto_limit(caller: Caller, amount: Decimal, limit: Decimal, what: str) -> None:
    """403 needs_review when `amount` is above what an assistant may grant on its own."""
    if caller.within_auto_limits and amount > limit:
        raise ApiError(403, NEEDS_REVIEW, f"A {what} above {money(limit)} needs a person's "
                       "review: ask a support agent")


# --- request validation ------------------------------------------------------------------


def json_body(request: Request) -> Dict[str, Any]:
    try:
        # parse_float keeps 49.99 exact; RecursionError covers absurdly nested input.
        data = json.loads(request.body or b"", parse_float=Decimal)
    except (ValueError, RecursionError):
        raise ApiError(400, "malformed_json", "Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "Request body must be a JSON object")
    return data


def text_field(data: Dict[str, Any], name: str, max_len: int) -> str:
    value = data.get(name)
    if value is None:
        raise ApiError(400, "missing_field", f"'{name}' is required")
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise ApiError(400, "invalid_field", f"'{name}' must be a non-empty string of at "
                       f"most {max_len} characters")
    if not _storable(value):
        raise ApiError(400, "invalid_field", f"'{name}' contains NUL or invalid characters")
    return value.strip()


def _storable(value: str) -> bool:
    """False for NUL (Postgres refuses it) and lone surrogates like "\\ud800" (not UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def optional_text(data: Dict[str, Any], name: str, max_len: int) -> Optional[str]:
    return None if data.get(name) is None else text_field(data, name, max_len)


def address_field(data: Dict[str, Any], name: str) -> str:
    """A postal address: 10-500 characters once trimmed; newlines are fine."""
    address = text_field(data, name, ADDRESS_MAX)
    if len(address) < ADDRESS_MIN:
        raise ApiError(400, "invalid_field", f"'{name}' must be {ADDRESS_MIN} to {ADDRESS_MAX} "
                       "characters")
    return address


def email_field(data: Dict[str, Any], name: str) -> str:
    email = text_field(data, name, 254)
    if not EMAIL_RE.match(email):
        raise ApiError(400, "invalid_field", f"'{name}' must be an email address")
    return email.lower()


def order_id_field(data: Dict[str, Any], required: bool = True) -> Optional[str]:
    value = data.get("order_id")
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is None:
        raise ApiError(400, "missing_field", "'order_id' is required")
    if not isinstance(value, str) or not ORDER_ID_RE.match(value.strip()):
        raise ApiError(400, "invalid_field", "'order_id' must be a 7-digit order number")
    return value.strip()


def amount_field(data: Dict[str, Any], required: bool) -> Optional[Decimal]:
    value = data.get("amount")
    if value is None:
        if required:
            raise ApiError(400, "missing_field", "'amount' is required")
        return None
    amount = _to_amount(value)
    if amount is None or not ZERO < amount <= MAX_AMOUNT:
        raise ApiError(400, "invalid_amount", "'amount' must be a positive decimal with at "
                       "most 2 decimal places, e.g. \"49.99\"")
    return amount.quantize(CENT)


def _to_amount(value: Any) -> Optional[Decimal]:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return Decimal(value.strip()) if AMOUNT_RE.match(value.strip()) else None
    if isinstance(value, (int, Decimal)):
        try:
            amount = Decimal(value)
            return amount if amount == amount.quantize(CENT) else None
        except InvalidOperation:  # NaN, infinities, or too many digits to quantize
            return None
    return None


@dataclass(frozen=True)
class TargetRef:
    """What a quote or refund is about: exactly one of an order, an invoice or a payment."""

    order_id: Optional[str]
    invoice_id: Optional[str]
    payment_id: Optional[str] = None

    @classmethod
    def from_body(cls, data: Dict[str, Any]) -> TargetRef:
        ref = cls(order_id_field(data, required=False), optional_text(data, "invoice_id", 32),
                  optional_text(data, "payment_id", 16))
        given = [ident for ident in (ref.order_id, ref.invoice_id, ref.payment_id) if ident]
        if not given:
            raise ApiError(400, "missing_field",
                           "Give one of 'order_id', 'invoice_id' or 'payment_id'")
        if len(given) > 1:
            raise ApiError(400, "invalid_field",
                           "Give only one of 'order_id', 'invoice_id' or 'payment_id'")
        return ref


@dataclass(frozen=True)
class RefundRequest:
    target: TargetRef
    amount: Decimal
    reason: str

    @classmethod
    def from_body(cls, data: Dict[str, Any]) -> RefundRequest:
        return cls(TargetRef.from_body(data), amount_field(data, required=True),
                   text_field(data, "reason", 500))

    def fields(self) -> Dict[str, Any]:
        """The effective request, so `"10"` and `10.00` count as the same body."""
        return {"order_id": self.target.order_id, "invoice_id": self.target.invoice_id,
                "payment_id": self.target.payment_id, "amount": str(self.amount),
                "reason": self.reason}


# --- idempotency -------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One keyed write: its scope (customer id, or "-"), key, and request fingerprint."""

    scope: str
    key: str
    method_path: str
    fingerprint: str


def fingerprint(method_path: str, fields: Dict[str, Any]) -> str:
    canonical = dumps({"request": method_path, **fields})
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# A decision: (status, response payload) or (status, payload, what to store for replays).
Decide = Callable[[Session], Tuple[Any, ...]]
Reissue = Callable[[Session, Dict[str, Any]], Dict[str, Any]]


def idempotency_key(request: Request) -> str:
    key = (request.headers.get("Idempotency-Key") or "").strip()
    if not key:
        raise ApiError(400, "idempotency_key_required", "Send an Idempotency-Key header")
    if not IDEMPOTENCY_KEY_RE.match(key):
        raise ApiError(400, "invalid_idempotency_key",
                       "Idempotency-Key must be 1-255 visible ASCII characters, e.g. a UUID")
    return key


# --- refund policy -----------------------------------------------------------------------


@dataclass
class Target:
    order: Optional[Order]
    invoice: Optional[Invoice]
    payment: Optional[Payment] = None

    @property
    def total(self) -> Decimal:
        if self.payment is not None:
            return self.payment.amount
        return self.order.total if self.order is not None else self.invoice.amount

    @property
    def currency(self) -> str:
        if self.payment is not None:
            return self.payment.currency
        return self.order.currency if self.order is not None else self.invoice.currency


@dataclass(frozen=True)
class Quote:
    eligible: bool
    max_refundable: Decimal
    currency: str
    reason: Optional[str]

    def to_dict(self) -> Dict[str, Any]:
        return {"eligible": self.eligible, "max_refundable": money(self.max_refundable),
                "currency": self.currency, "reason": self.reason}

    def message(self, window_days: int) -> str:
        return {
            "not_delivered": "The order has not been delivered yet",
            "outside_policy": f"Outside the {window_days}-day refund policy",
            "already_refunded": "Already fully refunded",
            "not_duplicate": "This payment is not a duplicate charge",
            "exceeds_refundable": f"At most {money(self.max_refundable)} {self.currency} "
                                  "can be refunded",
        }.get(self.reason or "", "Not refundable")


# --- database access ---------------------------------------------------------------------


def _customer(session: Session, cid: str, lock: bool = False) -> Customer:
    if not lock:
        customer = session.get(Customer, cid)
    else:
        query = select(Customer).where(Customer.id == cid).with_for_update()
        customer = session.scalars(query.execution_options(populate_existing=True)).first()
    if customer is None:
        raise not_found("Customer")
    return customer


def _owned(session: Session, model: Any, ident: str, cid: str, lock: bool = False) -> Any:
    """The row with this id *and* this customer: someone else's row is simply not found."""
    query = select(model).where(model.id == ident, model.customer_id == cid)
    if lock:  # re-read under the lock, even if this session loaded the row before
        query = query.with_for_update().execution_options(populate_existing=True)
    row = session.scalars(query).first()
    if row is None:
        raise not_found(model.__name__)
    return row


def _processing(order: Order) -> Order:
    """The order, if it can still be changed; 422 already_shipped/_delivered/_cancelled if not."""
    if order.status != "processing":
        code, message = ORDER_LOCKED.get(order.status,
                                         ("not_processing", "This order can no longer be changed"))
        raise ApiError(422, code, message)
    return order


def _add_refund(session: Session, **fields: Any) -> Refund:
    """Insert an approved refund; its public id ("R-000001") comes from the database's number."""
    refund = Refund(status="approved", created_at=utcnow(), **fields)
    session.add(refund)
    session.flush()
    refund.id = f"R-{refund.number:06d}"
    session.flush()
    return refund


def _by_email(session: Session, email: str) -> Optional[Customer]:
    query = select(Customer).where(func.lower(Customer.email) == email.lower())
    return session.scalars(query).first()


def _duplicates(session: Session, cid: str) -> List[Tuple[Payment, str]]:
    """(duplicate payment, original payment id): same charge succeeded twice within 24 h."""
    query = select(Payment).where(Payment.customer_id == cid, Payment.status == "succeeded")
    payments = list(session.scalars(query.order_by(Payment.created_at, Payment.id)))
    found = []
    for i, payment in enumerate(payments):
        for earlier in payments[:i]:
            if _same_charge(earlier, payment):
                found.append((payment, earlier.id))
                break
    return found


def _same_charge(earlier: Payment, later: Payment) -> bool:
    if (earlier.amount, earlier.currency) != (later.amount, later.currency):
        return False
    if later.created_at - earlier.created_at > DUPLICATE_WINDOW:
        return False
    if later.invoice_id is not None or earlier.invoice_id is not None:
        return earlier.invoice_id == later.invoice_id
    return later.order_id is not None and earlier.order_id == later.order_id


def _proration(sub: Subscription, new: Plan, today: dt.date) -> Decimal:
    """What switching now costs (negative: a credit) for the rest of the paid period."""
    days_left = 0 if sub.renews_at is None else min(max((sub.renews_at - today).days, 0), 30)
    delta = (new.monthly_price - sub.plan.monthly_price) * days_left / Decimal(30)
    return delta.quantize(CENT, rounding=ROUND_HALF_UP)


def _mail(session: Session, to: str, kind: str, subject: str, body: str) -> None:
    session.add(Outbox(to_address=to, kind=kind, subject=subject, body=body,
                       created_at=utcnow()))


def _token_row(session: Session, model: Any, customer_id: str, **extra: Any) -> str:
    """Store a new single-use token (hashed) and return the token itself."""
    token, token_hash = new_token()
    now = utcnow()
    session.add(model(customer_id=customer_id, token_hash=token_hash, created_at=now,
                      expires_at=now + dt.timedelta(minutes=TOKEN_MINUTES), **extra))
    return token


def _redeem(session: Session, model: Any, token: Optional[str], *filters: Any) -> Any:
    """The unused, unexpired row for this token, locked; LinkError 403/410 otherwise."""
    query = select(model).where(model.token_hash == hash_token(token or ""), *filters)
    row = session.scalars(query.with_for_update()).first() if token else None
    if row is None:
        raise LinkError(403, "invalid_token", "This link is not valid.")
    if row.used_at is not None or row.expires_at <= utcnow():
        raise LinkError(410, "link_expired", "This link has expired or was already used.")
    return row


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _card_brand(digits: str) -> str:
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in {"34", "37"}:
        return "amex"
    if 51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720:
        return "mastercard"
    if digits.startswith(("6011", "65")):
        return "discover"
    return "card"


@dataclass(frozen=True)
class Card:
    """A validated card from the update form; the number never leaves this object."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int

    @classmethod
    def from_form(cls, number: str, month: str, year: str, today: dt.date) -> Card:
        digits = re.sub(r"[ -]", "", number or "")
        if not (digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19
                and _luhn_ok(digits)):
            raise ValueError("That card number is not valid.")
        month, year = (month or "").strip(), (year or "").strip()
        if not (month.isascii() and month.isdigit() and 1 <= int(month) <= 12):
            raise ValueError("The expiry month must be 1 to 12.")
        if not (year.isascii() and year.isdigit() and len(year) in (2, 4)):
            raise ValueError("The expiry year must be like 2029.")
        exp_year = int(year) + (2000 if len(year) == 2 else 0)
        if (exp_year, int(month)) < (today.year, today.month) or exp_year > today.year + 25:
            raise ValueError("That card has expired or its expiry date is not valid.")
        return cls(_card_brand(digits), digits[-4:], int(month), exp_year)


class Store:
    """All database work of the service; every method runs in a worker thread."""

    def __init__(self, db_url: str, refund_window_days: int, limits: Limits) -> None:
        self.engine = make_engine(db_url)
        self.sessions = sessionmaker(self.engine, future=True, expire_on_commit=False)
        self.window_days = refund_window_days
        self.limits = limits

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def customer(self, cid: str) -> Dict[str, Any]:
        with self.sessions() as session:
            return _customer(session, cid).to_dict()

    def verify(self, email: str, order_id: str, caller: Caller,
               conversation_id: Optional[str]) -> Dict[str, Any]:
        """The customer, if email and order match and none of the attempt's counters is full.

        A full counter refuses right and wrong details alike (429); a failure that would
        overfill one is refused the same way instead of being counted."""
        now, window = utcnow(), self.limits.verify_window
        with self.sessions() as session:
            customer = _by_email(session, email)
            order = session.get(Order, order_id)
            found = None
            if customer is not None and order is not None and order.customer_id == customer.id:
                found = customer.to_dict()
            subject = attempts.customer_subject(customer.id if customer else None, email)
            scopes = attempts.verify_scopes(self.limits, caller.client, subject, conversation_id)
            if found is None and attempts.count_failure(session, scopes, window, now):
                session.commit()
                self._forget_expired_attempts(now)
                # One answer for "unknown email" and "not your order": no probing for accounts.
                raise ApiError(404, "not_found", "No customer matches that email and order")
            session.rollback()  # a refused failure counts nowhere
            wait = attempts.seconds_locked(session, scopes, window, now)
        if found is not None and wait is None:
            return found
        logger.warning("verification refused: too many failed attempts (client %s)",
                       caller.client)
        raise too_many_attempts(wait)

    def _forget_expired_attempts(self, now: dt.datetime) -> None:
        with self.sessions() as session:
            attempts.forget_expired(session, self.limits.verify_window, now)
            session.commit()

    def get(self, model: Any, cid: str, ident: str) -> Dict[str, Any]:
        with self.sessions() as session:
            return _owned(session, model, ident, cid).to_dict()

    def list_rows(self, model: Any, cid: str, newest_first: Any, *filters: Any) -> list:
        with self.sessions() as session:
            _customer(session, cid)
            query = select(model).where(model.customer_id == cid, *filters)
            rows = session.scalars(query.order_by(newest_first.desc(), model.id.desc()))
            return [row.to_dict() for row in rows]

    def plans(self) -> list:
        with self.sessions() as session:
            query = select(Plan).order_by(Plan.monthly_price, Plan.id)
            return [plan.to_dict() for plan in session.scalars(query)]

    def duplicates(self, cid: str) -> list:
        with self.sessions() as session:
            _customer(session, cid)
            return [{"payment": payment.to_dict(), "original_payment_id": original}
                    for payment, original in _duplicates(session, cid)]

    def quote(self, cid: str, ref: TargetRef, amount: Optional[Decimal]) -> Dict[str, Any]:
        with self.sessions() as session:
            return self._evaluate(session, self._target(session, cid, ref), amount).to_dict()

    # -- the one idempotent write path

    def write(self, write: Write, decide: Decide,
              reissue: Optional[Reissue] = None) -> Tuple[int, str, bool]:
        """Run `decide` at most once per (scope, key); returns (status, JSON body, replayed).

        `decide` raises ApiError to refuse. 400/404 mean nothing was decided: the claim is
        rolled back, so the client may fix the request and reuse the key; so is 403
        needs_review. Any other refusal is stored and replayed like a success, so `decide` must
        refuse before writing anything.
        """
        with self.sessions() as session:
            record = self._find_key(session, write.scope, write.key)
            if record is None:
                try:
                    return self._decide_once(session, write, decide)
                except IntegrityError:  # a concurrent request with this key won the insert
                    session.rollback()
                    logger.info("concurrent duplicate for an idempotency key; replaying")
                    record = self._find_key(session, write.scope, write.key)
            status, body = self._replay(record, write.fingerprint)
            if reissue is not None and status < 300:
                body = dumps(reissue(session, json.loads(body)))
                session.commit()
            return status, body, True

    def _decide_once(self, session: Session, write: Write, decide: Decide) -> Tuple[int, str, bool]:
        record = IdempotencyKey(key=write.key, customer_id=write.scope,
                                request_hash=write.fingerprint,
                                method_path=write.method_path[:300], created_at=utcnow())
        session.add(record)
        session.flush()
        try:
            status, payload, *stored = decide(session)
        except ApiError as exc:
            # Not a decision about the request: bad input, an unknown target, or a caller
            # that may not decide it (a person with an agent key may, under the same key).
            if exc.status in (400, 404) or exc.code == NEEDS_REVIEW:
                session.rollback()
                raise
            status, payload, stored = exc.status, error_payload(exc.code, exc.message), []
        record.status_code = status
        record.response_json = dumps(stored[0] if stored else payload)
        session.commit()
        return status, dumps(payload), False

    def _find_key(self, session: Session, scope: str, key: str) -> Optional[IdempotencyKey]:
        query = select(IdempotencyKey).where(
            IdempotencyKey.customer_id == scope, IdempotencyKey.key == key
        )
        return session.scalars(query).first()

    @staticmethod
    def _replay(record: Optional[IdempotencyKey], fingerprint: str) -> Tuple[int, str]:
        if record is None or record.status_code is None:
            raise ApiError(409, "idempotency_key_in_progress", "Retry this request shortly")
        if record.request_hash != fingerprint:
            raise ApiError(409, "idempotency_key_reused",
                           "This Idempotency-Key was used with a different request")
        return record.status_code, record.response_json

    # -- refunds

    def decide_refund(self, session: Session, cid: str, req: RefundRequest,
                      caller: Caller) -> Tuple[int, Any]:
        """Refund an order, an invoice or a duplicate charge: policy first, then the caller's
        auto-limit (a refund that policy refuses is refused for everyone)."""
        target = self._target(session, cid, req.target, lock=True)
        quote = self._evaluate(session, target, req.amount)
        if not quote.eligible:
            raise ApiError(422, quote.reason or "not_refundable", quote.message(self.window_days))
        check_auto_limit(caller, req.amount, self.limits.refund_auto_limit, "refund")
        refund = _add_refund(
            session, customer_id=cid, amount=req.amount, currency=target.currency,
            reason=req.reason, order_id=target.order.id if target.order is not None else None,
            invoice_id=target.invoice.id if target.invoice is not None else None,
            payment_id=target.payment.id if target.payment is not None else None,
        )
        if target.payment is not None and req.amount >= quote.max_refundable:
            target.payment.status = "refunded"  # fully returned: no longer a duplicate
        session.flush()
        return 201, refund.to_dict()

    def _target(self, session: Session, cid: str, ref: TargetRef, lock: bool = False) -> Target:
        """Load the target rows; `lock` serialises refunds of one target (Postgres)."""
        _customer(session, cid)
        if ref.payment_id is not None:
            return Target(None, None, _owned(session, Payment, ref.payment_id, cid, lock))
        if ref.order_id is not None:
            order = _owned(session, Order, ref.order_id, cid, lock)
            invoice = session.scalars(select(Invoice).where(Invoice.order_id == order.id)).first()
            return Target(order, invoice)
        invoice = _owned(session, Invoice, ref.invoice_id, cid, lock)
        order = None
        if invoice.order_id is not None:
            order = _owned(session, Order, invoice.order_id, cid, lock)
        return Target(order, invoice)

    def _evaluate(self, session: Session, target: Target, amount: Optional[Decimal]) -> Quote:
        reason = self._policy_reason(session, target)
        if reason is not None:
            return Quote(False, ZERO, target.currency, reason)
        remaining = target.total - self._refunded(session, target)
        if remaining <= 0:
            return Quote(False, ZERO, target.currency, "already_refunded")
        if amount is not None and amount > remaining:
            return Quote(False, remaining, target.currency, "exceeds_refundable")
        return Quote(True, remaining, target.currency, None)

    def _policy_reason(self, session: Session, target: Target) -> Optional[str]:
        if target.payment is not None:
            if target.payment.status == "refunded":
                return "already_refunded"
            duplicates = _duplicates(session, target.payment.customer_id)
            if all(payment.id != target.payment.id for payment, _ in duplicates):
                return "not_duplicate"
            return None
        order, invoice = target.order, target.invoice
        if order is not None and (order.status != "delivered" or order.delivered_at is None):
            return "not_delivered"
        if invoice is not None and invoice.status != "paid":
            return "outside_policy"
        since = order.delivered_at if order is not None else invoice.issued_at
        if utcnow() - since > dt.timedelta(days=self.window_days):
            return "outside_policy"
        return None

    @staticmethod
    def _refunded(session: Session, target: Target) -> Decimal:
        if target.payment is not None:
            condition = Refund.payment_id == target.payment.id
        elif target.order is not None:
            condition = Refund.order_id == target.order.id
        else:
            condition = Refund.invoice_id == target.invoice.id
        return sum((r.amount for r in session.scalars(select(Refund).where(condition))), ZERO)

    # -- order changes before shipping

    def decide_cancel_order(self, session: Session, cid: str, oid: str, reason: Optional[str],
                            caller: Caller) -> Tuple[int, Any]:
        """Cancel a processing order and refund what was paid for it, in one transaction.

        The refund window does not apply (the order never shipped) and the amount is what is
        left to return; the caller's refund auto-limit does, as for every refund."""
        order = _processing(_owned(session, Order, oid, cid, lock=True))
        query = select(Payment).where(Payment.order_id == order.id, Payment.status == "succeeded")
        payments = list(session.scalars(query.with_for_update()))
        # Already returned: refunds of the order, and of its still-counted payments (a partly
        # refunded duplicate charge), so nothing is paid back twice.
        returned = select(Refund).where(
            (Refund.order_id == order.id) | Refund.payment_id.in_([p.id for p in payments]))
        amount = (sum((p.amount for p in payments), ZERO)
                  - sum((r.amount for r in session.scalars(returned)), ZERO))
        check_auto_limit(caller, amount, self.limits.refund_auto_limit, "refund")
        refund = None
        if amount > 0:
            refund = _add_refund(session, customer_id=cid, order_id=order.id, amount=amount,
                                 currency=order.currency,
                                 reason=f"order cancelled: {reason}" if reason else "order cancelled")
        for payment in payments:
            payment.status = "refunded"
        order.status = "cancelled"
        session.flush()
        return 200, {"order": order.to_dict(),
                     "refund": refund.to_dict() if refund is not None else None}

    @staticmethod
    def decide_shipping_address(session: Session, cid: str, oid: str,
                                address: str) -> Tuple[int, Any]:
        order = _processing(_owned(session, Order, oid, cid, lock=True))
        order.shipping_address = address
        session.flush()
        return 200, order.to_dict()

    # -- disputes

    def decide_dispute(self, session: Session, cid: str, payment_id: str, reason: str,
                       caller: Caller) -> Tuple[int, Any]:
        _customer(session, cid)
        payment = _owned(session, Payment, payment_id, cid, lock=True)
        if payment.status != "succeeded":
            raise ApiError(422, "not_disputable", "Only a succeeded payment can be disputed")
        query = select(Dispute).where(Dispute.payment_id == payment.id, Dispute.status == "open")
        if session.scalars(query).first() is not None:
            raise ApiError(422, "already_disputed", "This payment already has an open dispute")
        check_auto_limit(caller, payment.amount, self.limits.dispute_auto_limit, "dispute")
        dispute = Dispute(customer_id=cid, payment_id=payment.id, amount=payment.amount,
                          currency=payment.currency, reason=reason, status="open",
                          created_at=utcnow())
        session.add(dispute)
        session.flush()
        dispute.id = f"D-{dispute.number:06d}"
        session.flush()
        return 201, dispute.to_dict()

    # -- subscriptions

    @staticmethod
    def decide_cancel(session: Session, cid: str, sid: str,
                      reason: Optional[str]) -> Tuple[int, Any]:
        sub = _owned(session, Subscription, sid, cid, lock=True)
        if sub.status != "active":
            raise ApiError(422, "already_cancelled", "This subscription is already cancelled")
        sub.status, sub.ends_at, sub.renews_at = "cancelled", sub.renews_at, None
        sub.cancel_reason = reason
        session.flush()
        return 200, sub.to_dict()

    @staticmethod
    def decide_offer(session: Session, cid: str, sid: str, offer_id: str) -> Tuple[int, Any]:
        sub = _owned(session, Subscription, sid, cid, lock=True)
        if (sub.status != "active" or sub.retention_offer_accepted
                or offer_id != RETENTION_OFFER["id"]):
            raise ApiError(422, "offer_unavailable", "That offer is not available")
        sub.discount_percent = RETENTION_OFFER["percent_off"]
        sub.discount_months = RETENTION_OFFER["months"]
        sub.retention_offer_accepted = True
        session.flush()
        return 200, sub.to_dict()

    def preview_plan_change(self, cid: str, sid: str, plan_id: str) -> Dict[str, Any]:
        with self.sessions() as session:
            sub, new, amount, today = self._plan_change(session, cid, sid, plan_id)
            return {"subscription_id": sub.id, "from_plan": sub.plan_id, "to_plan": new.id,
                    "amount_due": money(amount), "currency": new.currency,
                    "effective_date": today.isoformat(),
                    "next_renewal_amount": money(new.monthly_price)}

    def decide_plan_change(self, session: Session, cid: str, sid: str,
                           plan_id: str) -> Tuple[int, Any]:
        sub, new, amount, today = self._plan_change(session, cid, sid, plan_id, lock=True)
        invoice_id = None
        if amount > 0:
            invoice_id = self._new_invoice_id(session, today)
            session.add(Invoice(id=invoice_id, customer_id=cid, amount=amount,
                                currency=new.currency, status="open", issued_at=utcnow()))
        elif amount < 0:  # one atomic UPDATE, so concurrent credits add up
            session.execute(update(Customer).where(Customer.id == cid).values(
                credit_balance=Customer.credit_balance - amount))
        sub.plan_id, sub.plan = new.id, new
        session.flush()
        return 200, {"subscription": sub.to_dict(), "amount_due": money(amount),
                     "currency": new.currency, "invoice_id": invoice_id}

    @staticmethod
    def _plan_change(session: Session, cid: str, sid: str, plan_id: str,
                     lock: bool = False) -> Tuple[Subscription, Plan, Decimal, dt.date]:
        sub = _owned(session, Subscription, sid, cid, lock)
        new = session.get(Plan, plan_id)
        if new is None:
            raise not_found("Plan")
        if sub.status != "active":
            raise ApiError(422, "not_active", "Only an active subscription can change plan")
        if new.id == sub.plan_id:
            raise ApiError(422, "same_plan", "The subscription is already on that plan")
        today = utcnow().date()
        return sub, new, _proration(sub, new, today), today

    @staticmethod
    def _new_invoice_id(session: Session, today: dt.date) -> str:
        while True:  # 90,000 numbers a year; seeded invoices use the low ones
            iid = f"INV-{today.year}-{10000 + secrets.randbelow(90000):05d}"
            if session.get(Invoice, iid) is None:
                return iid

    # -- payment methods

    @staticmethod
    def decide_payment_link(session: Session, cid: str, base: str) -> Tuple[int, Any, Any]:
        _customer(session, cid)
        token = _token_row(session, PaymentMethodLink, cid)
        session.flush()
        link = session.scalars(select(PaymentMethodLink).where(
            PaymentMethodLink.token_hash == hash_token(token))).one()
        expires_at = iso_datetime(link.expires_at)
        public = {"url": f"{base}/pay/update?token={token}", "expires_at": expires_at}
        # The replay record keeps the link id, not the token: see reissue_payment_link.
        return 201, public, {"link_id": link.id, "base": base, "expires_at": expires_at}

    @staticmethod
    def reissue_payment_link(session: Session, stored: Dict[str, Any]) -> Dict[str, Any]:
        """A replay gets a fresh token for the same link (the old URL stops working), since
        only token hashes are kept."""
        link = session.get(PaymentMethodLink, stored["link_id"])
        token, link.token_hash = new_token()
        return {"url": f"{stored['base']}/pay/update?token={token}",
                "expires_at": stored["expires_at"]}

    def payment_link_page(self, token: Optional[str]) -> str:
        with self.sessions() as session:
            _redeem(session, PaymentMethodLink, token)
            return pages.card_form(token or "")

    def save_card(self, token: Optional[str], form: Dict[str, str]) -> Tuple[int, str]:
        with self.sessions() as session:
            link = _redeem(session, PaymentMethodLink, token)
            try:
                card = Card.from_form(form.get("card_number", ""), form.get("exp_month", ""),
                                      form.get("exp_year", ""), utcnow().date())
            except ValueError as exc:
                return 422, pages.card_form(token or "", str(exc))
            session.execute(update(PaymentMethod).where(
                PaymentMethod.customer_id == link.customer_id).values(is_default=False))
            session.add(PaymentMethod(customer_id=link.customer_id, brand=card.brand,
                                      last4=card.last4, exp_month=card.exp_month,
                                      exp_year=card.exp_year, is_default=True,
                                      created_at=utcnow()))
            link.used_at = utcnow()
            session.commit()
            return 200, pages.message_page(
                "Card saved", f"Your {card.brand} card ending in {card.last4} is now your "
                "default payment method. You can close this page.")

    # -- accounts and their mail

    @staticmethod
    def decide_password_reset(session: Session, email: str, base: str) -> Tuple[int, Any]:
        customer = _by_email(session, email)
        if customer is not None:  # the answer is the same either way: no account probing
            token = _token_row(session, PasswordReset, customer.id)
            _mail(session, customer.email, "password_reset", "Reset your password",
                  f"Hello {customer.name},\n\nReset your password here (valid for "
                  f"{TOKEN_MINUTES} minutes):\n{base}/account/reset?token={token}\n\n"
                  "If you did not ask for this, ignore this email.\n")
        return 202, {"status": "accepted"}

    @staticmethod
    def decide_unlock(session: Session, email: str, base: str) -> Tuple[int, Any]:
        customer = _by_email(session, email)
        if customer is not None and customer.locked:
            token = _token_row(session, AccountToken, customer.id, kind="account_unlock")
            _mail(session, customer.email, "account_unlock", "Unlock your account",
                  f"Hello {customer.name},\n\nUnlock your account here (valid for "
                  f"{TOKEN_MINUTES} minutes):\n{base}/account/unlock?token={token}\n")
        elif customer is not None:
            _mail(session, customer.email, "sign_in_help", "Signing in to your account",
                  f"Hello {customer.name},\n\nYour account is not locked. Sign in at "
                  f"{base}/account/sign-in with this email address. Forgot your password? "
                  "Choose \"Forgot password\" there and we will email you a reset link.\n")
        return 202, {"status": "accepted"}

    def unlock(self, token: Optional[str]) -> str:
        with self.sessions() as session:
            row = _redeem(session, AccountToken, token, AccountToken.kind == "account_unlock")
            _customer(session, row.customer_id).locked = False
            row.used_at = utcnow()
            session.commit()
            return pages.message_page("Account unlocked",
                                      "Your account is unlocked. You can sign in again.")

    @staticmethod
    def decide_rename(session: Session, cid: str, name: str) -> Tuple[int, Any]:
        customer = _customer(session, cid, lock=True)
        customer.name = name
        session.flush()
        return 200, customer.to_dict()

    @staticmethod
    def decide_email_change(session: Session, cid: str, new_email: str,
                            base: str) -> Tuple[int, Any]:
        customer = _customer(session, cid)
        if customer.email.lower() == new_email:
            raise ApiError(422, "same_email", "That is already the account's email address")
        if _by_email(session, new_email) is not None:
            raise ApiError(409, "email_taken", "That email address belongs to another account")
        token = _token_row(session, AccountToken, cid, kind="email_change", new_email=new_email)
        _mail(session, new_email, "email_change", "Confirm your new email address",
              f"Hello {customer.name},\n\nConfirm that this is your new email address "
              f"(valid for {TOKEN_MINUTES} minutes):\n"
              f"{base}/account/confirm-email?token={token}\n")
        return 202, {"status": "pending"}

    def confirm_email(self, token: Optional[str]) -> str:
        with self.sessions() as session:
            row = _redeem(session, AccountToken, token, AccountToken.kind == "email_change")
            if _by_email(session, row.new_email) is not None:
                raise LinkError(409, "email_taken",
                                "That email address now belongs to another account.")
            _customer(session, row.customer_id).email = row.new_email
            row.used_at = utcnow()
            session.commit()
            return pages.message_page("Email address changed",
                                      f"Your account now uses {row.new_email}.")

    # -- invoice documents

    def invoice_document(self, iid: str) -> str:
        with self.sessions() as session:
            invoice = session.get(Invoice, iid)
            if invoice is None:
                raise LinkError(404, "not_found", "This invoice does not exist.")
            customer = session.get(Customer, invoice.customer_id)
            order = session.get(Order, invoice.order_id) if invoice.order_id else None
            if order is not None:
                lines = [(item.name, item.qty, money(item.unit_price),
                          money(item.unit_price * item.qty)) for item in order.items]
            else:
                lines = [("Subscription", 1, money(invoice.amount), money(invoice.amount))]
            return pages.invoice_document(invoice.to_dict(), customer.to_dict(), lines)


# --- HTTP layer --------------------------------------------------------------------------


def store(request: Request) -> Store:
    return request.app.ctx.store


def caller(request: Request) -> Caller:
    """Who sent this request, as authenticated by `_add_authentication`."""
    return request.ctx.caller


def conversation_id(request: Request) -> Optional[str]:
    """The caller's conversation (header X-Conversation-Id), for the verification counters."""
    value = (request.headers.get("X-Conversation-Id") or "").strip()
    if len(value) > CONVERSATION_ID_MAX:
        raise ApiError(400, "invalid_conversation_id",
                       f"X-Conversation-Id must be at most {CONVERSATION_ID_MAX} characters")
    return value or None


def public_base(request: Request) -> str:
    """Where links point: env BILLING_PUBLIC_URL, else this request's own origin."""
    return request.app.ctx.links.base(request.scheme, request.host)


async def in_thread(blocking: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking `Store` method without holding up the event loop."""
    call = functools.partial(blocking, *args)
    return await asyncio.get_running_loop().run_in_executor(None, call)


async def keyed_write(request: Request, key: str, scope: str, fields: Dict[str, Any],
                      decide: Callable[..., Tuple[Any, ...]], *args: Any,
                      reissue: Optional[Reissue] = None) -> HTTPResponse:
    """Run `decide(session, *args)` once per Idempotency-Key; replays get the stored answer."""
    method_path = f"{request.method} {request.path}"
    write = Write(scope, key, method_path, fingerprint(method_path, fields))
    status, body, replayed = await in_thread(
        store(request).write, write, lambda session: decide(session, *args), reissue)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return json_response(body, status=status, headers=headers)


def html_response(body: str, status: int = 200) -> HTTPResponse:
    return html(body, status=status, headers={"Cache-Control": "no-store"})


def _add_customer_routes(app: Sanic) -> None:
    @app.post("/customers/verify")
    async def verify(request: Request) -> HTTPResponse:
        data = json_body(request)
        email = text_field(data, "email", 254)
        if "@" not in email:
            raise ApiError(400, "invalid_field", "'email' must be an email address")
        order_id = order_id_field(data)
        return json_response(await in_thread(store(request).verify, email, order_id,
                                             caller(request), conversation_id(request)))

    @app.get("/customers/<cid>")
    async def get_customer(request: Request, cid: str) -> HTTPResponse:
        return json_response(await in_thread(store(request).customer, cid))

    @app.patch("/customers/<cid>")
    async def rename_customer(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        name = text_field(json_body(request), "name", 200)
        return await keyed_write(request, key, cid, {"name": name}, Store.decide_rename,
                                 cid, name)

    @app.get("/customers/<cid>/payments/duplicates")
    async def duplicates(request: Request, cid: str) -> HTTPResponse:
        return json_response({"duplicates": await in_thread(store(request).duplicates, cid)})

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
        rows = await in_thread(store(request).list_rows, model, cid, newest_first)
        return json_response({name: [decorate(request, row) for row in rows]})

    async def get_item(request: Request, cid: str, item_id: str) -> HTTPResponse:
        row = await in_thread(store(request).get, model, cid, item_id)
        return json_response(decorate(request, row))

    app.add_route(list_items, f"/customers/<cid>/{name}", methods=["GET"], name=f"list_{name}")
    if with_item_route:
        app.add_route(get_item, f"/customers/<cid>/{name}/<item_id>", methods=["GET"],
                      name=f"get_{name}")


def _add_refund_routes(app: Sanic) -> None:
    @app.post("/customers/<cid>/refunds/quote")
    async def quote_refund(request: Request, cid: str) -> HTTPResponse:
        data = json_body(request)
        ref, amount = TargetRef.from_body(data), amount_field(data, required=False)
        return json_response(await in_thread(store(request).quote, cid, ref, amount))

    @app.post("/customers/<cid>/refunds")
    async def create_refund(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        req = RefundRequest.from_body(json_body(request))
        return await keyed_write(request, key, cid, req.fields(), store(request).decide_refund,
                                 cid, req, caller(request))

    @app.get("/customers/<cid>/refunds")
    async def list_refunds(request: Request, cid: str) -> HTTPResponse:
        order_id = request.args.get("order_id")
        filters = [Refund.order_id == order_id] if order_id else []
        rows = await in_thread(store(request).list_rows, Refund, cid, Refund.created_at,
                               *filters)
        return json_response({"refunds": rows})

    @app.get("/customers/<cid>/refunds/<rid>")
    async def get_refund(request: Request, cid: str, rid: str) -> HTTPResponse:
        return json_response(await in_thread(store(request).get, Refund, cid, rid))

    @app.post("/customers/<cid>/disputes")
    async def create_dispute(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        data = json_body(request)
        payment_id, reason = text_field(data, "payment_id", 16), text_field(data, "reason", 500)
        return await keyed_write(request, key, cid, {"payment_id": payment_id, "reason": reason},
                                 store(request).decide_dispute, cid, payment_id, reason,
                                 caller(request))


def _add_order_routes(app: Sanic) -> None:
    base = "/customers/<cid>/orders/<oid>"

    @app.post(f"{base}/cancel")
    async def cancel_order(request: Request, cid: str, oid: str) -> HTTPResponse:
        key = idempotency_key(request)
        reason = optional_text(json_body(request), "reason", 500)
        return await keyed_write(request, key, cid, {"reason": reason},
                                 store(request).decide_cancel_order, cid, oid, reason,
                                 caller(request))

    @app.put(f"{base}/shipping-address")
    async def change_shipping_address(request: Request, cid: str, oid: str) -> HTTPResponse:
        key = idempotency_key(request)
        address = address_field(json_body(request), "address")
        return await keyed_write(request, key, cid, {"address": address},
                                 Store.decide_shipping_address, cid, oid, address)


def _add_subscription_routes(app: Sanic) -> None:
    @app.get("/plans")
    async def list_plans(request: Request) -> HTTPResponse:
        return json_response({"plans": await in_thread(store(request).plans)})

    base = "/customers/<cid>/subscriptions/<sid>"

    @app.post(f"{base}/cancel")
    async def cancel(request: Request, cid: str, sid: str) -> HTTPResponse:
        key = idempotency_key(request)
        reason = optional_text(json_body(request), "reason", 500)
        return await keyed_write(request, key, cid, {"reason": reason}, Store.decide_cancel,
                                 cid, sid, reason)

    @app.post(f"{base}/retention-offer")
    async def accept_offer(request: Request, cid: str, sid: str) -> HTTPResponse:
        key = idempotency_key(request)
        offer_id = text_field(json_body(request), "offer_id", 64)
        return await keyed_write(request, key, cid, {"offer_id": offer_id}, Store.decide_offer,
                                 cid, sid, offer_id)

    @app.post(f"{base}/plan-change/preview")
    async def preview(request: Request, cid: str, sid: str) -> HTTPResponse:
        plan_id = text_field(json_body(request), "plan_id", 16)
        return json_response(await in_thread(store(request).preview_plan_change, cid, sid,
                                             plan_id))

    @app.post(f"{base}/plan-change")
    async def change_plan(request: Request, cid: str, sid: str) -> HTTPResponse:
        key = idempotency_key(request)
        plan_id = text_field(json_body(request), "plan_id", 16)
        return await keyed_write(request, key, cid, {"plan_id": plan_id},
                                 store(request).decide_plan_change, cid, sid, plan_id)


def _add_account_routes(app: Sanic) -> None:
    @app.post("/customers/<cid>/payment-method-links")
    async def payment_link(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        if request.body:
            json_body(request)  # no fields, but a body must still be JSON
        return await keyed_write(request, key, cid, {}, Store.decide_payment_link, cid,
                                 public_base(request), reissue=Store.reissue_payment_link)

    @app.post("/customers/<cid>/email-changes")
    async def email_change(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        new_email = email_field(json_body(request), "new_email")
        return await keyed_write(request, key, cid, {"new_email": new_email},
                                 Store.decide_email_change, cid, new_email, public_base(request))

    @app.post("/password-resets")
    async def password_reset(request: Request) -> HTTPResponse:
        key = idempotency_key(request)
        email = email_field(json_body(request), "email")
        return await keyed_write(request, key, ANONYMOUS, {"email": email},
                                 Store.decide_password_reset, email, public_base(request))

    @app.post("/account-unlocks")
    async def account_unlock(request: Request) -> HTTPResponse:
        key = idempotency_key(request)
        email = email_field(json_body(request), "email")
        return await keyed_write(request, key, ANONYMOUS, {"email": email},
                                 Store.decide_unlock, email, public_base(request))


def _add_browser_routes(app: Sanic) -> None:
    """Pages opened from links; a single-use token or a signature is their authorisation, so
    they are public (`ctx_public`): a browser has no API key."""

    @app.get("/documents/invoices/<iid>", ctx_public=True)
    async def invoice_document(request: Request, iid: str) -> HTTPResponse:
        app.ctx.links.check_invoice(iid, request.args.get("expires"), request.args.get("sig"))
        return html_response(await in_thread(store(request).invoice_document, iid))

    @app.get("/pay/update", ctx_public=True)
    async def card_form(request: Request) -> HTTPResponse:
        token = request.args.get("token")
        return html_response(await in_thread(store(request).payment_link_page, token))

    @app.post("/pay/update", ctx_public=True)
    async def save_card(request: Request) -> HTTPResponse:
        form = {name: request.form.get(name) or "" for name in
                ("token", "card_number", "exp_month", "exp_year")}
        status, body = await in_thread(store(request).save_card, form["token"], form)
        return html_response(body, status)

    @app.get("/account/unlock", ctx_public=True)
    async def unlock(request: Request) -> HTTPResponse:
        token = request.args.get("token")
        return html_response(await in_thread(store(request).unlock, token))

    @app.get("/account/confirm-email", ctx_public=True)
    async def confirm_email(request: Request) -> HTTPResponse:
        token = request.args.get("token")
        return html_response(await in_thread(store(request).confirm_email, token))


def _add_service_routes(app: Sanic) -> None:
    """Liveness and the API contract: public, and neither tells anything about customers."""

    @app.get("/health", ctx_public=True)
    async def health(request: Request) -> HTTPResponse:
        await in_thread(store(request).ping)
        return json_response({"status": "ok"})

    @app.get("/openapi.yaml", ctx_public=True)
    async def openapi(request: Request) -> HTTPResponse:
        return HTTPResponse(OPENAPI_PATH.read_text(encoding="utf-8"),
                            content_type="application/yaml; charset=utf-8")


def _reject_nul(*parts: str) -> None:
    # Ids in the path or query never contain NUL, and Postgres would fail on it: not found.
    if any("\x00" in unquote(part) for part in parts):
        raise not_found("Resource")


def _add_request_guards(app: Sanic) -> None:
    # Runs once the head is parsed, before Sanic reads the body or routes the request.
    @app.signal("http.lifecycle.request")
    async def check_request_head(request: Request) -> None:
        _reject_nul(request.path, request.query_string)
        # Sanic 21.12 trusts int(Content-Length): "-5" makes it spin forever on the body and
        # stalls every request, so refuse anything that is not one plain number.
        lengths = request.headers.getall("content-length", [])
        if len(lengths) > 1 or any(not CONTENT_LENGTH_RE.match(v.strip()) for v in lengths):
            raise InvalidUsage("Bad Content-Length header")


def _add_authentication(app: Sanic) -> None:
    """Every route needs `Authorization: Bearer <key>` unless registered with `ctx_public=True`.

    Runs once the route is known and before the body is read, so an unauthenticated caller
    gets 401 before any validation (which could tell what exists) and cannot make us read
    its upload."""

    @app.signal("http.routing.after")
    async def authenticate(request: Request, route: Any, kwargs: Any, handler: Any) -> None:
        if getattr(route.ctx, "public", False):
            return
        headers = request.headers.getall("authorization", [])
        token = bearer_token(headers[0]) if len(headers) == 1 else None
        found = app.ctx.api_keys.identify(token) if token is not None else None
        if found is None:
            logger.warning("refused %s %s from %s: no valid API key", request.method,
                           route.path, request.ip)
            raise unauthorized()
        request.ctx.caller = found


SANIC_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _add_error_handlers(app: Sanic) -> None:
    @app.exception(ApiError)
    async def api_error(request: Request, exc: ApiError) -> HTTPResponse:
        return json_response(error_payload(exc.code, exc.message), status=exc.status,
                             headers=exc.headers)

    @app.exception(LinkError)
    async def link_error(request: Request, exc: LinkError) -> HTTPResponse:
        # Browser pages answer errors as pages too.
        titles = {403: "Link not valid", 404: "Not found", 410: "Link expired"}
        title = titles.get(exc.status, "Something went wrong")
        return html_response(pages.message_page(title, exc.message), exc.status)

    @app.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
        status = getattr(exc, "status_code", 500) or 500
        code = SANIC_ERROR_CODES.get(status, "bad_request" if status < 500 else "internal_error")
        message = str(exc) if status < 500 else "Internal error"
        return json_response(error_payload(code, message), status=status)

    @app.exception(Exception)
    async def internal_error(request: Request, exc: Exception) -> HTTPResponse:
        if getattr(request, "route", None) is None:
            # Sanic failed while parsing the request itself (e.g. "Content-Length: abc"):
            # the client's fault, and no handler of ours ran.
            return json_response(error_payload("bad_request", "Malformed HTTP request"), 400)
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return json_response(error_payload("internal_error", "Internal error"), status=500)


def create_app(db_url: str, refund_window_days: Optional[int] = None,
               api_keys: Optional[ApiKeys] = None, limits: Optional[Limits] = None) -> Sanic:
    """Build the app; the database engine is created when the server starts.

    `refund_window_days` defaults to env BILLING_REFUND_WINDOW_DAYS, else 30. Links are
    signed with env BILLING_LINK_SECRET and point at env BILLING_PUBLIC_URL (see `links`).
    `api_keys` defaults to env BILLING_API_KEYS (see `auth`) and `limits` to the env settings
    of `limits`; both raise `auth.ConfigError` when set wrong, and there is no keyless mode.
    """
    if refund_window_days is None:
        refund_window_days = int(
            os.environ.get("BILLING_REFUND_WINDOW_DAYS", DEFAULT_REFUND_WINDOW_DAYS)
        )
    api_keys = api_keys if api_keys is not None else ApiKeys.from_env()
    limits = limits if limits is not None else Limits.from_env()
    # Sanic refuses two apps with one name in a process; tests may build several.
    app = Sanic(f"supportbot_billing_{next(_app_numbers)}")
    app.config.REQUEST_MAX_SIZE = REQUEST_MAX_SIZE
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.links = Links.from_env()
    app.ctx.api_keys = api_keys
    for add_routes in (_add_request_guards, _add_authentication, _add_service_routes,
                       _add_customer_routes, _add_order_routes, _add_refund_routes,
                       _add_subscription_routes, _add_account_routes, _add_browser_routes,
                       _add_error_handlers):
        add_routes(app)
    _add_lifecycle(app, lambda: Store(db_url, refund_window_days, limits))
    return app


def _add_lifecycle(app: Sanic, make_store: Callable[[], Store]) -> None:
    @app.before_server_start
    async def open_store(app: Sanic, _loop: Any) -> None:
        app.ctx.store = make_store()

    @app.after_server_stop
    async def close_store(app: Sanic, _loop: Any) -> None:
        app.ctx.store.engine.dispose()
