"""What a JSON request to the billing service may contain, and how a refusal is said.

`ApiError` is the one error a request raises to refuse; the app renders it as
`{"error": {"code", "message"}}` with its status. The field readers here take a parsed body and
return a clean value or raise 400 (`missing_field`, `invalid_field`, `invalid_amount`);
`TargetRef` and `RefundRequest` are the parsed bodies of refund quotes and refunds. Nothing here
touches the database.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, Optional

from sanic.request import Request

from supportbot.billing.models import CENT, ZERO

MAX_AMOUNT = Decimal("9999999999.99")  # what Numeric(12, 2) can hold
ORDER_ID_RE = re.compile(r"^[0-9]{7}$")
AMOUNT_RE = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ADDRESS_MIN, ADDRESS_MAX = 10, 500
NEEDS_REVIEW = "needs_review"  # above the caller's auto-limit: for a person to decide


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


# --- request bodies ----------------------------------------------------------------------


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
