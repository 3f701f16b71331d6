"""Reference billing & orders service: a small Sanic JSON API over the tables in `models`.

It stands in for a real commerce backend so the assistant, its actions and its tests have
something honest to talk to. The contract is in `openapi.yaml`; the rules worth knowing
(customer scoping, refund policy, idempotency) are in docs/billing-service.md.

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
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import unquote

from sanic import Sanic
from sanic.exceptions import InvalidUsage, SanicException
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from supportbot.billing.models import (
    CENT,
    Customer,
    IdempotencyKey,
    Invoice,
    Order,
    Payment,
    Refund,
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
CONTENT_LENGTH_RE = re.compile(r"^[0-9]+$")
ZERO = Decimal("0.00")
_app_numbers = itertools.count(1)


class ApiError(Exception):
    """Raised anywhere in a request; rendered as `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


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
    """What a quote or refund is about: exactly one of an order or an invoice."""

    order_id: Optional[str]
    invoice_id: Optional[str]

    @classmethod
    def from_body(cls, data: Dict[str, Any]) -> TargetRef:
        order_id = order_id_field(data, required=False)
        invoice_id = optional_text(data, "invoice_id", 32)
        if order_id is None and invoice_id is None:
            raise ApiError(400, "missing_field", "Give one of 'order_id' or 'invoice_id'")
        if order_id is not None and invoice_id is not None:
            raise ApiError(400, "invalid_field", "Give only one of 'order_id' or 'invoice_id'")
        return cls(order_id, invoice_id)


@dataclass(frozen=True)
class RefundRequest:
    target: TargetRef
    amount: Decimal
    reason: str

    @classmethod
    def from_body(cls, data: Dict[str, Any]) -> RefundRequest:
        return cls(TargetRef.from_body(data), amount_field(data, required=True),
                   text_field(data, "reason", 500))

    def fingerprint(self, path: str) -> str:
        """Hash of the effective request, so `"10"` and `10.00` count as the same body."""
        canonical = dumps({"path": path, "order_id": self.target.order_id,
                           "invoice_id": self.target.invoice_id,
                           "amount": str(self.amount), "reason": self.reason})
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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

    @property
    def total(self) -> Decimal:
        return self.order.total if self.order is not None else self.invoice.amount

    @property
    def currency(self) -> str:
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
            "exceeds_refundable": f"At most {money(self.max_refundable)} {self.currency} "
                                  "can be refunded",
        }.get(self.reason or "", "Not refundable")


# --- database access ---------------------------------------------------------------------


def _customer(session: Session, cid: str) -> Customer:
    customer = session.get(Customer, cid)
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


class Store:
    """All database work of the service; every method runs in a worker thread."""

    def __init__(self, db_url: str, refund_window_days: int) -> None:
        self.engine = make_engine(db_url)
        self.sessions = sessionmaker(self.engine, future=True, expire_on_commit=False)
        self.window_days = refund_window_days

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def customer(self, cid: str) -> Dict[str, Any]:
        with self.sessions() as session:
            return _customer(session, cid).to_dict()

    def verify(self, email: str, order_id: str) -> Dict[str, Any]:
        with self.sessions() as session:
            query = select(Customer).where(func.lower(Customer.email) == email.lower())
            customer = session.scalars(query).first()
            order = session.get(Order, order_id)
            # One answer for "unknown email" and "not your order": no probing for accounts.
            if customer is None or order is None or order.customer_id != customer.id:
                raise ApiError(404, "not_found", "No customer matches that email and order")
            return customer.to_dict()

    def get(self, model: Any, cid: str, ident: str) -> Dict[str, Any]:
        with self.sessions() as session:
            return _owned(session, model, ident, cid).to_dict()

    def list_rows(self, model: Any, cid: str, newest_first: Any, *filters: Any) -> list:
        with self.sessions() as session:
            _customer(session, cid)
            query = select(model).where(model.customer_id == cid, *filters)
            rows = session.scalars(query.order_by(newest_first.desc(), model.id.desc()))
            return [row.to_dict() for row in rows]

    def quote(self, cid: str, ref: TargetRef, amount: Optional[Decimal]) -> Dict[str, Any]:
        with self.sessions() as session:
            return self._evaluate(session, self._target(session, cid, ref), amount).to_dict()

    def create_refund(
        self, cid: str, key: str, req: RefundRequest, fingerprint: str
    ) -> Tuple[int, str, bool]:
        """Returns (status, JSON body, replayed)."""
        with self.sessions() as session:
            existing = self._find_key(session, cid, key)
            if existing is not None:
                return self._replay(existing, fingerprint)
            # Unknown customer/target: 404 before the key is claimed, so nothing is stored.
            self._target(session, cid, req.target)
            try:
                record = self._claim_key(session, cid, key, fingerprint)
            except IntegrityError:  # a concurrent request with this key won the insert
                session.rollback()
                logger.info("concurrent duplicate for an idempotency key; replaying")
                return self._replay(self._find_key(session, cid, key), fingerprint)
            status, body = self._decide_refund(session, cid, req)
            record.status_code, record.response_json = status, body
            session.commit()
            return status, body, False

    def _find_key(self, session: Session, cid: str, key: str) -> Optional[IdempotencyKey]:
        query = select(IdempotencyKey).where(
            IdempotencyKey.customer_id == cid, IdempotencyKey.key == key
        )
        return session.scalars(query).first()

    def _claim_key(self, session: Session, cid: str, key: str, fp: str) -> IdempotencyKey:
        record = IdempotencyKey(key=key, customer_id=cid, request_hash=fp,
                                method_path=f"POST /customers/{cid}/refunds",
                                created_at=utcnow())
        session.add(record)
        session.flush()
        return record

    @staticmethod
    def _replay(record: Optional[IdempotencyKey], fingerprint: str) -> Tuple[int, str, bool]:
        if record is None or record.status_code is None:
            raise ApiError(409, "idempotency_key_in_progress", "Retry this request shortly")
        if record.request_hash != fingerprint:
            raise ApiError(409, "idempotency_key_reused",
                           "This Idempotency-Key was used with a different request")
        return record.status_code, record.response_json, True

    def _decide_refund(self, session: Session, cid: str, req: RefundRequest) -> Tuple[int, str]:
        target = self._target(session, cid, req.target, lock=True)
        quote = self._evaluate(session, target, req.amount)
        if not quote.eligible:
            return 422, dumps(error_payload(quote.reason, quote.message(self.window_days)))
        refund = Refund(
            customer_id=cid, amount=req.amount, currency=target.currency, reason=req.reason,
            order_id=target.order.id if target.order is not None else None,
            invoice_id=target.invoice.id if target.invoice is not None else None,
            status="approved", created_at=utcnow(),
        )
        session.add(refund)
        session.flush()
        refund.id = f"R-{refund.number:06d}"
        session.flush()
        return 201, dumps(refund.to_dict())

    def _target(self, session: Session, cid: str, ref: TargetRef, lock: bool = False) -> Target:
        """Load the order and/or invoice; `lock` serialises refunds of one order (Postgres)."""
        _customer(session, cid)
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
        reason = self._policy_reason(target)
        if reason is not None:
            return Quote(False, ZERO, target.currency, reason)
        remaining = target.total - self._refunded(session, target)
        if remaining <= 0:
            return Quote(False, ZERO, target.currency, "already_refunded")
        if amount is not None and amount > remaining:
            return Quote(False, remaining, target.currency, "exceeds_refundable")
        return Quote(True, remaining, target.currency, None)

    def _policy_reason(self, target: Target) -> Optional[str]:
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
        if target.order is not None:
            condition = Refund.order_id == target.order.id
        else:
            condition = Refund.invoice_id == target.invoice.id
        return sum((r.amount for r in session.scalars(select(Refund).where(condition))), ZERO)


# --- HTTP layer --------------------------------------------------------------------------


def store(request: Request) -> Store:
    return request.app.ctx.store


async def in_thread(blocking: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking `Store` method without holding up the event loop."""
    call = functools.partial(blocking, *args)
    return await asyncio.get_running_loop().run_in_executor(None, call)


def _add_customer_routes(app: Sanic) -> None:
    @app.post("/customers/verify")
    async def verify(request: Request) -> HTTPResponse:
        data = json_body(request)
        email = text_field(data, "email", 254)
        if "@" not in email:
            raise ApiError(400, "invalid_field", "'email' must be an email address")
        order_id = order_id_field(data)
        return json_response(await in_thread(store(request).verify, email, order_id))

    @app.get("/customers/<cid>")
    async def get_customer(request: Request, cid: str) -> HTTPResponse:
        return json_response(await in_thread(store(request).customer, cid))

    _add_collection(app, "orders", Order, Order.placed_at)
    _add_collection(app, "invoices", Invoice, Invoice.issued_at)
    _add_collection(app, "payments", Payment, Payment.created_at, with_item_route=False)


def _add_collection(
    app: Sanic, name: str, model: Any, newest_first: Any, with_item_route: bool = True
) -> None:
    async def list_items(request: Request, cid: str) -> HTTPResponse:
        rows = await in_thread(store(request).list_rows, model, cid, newest_first)
        return json_response({name: rows})

    async def get_item(request: Request, cid: str, item_id: str) -> HTTPResponse:
        return json_response(await in_thread(store(request).get, model, cid, item_id))

    app.add_route(list_items, f"/customers/<cid>/{name}", methods=["GET"], name=f"list_{name}")
    if with_item_route:
        app.add_route(get_item, f"/customers/<cid>/{name}/<item_id>", methods=["GET"],
                      name=f"get_{name}")


def _add_refund_routes(app: Sanic) -> None:
    @app.post("/customers/<cid>/refunds/quote")
    async def quote(request: Request, cid: str) -> HTTPResponse:
        data = json_body(request)
        ref, amount = TargetRef.from_body(data), amount_field(data, required=False)
        return json_response(await in_thread(store(request).quote, cid, ref, amount))

    @app.post("/customers/<cid>/refunds")
    async def create_refund(request: Request, cid: str) -> HTTPResponse:
        key = idempotency_key(request)
        req = RefundRequest.from_body(json_body(request))
        fingerprint = req.fingerprint(request.path)
        status, body, replayed = await in_thread(store(request).create_refund, cid, key, req,
                                                 fingerprint)
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return json_response(body, status=status, headers=headers)

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


def _add_service_routes(app: Sanic) -> None:
    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        await in_thread(store(request).ping)
        return json_response({"status": "ok"})

    @app.get("/openapi.yaml")
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


SANIC_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _add_error_handlers(app: Sanic) -> None:
    @app.exception(ApiError)
    async def api_error(request: Request, exc: ApiError) -> HTTPResponse:
        return json_response(error_payload(exc.code, exc.message), status=exc.status)

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


def create_app(db_url: str, refund_window_days: Optional[int] = None) -> Sanic:
    """Build the app; the database engine is created when the server starts.

    `refund_window_days` defaults to env BILLING_REFUND_WINDOW_DAYS, else 30.
    """
    if refund_window_days is None:
        refund_window_days = int(
            os.environ.get("BILLING_REFUND_WINDOW_DAYS", DEFAULT_REFUND_WINDOW_DAYS)
        )
    # Sanic refuses two apps with one name in a process; tests may build several.
    app = Sanic(f"supportbot_billing_{next(_app_numbers)}")
    app.config.REQUEST_MAX_SIZE = REQUEST_MAX_SIZE
    app.config.FALLBACK_ERROR_FORMAT = "json"
    for add_routes in (_add_request_guards, _add_service_routes, _add_customer_routes,
                       _add_refund_routes, _add_error_handlers):
        add_routes(app)
    _add_lifecycle(app, lambda: Store(db_url, refund_window_days))
    return app


def _add_lifecycle(app: Sanic, make_store: Callable[[], Store]) -> None:
    @app.before_server_start
    async def open_store(app: Sanic, _loop: Any) -> None:
        app.ctx.store = make_store()

    @app.after_server_stop
    async def close_store(app: Sanic, _loop: Any) -> None:
        app.ctx.store.engine.dispose()
