"""Refunds: the form (order, amount, reason), a confirmation, and one idempotent write.

Refunds above SUPPORTBOT_REFUND_AUTO_LIMIT (default 200, in the order's currency) or outside
the billing service's policy are not made by the bot: they go to a person with the details.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Dict, List, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import billing, latest_intent, month_day, reply_to_backend_error, turn_key
from actions.handoff import hand_off
from actions.identity import VerifiedFormValidation, verified_customer
from supportbot import settings
from supportbot.errors import BackendError, InvalidRequest, NeedsReview
from supportbot.nlu import normalize

FULL_AMOUNT = re.compile(r"\b(full|all|everything|whole|entire|total)\b", re.IGNORECASE)
POLICY_TEXT = {
    "outside_policy": "it's outside our 30-day refund window",
    "already_refunded": "it has already been refunded in full",
    "not_delivered": "it hasn't been delivered yet",
    "exceeds_refundable": "that is more than what's left to refund on it",
}


# What a pending refund (the refund_quote slot) is for: an order, an invoice (a cancelled
# subscription's last month) or a duplicate payment (actions/payments.py).
REFUND_TARGETS = ("order_id", "invoice_id", "payment_id")


def describe_target(target: Dict[str, str]) -> str:
    if "payment_id" in target:
        return f"the duplicate charge {target['payment_id']}"
    if "invoice_id" in target:
        return f"invoice {target['invoice_id']}"
    return f"order {target.get('order_id')}"


def auto_refund_limit() -> Decimal:
    return settings.amount("SUPPORTBOT_REFUND_AUTO_LIMIT")


def over_limit_reason(currency: str) -> str:
    return f"refunds over {auto_refund_limit()} {currency} are approved by a person"


class ValidateRefundForm(VerifiedFormValidation):
    def name(self) -> str:
        return "validate_refund_form"

    def validate_refund_amount(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        text = str(value or "")
        if latest_intent(tracker) == "affirm" or FULL_AMOUNT.search(text):
            return {"refund_amount": "full"}
        amount = normalize.amount(text)
        if amount is None:
            dispatcher.utter_message(response="utter_invalid_amount")
            return {"refund_amount": None}
        return {"refund_amount": amount}

    def validate_refund_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        reason = " ".join(str(value or "").split())[:500]
        if len(reason) < 2:
            return {"refund_reason": None}
        return {"refund_reason": reason}


class ValidateRefundStatusForm(VerifiedFormValidation):
    def name(self) -> str:
        return "validate_refund_status_form"


class ActionConfirmRefund(Action):
    """Checks the refund with the service and asks the customer to confirm it, or hands
    off when a person must decide."""

    def name(self) -> str:
        return "action_confirm_refund"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        customer_id = verified_customer(tracker)
        order_id = tracker.get_slot("order_id")
        requested = _requested_amount(tracker.get_slot("refund_amount"))
        try:
            quote = billing().refund_quote(customer_id, order_id=order_id, amount=requested)
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return _clear_refund()
        amount = requested if requested is not None else quote.max_refundable
        if not quote.eligible or amount > auto_refund_limit():
            why = (POLICY_TEXT.get(quote.reason or "", "") if not quote.eligible
                   else over_limit_reason(quote.currency))
            dispatcher.utter_message(response="utter_refund_needs_review", what=f"order {order_id}", why=why)
            return _clear_refund() + hand_off(dispatcher, tracker, reason="refund_review", amount=amount)
        # What the customer confirms is exactly what action_create_refund will send.
        summary = {"order_id": order_id, "amount": str(amount), "currency": quote.currency,
                   "reason": tracker.get_slot("refund_reason") or ""}
        dispatcher.utter_message(response="utter_confirm_refund", **summary)
        return [SlotSet("refund_quote", summary)]


class ActionCreateRefund(Action):
    def name(self) -> str:
        return "action_create_refund"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        quote = tracker.get_slot("refund_quote") or {}
        customer_id = verified_customer(tracker)
        if not quote or not customer_id:
            dispatcher.utter_message(response="utter_no_refund_pending")
            return []
        target = {key: quote[key] for key in REFUND_TARGETS if quote.get(key)}
        try:
            refund = billing().create_refund(
                customer_id,
                **target,
                amount=Decimal(quote["amount"]),
                reason=quote["reason"],
                idempotency_key=turn_key(tracker, "refund"),
            )
        except InvalidRequest as error:
            why = POLICY_TEXT.get(error.code, "our billing system refused it")
            dispatcher.utter_message(response="utter_refund_refused", why=why)
            return _clear_refund()
        except NeedsReview:  # the service's own limit: a person approves it
            dispatcher.utter_message(response="utter_refund_needs_review", what=describe_target(target),
                                     why=over_limit_reason(quote.get("currency") or ""))
            return _clear_refund() + hand_off(dispatcher, tracker, reason="refund_review")
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return _clear_refund()
        dispatcher.utter_message(
            response="utter_refund_done", refund_id=refund.id, amount=str(refund.amount),
            currency=refund.currency, what=describe_target(target), status=refund.status,
        )
        return _clear_refund() + [SlotSet("refund_id", refund.id)]


class ActionRefundStatus(Action):
    def name(self) -> str:
        return "action_refund_status"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        customer_id = verified_customer(tracker)
        order_id = tracker.get_slot("order_id")
        try:
            refunds = billing().list_refunds(customer_id, order_id=order_id)
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return []
        if not refunds:
            dispatcher.utter_message(response="utter_refund_status_none")
            return []
        lines = [
            f"Refund {r.id}: {r.amount} {r.currency} for order {r.order_id or r.invoice_id}, "
            f"{r.status} on {month_day(r.created_at)}."
            for r in refunds[:3]  # newest first
        ]
        dispatcher.utter_message(text="\n".join(lines))
        return []


def _requested_amount(slot_value: Optional[str]) -> Optional[Decimal]:
    if not slot_value or slot_value == "full":
        return None
    parsed = normalize.parse_amount(slot_value)
    return parsed[0] if parsed else None


def _clear_refund() -> List[EventType]:
    return [SlotSet("refund_quote", None), SlotSet("refund_amount", None), SlotSet("refund_reason", None)]
