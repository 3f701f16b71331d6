"""Invoices, payment problems and disputed charges (docs/designer-guide.md, "Billing flows").

Everything shown comes from the billing service for the verified customer only; another
customer's invoice or payment gets the same answer as one that does not exist. A duplicate
charge is refunded through the same confirm-then-write path as any refund
(actions/refunds.py), and a dispute above SUPPORTBOT_DISPUTE_AUTO_LIMIT (default 100), or
one that mentions a chargeback or the bank, goes to a person instead of the service; so does a
payment problem whose customer speaks of a chargeback.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    billing,
    flow_messages,
    forget_unless_said,
    month_day,
    reply_to_backend_error,
    turn_key,
)
from actions.handoff import hand_off
from actions.identity import CustomerFormValidation, verified_customer
from actions.refunds import auto_refund_limit, over_limit_reason
from supportbot import settings
from supportbot.clients.billing import Invoice, Payment
from supportbot.errors import BackendError, InvalidRequest, NeedsReview
from supportbot.nlu import normalize

INVOICE_REPLIES = {"not_found": "utter_invoice_not_found"}
# What a declined payment means for the customer, and what to do next.
FAILURE_ADVICE = {
    "expired_card": "the card ending {last4} had expired. Adding a current card fixes it",
    "card_declined": "your bank declined the card ending {last4}. Your bank can tell you why, "
                     "or you can use another card",
    "insufficient_funds": "the card ending {last4} didn't have enough funds. You can retry "
                          "once it does, or use another card",
}
# "I'll do a chargeback", "my bank says": a dispute a person must handle.
BANK_WORDS = re.compile(r"\b(charge[\s-]?backs?|bank|banks|credit card company|card issuer)\b",
                        re.IGNORECASE)
# In a payment problem, "my bank declined it" is an ordinary decline; only a chargeback (or
# taking the charge back through the bank) turns it into a dispute for a person.
CHARGEBACK_WORDS = re.compile(r"\b(charge[\s-]?backs?|(reverse|reversing|reversed) the (charge|payment)|"
                              r"(dispute|disputing|contest|contesting) (it|this|the charge|the payment) "
                              r"with (my|the) (bank|card issuer|credit card company))\b", re.IGNORECASE)
PAYMENT_ID = re.compile(r"\bP-\d{6}\b", re.IGNORECASE)
RECENT_DAYS = 60
MAX_CHOICES = 3


def dispute_auto_limit() -> Decimal:
    return settings.amount("SUPPORTBOT_DISPUTE_AUTO_LIMIT")


# --- invoices ----------------------------------------------------------------------------


class ValidateInvoiceForm(CustomerFormValidation):
    def name(self) -> str:
        return "validate_invoice_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        events = await super().run(dispatcher, tracker, domain)
        return events + forget_unless_said(tracker, "get_invoice", invoice_id="invoice_id",
                                           invoice_date="date")


class ActionShowInvoice(Action):
    """The invoice asked for -- by number, by date, or the latest -- with its document link."""

    def name(self) -> str:
        return "action_show_invoice"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        customer_id = verified_customer(tracker)
        done = [SlotSet("invoice_id", None), SlotSet("invoice_date", None)]
        if not customer_id:
            dispatcher.utter_message(response="utter_invoice_not_found")
            return done
        invoice_id = normalize.invoice_id(tracker.get_slot("invoice_id") or "")
        day = normalize.calendar_date(tracker.get_slot("invoice_date") or "")
        try:
            if invoice_id:
                invoice: Optional[Invoice] = billing().get_invoice(customer_id, invoice_id)
            else:
                invoice = pick_invoice(billing().list_invoices(customer_id), day)
        except BackendError as error:
            reply_to_backend_error(dispatcher, error, **INVOICE_REPLIES)
            return done
        if invoice is None:
            dispatcher.utter_message(response="utter_no_invoice_on_date" if day else "utter_no_invoices",
                                     date=day or "")
            return done
        dispatcher.utter_message(
            response="utter_invoice", invoice_id=invoice.id, amount=str(invoice.amount),
            currency=invoice.currency, date=month_day(invoice.issued_at), status=invoice.status,
            link=invoice.document_url or "")
        return done


def pick_invoice(invoices: Sequence[Invoice], day: Optional[str]) -> Optional[Invoice]:
    """The newest invoice, or the one issued closest to `day` (ISO date) within 3 days."""
    if not day:
        return invoices[0] if invoices else None  # the service lists newest first
    wanted = dt.date.fromisoformat(day)
    near = [i for i in invoices if abs((i.issued_at.date() - wanted).days) <= 3]
    return min(near, key=lambda i: abs((i.issued_at.date() - wanted).days), default=None)


# --- payment problems: duplicates and declines ------------------------------------------


class ValidatePaymentProblemForm(CustomerFormValidation):
    def name(self) -> str:
        return "validate_payment_problem_form"


class ActionCheckPayments(Action):
    """Looks at the customer's recent payments: offers to refund a real duplicate charge,
    explains the latest decline, or says plainly that nothing looks wrong."""

    def name(self) -> str:
        return "action_check_payments"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        if any(CHARGEBACK_WORDS.search(text) for text in flow_messages(tracker, "payment_problem")):
            return _dispute_to_person(dispatcher, tracker, True, "")
        customer_id = verified_customer(tracker)
        if not customer_id:
            dispatcher.utter_message(response="utter_not_found")
            return []
        try:
            duplicates = billing().find_duplicate_payments(customer_id)
            payments = billing().list_payments(customer_id) if not duplicates else ()
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return []
        if duplicates:
            extra = duplicates[0].payment
            if extra.amount > auto_refund_limit():
                dispatcher.utter_message(response="utter_refund_needs_review",
                                         what=f"the duplicate charge {extra.id}",
                                         why=over_limit_reason(extra.currency))
                return hand_off(dispatcher, tracker, reason="refund_review", amount=extra.amount)
            quote = {"payment_id": extra.id, "amount": str(extra.amount), "currency": extra.currency,
                     "reason": f"duplicate of payment {duplicates[0].original_payment_id}"}
            dispatcher.utter_message(response="utter_duplicate_charge", amount=str(extra.amount),
                                     currency=extra.currency, date=month_day(extra.created_at),
                                     last4=extra.card_last4)
            return [SlotSet("refund_quote", quote)]
        declined = latest_decline(payments)
        if declined is None:
            dispatcher.utter_message(response="utter_no_payment_problem")
            return []
        failed, retried = declined
        advice = FAILURE_ADVICE.get(failed.failure_reason or "", "the payment was refused (card "
                                    "ending {last4})").format(last4=failed.card_last4)
        what = f"order {failed.order_id}" if failed.order_id else f"invoice {failed.invoice_id}"
        dispatcher.utter_message(response="utter_payment_declined", amount=str(failed.amount),
                                 currency=failed.currency, date=month_day(failed.created_at), what=what,
                                 advice=advice)
        dispatcher.utter_message(response="utter_payment_retry_succeeded" if retried
                                 else "utter_payment_next_step", last4=retried.card_last4 if retried else "")
        return []


def latest_decline(payments: Sequence[Payment]) -> Optional[tuple]:
    """(the newest failed payment of the last RECENT_DAYS, the payment that later paid the same
    thing or None); None when nothing failed."""
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=RECENT_DAYS)
    failed = [p for p in payments if p.status == "failed" and p.created_at >= cutoff]
    if not failed:
        return None
    last = failed[0]  # newest first
    retried = next((p for p in payments if p.status == "succeeded" and p.created_at > last.created_at
                    and (p.invoice_id, p.order_id) == (last.invoice_id, last.order_id)), None)
    return last, retried


# --- disputed charges --------------------------------------------------------------------


class ValidateDisputeForm(CustomerFormValidation):
    """Which charge (a payment id from the buttons, an amount, or an order/invoice number) and why."""

    def name(self) -> str:
        return "validate_dispute_form"

    def validate_dispute_payment_id(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[str, Any]:
        try:
            payments = succeeded_payments(verified_customer(tracker))
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return {"dispute_payment_id": None, "requested_slot": None}
        payment = match_payment(str(value or ""), payments)
        if payment is None:
            dispatcher.utter_message(response="utter_charge_not_found")
            return {"dispute_payment_id": None}
        return {"dispute_payment_id": payment.id}

    def validate_dispute_reason(self, value: Any, dispatcher: CollectingDispatcher,
                                tracker: Tracker, domain: DomainDict) -> Dict[str, Any]:
        reason = " ".join(str(value or "").split())[:500]
        return {"dispute_reason": reason if len(reason) >= 2 else None}


def succeeded_payments(customer_id: Optional[str]) -> List[Payment]:
    """The charges a customer can dispute, newest first."""
    return [p for p in billing().list_payments(customer_id) if p.status == "succeeded"]


def match_payment(text: str, payments: Sequence[Payment]) -> Optional[Payment]:
    """The one payment `text` names: its id, its order or invoice number, or its amount."""
    by_id = PAYMENT_ID.search(text)
    if by_id:
        return next((p for p in payments if p.id == by_id.group(0).upper()), None)
    words = text.replace(",", " ").split()
    ids = {normalize.order_id(w) for w in words} | {normalize.invoice_id(w) for w in words}
    ids.discard(None)
    matches = [p for p in payments if p.order_id in ids or p.invoice_id in ids]
    if not matches:
        parsed = normalize.parse_amount(normalize.amount(text) or "")
        matches = [p for p in payments if parsed and p.amount == parsed[0]]
    return matches[0] if matches else None  # newest first


class ActionAskDisputePaymentId(Action):
    """Which charge? The customer's latest charges as buttons."""

    def name(self) -> str:
        return "action_ask_dispute_payment_id"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        try:
            payments = succeeded_payments(verified_customer(tracker))[:MAX_CHOICES]
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return []
        buttons = [{"title": f"{p.amount} {p.currency} on {month_day(p.created_at)} (card {p.card_last4})",
                    "payload": p.id} for p in payments]
        dispatcher.utter_message(response="utter_ask_dispute_payment_id", buttons=buttons)
        return []


class ActionOpenDispute(Action):
    """Opens the dispute in the billing service, or hands it to a person when it is large or
    the customer brought in their bank."""

    def name(self) -> str:
        return "action_open_dispute"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        customer_id = verified_customer(tracker)
        payment_id, reason = tracker.get_slot("dispute_payment_id"), tracker.get_slot("dispute_reason")
        done = [SlotSet("dispute_payment_id", None), SlotSet("dispute_reason", None)]
        if not customer_id or not payment_id:
            dispatcher.utter_message(response="utter_charge_not_found")
            return done
        try:
            payment = next((p for p in billing().list_payments(customer_id) if p.id == payment_id), None)
            if payment is None:
                dispatcher.utter_message(response="utter_charge_not_found")
                return done
            bank = any(BANK_WORDS.search(text) for text in flow_messages(tracker, "dispute_charge"))
            if bank or payment.amount > dispute_auto_limit():
                return done + _dispute_to_person(dispatcher, tracker, bank, payment.currency, payment.amount)
            dispute = billing().create_dispute(customer_id, payment_id=payment_id, reason=reason or "not given",
                                               idempotency_key=turn_key(tracker, "dispute"))
        except NeedsReview:  # the service's own limit
            return done + _dispute_to_person(dispatcher, tracker, False, payment.currency, payment.amount)
        except InvalidRequest as error:
            if error.code == "already_disputed":
                dispatcher.utter_message(response="utter_dispute_exists")
            else:
                reply_to_backend_error(dispatcher, error)
            return done
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return done
        dispatcher.utter_message(response="utter_dispute_opened", dispute_id=dispute.id,
                                 amount=str(dispute.amount), currency=dispute.currency)
        return done


def _dispute_to_person(dispatcher: CollectingDispatcher, tracker: Tracker, bank: bool,
                       currency: str, amount: Optional[Decimal] = None) -> List[EventType]:
    why = ("chargebacks and bank disputes are handled by our billing team" if bank else
           f"disputes over {dispute_auto_limit()} {currency} are reviewed by a person")
    dispatcher.utter_message(response="utter_dispute_to_person", why=why)
    return hand_off(dispatcher, tracker, reason="charge_dispute", amount=amount)
