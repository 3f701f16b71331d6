"""Subscriptions: cancelling (one retention offer at most, then a confirmed cancellation, and
a refund of the last month when the customer asked for both in one message) and changing
plan (the service's proration preview, then the change on confirmation).

The retention offer is made when SUPPORTBOT_RETENTION_OFFER is on (the default) and the
billing service has one for the subscription. The slot `subscription_step` (retention |
confirm) tells the rules in data/rules/subscriptions.yml what a yes or a no answers.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    billing,
    flow_intent,
    forget_unless_said,
    latest_intent,
    month_day,
    reply_to_backend_error,
    turn_key,
)
from actions.identity import CustomerFormValidation, verified_customer
from actions.refunds import POLICY_TEXT
from supportbot import settings
from supportbot.clients.billing import Invoice, Subscription
from supportbot.errors import BackendError, InvalidRequest

CANCEL_INTENTS = ("cancel_subscription", "cancel_subscription+request_refund")
BOTH = "cancel_subscription+request_refund"
# Words customers use for each plan (data/nlu/entities.yml has the same synonyms for NLU).
PLAN_WORDS = {"basic": "basic", "starter": "basic", "plus": "plus", "standard": "plus",
              "premium": "premium", "pro": "premium"}
NO_SUBSCRIPTION = "utter_no_active_subscription"


def retention_enabled() -> bool:
    return settings.flag("SUPPORTBOT_RETENTION_OFFER")


def active_subscription(customer_id: str) -> Optional[Subscription]:
    return next((s for s in billing().list_subscriptions(customer_id) if s.status == "active"), None)


def price(amount: Decimal, currency: str) -> str:
    return f"{amount} {currency}"


# --- cancelling --------------------------------------------------------------------------


class ValidateCancelSubscriptionForm(CustomerFormValidation):
    def name(self) -> str:
        return "validate_cancel_subscription_form"


class ActionConfirmCancellation(Action):
    """States the plan and the day access ends, makes the one retention offer, or asks the
    customer to confirm the cancellation."""

    def name(self) -> str:
        return "action_confirm_cancellation"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        try:
            subscription = active_subscription(verified_customer(tracker))
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return [SlotSet("subscription_step", None)]
        if subscription is None:
            dispatcher.utter_message(response=NO_SUBSCRIPTION)
            return [SlotSet("subscription_step", None)]
        offer = subscription.retention_offer
        both = flow_intent(tracker, *CANCEL_INTENTS) == BOTH
        pending = {"subscription_id": subscription.id, "plan": subscription.plan_name}
        # Someone asking for their money back too has decided: no offer then.
        if offer and retention_enabled() and not both and not tracker.get_slot("retention_offered"):
            dispatcher.utter_message(response="utter_retention_offer", plan=subscription.plan_name,
                                     offer=offer.description)
            return [SlotSet("subscription_step", "retention"), SlotSet("retention_offered", True),
                    SlotSet("subscription_pending", {**pending, "offer_id": offer.id})]
        dispatcher.utter_message(
            response="utter_confirm_cancellation", plan=subscription.plan_name,
            price=price(subscription.monthly_price, subscription.currency),
            ends=month_day(subscription.renews_at) if subscription.renews_at else "today")
        if both:
            dispatcher.utter_message(response="utter_refund_after_cancellation")
        return [SlotSet("subscription_step", "confirm"), SlotSet("subscription_pending", pending)]


class ActionAcceptRetentionOffer(Action):
    def name(self) -> str:
        return "action_accept_retention_offer"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        pending = tracker.get_slot("subscription_pending") or {}
        done = [SlotSet("subscription_step", None), SlotSet("subscription_pending", None)]
        if not pending.get("offer_id") or not verified_customer(tracker):
            dispatcher.utter_message(response="utter_nothing_pending")
            return done
        try:
            subscription = billing().accept_retention_offer(
                verified_customer(tracker), pending["subscription_id"], offer_id=pending["offer_id"],
                idempotency_key=turn_key(tracker, "retention_offer"))
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return done
        dispatcher.utter_message(response="utter_retention_accepted", plan=subscription.plan_name,
                                 percent=subscription.discount_percent, months=subscription.discount_months)
        return done


class ActionKeepSubscription(Action):
    """The customer said no at the confirmation: nothing changes, nothing stays pending."""

    def name(self) -> str:
        return "action_keep_subscription"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        dispatcher.utter_message(response="utter_subscription_kept")
        return [SlotSet("subscription_step", None), SlotSet("subscription_pending", None)]


class ActionCancelSubscription(Action):
    """Cancels once (a turn key), then -- when the customer also asked for a refund -- offers
    to refund the last month through the usual confirm-then-refund path."""

    def name(self) -> str:
        return "action_cancel_subscription"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        customer_id = verified_customer(tracker)
        pending = tracker.get_slot("subscription_pending") or {}
        done: List[EventType] = [SlotSet("subscription_step", None), SlotSet("subscription_pending", None)]
        if not pending.get("subscription_id") or not customer_id:
            dispatcher.utter_message(response="utter_nothing_pending")
            return done
        try:
            subscription = billing().cancel_subscription(
                customer_id, pending["subscription_id"], reason=_reason(tracker),
                idempotency_key=turn_key(tracker, "cancel_subscription"))
        except InvalidRequest as error:
            if error.code != "already_cancelled":
                reply_to_backend_error(dispatcher, error)
                return done
            dispatcher.utter_message(response="utter_subscription_already_cancelled")
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return done
        else:
            dispatcher.utter_message(response="utter_subscription_cancelled", plan=subscription.plan_name,
                                     ends=month_day(subscription.ends_at) if subscription.ends_at else "today")
        if flow_intent(tracker, *CANCEL_INTENTS) == BOTH:
            done += offer_last_month_refund(dispatcher, customer_id)
        return done


def offer_last_month_refund(dispatcher: CollectingDispatcher, customer_id: str) -> List[EventType]:
    """Quote a refund of the newest paid subscription invoice and ask to confirm it."""
    try:
        invoice = last_subscription_invoice(billing().list_invoices(customer_id))
        quote = billing().refund_quote(customer_id, invoice_id=invoice.id) if invoice else None
    except BackendError as error:
        reply_to_backend_error(dispatcher, error)
        return []
    if invoice is None or quote is None:
        dispatcher.utter_message(response="utter_no_subscription_invoice")
        return []
    if not quote.eligible:
        dispatcher.utter_message(response="utter_subscription_refund_not_possible", invoice_id=invoice.id,
                                 why=POLICY_TEXT.get(quote.reason or "", "our refund policy doesn't allow it"))
        return []
    summary = {"invoice_id": invoice.id, "amount": str(quote.max_refundable), "currency": quote.currency,
               "reason": "subscription cancelled"}
    dispatcher.utter_message(response="utter_confirm_subscription_refund", invoice_id=invoice.id,
                             amount=summary["amount"], currency=quote.currency, date=month_day(invoice.issued_at))
    return [SlotSet("refund_quote", summary)]


def last_subscription_invoice(invoices: Sequence[Invoice]) -> Optional[Invoice]:
    """Subscription invoices are the ones without an order; the service lists newest first."""
    return next((i for i in invoices if i.order_id is None and i.status == "paid"), None)


def _reason(tracker: Tracker) -> Optional[str]:
    text = " ".join((tracker.latest_message.get("text") or "").split())
    return None if latest_intent(tracker) in ("affirm", "deny") else text[:500] or None


# --- changing plan -----------------------------------------------------------------------


class ValidateChangePlanForm(CustomerFormValidation):
    def name(self) -> str:
        return "validate_change_plan_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        events = await super().run(dispatcher, tracker, domain)
        # A plan named earlier in the chat is not necessarily the one wanted now.
        return events + forget_unless_said(tracker, "change_plan", plan="plan")

    def validate_plan(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: DomainDict) -> Dict[str, Any]:
        plan = plan_id(str(value or ""))
        if plan is None:
            dispatcher.utter_message(response="utter_invalid_plan")
        return {"plan": plan}


def plan_id(text: str) -> Optional[str]:
    words = text.lower().replace("-", " ").split()
    found = {PLAN_WORDS[w.strip(".,!?")] for w in words if w.strip(".,!?") in PLAN_WORDS}
    return found.pop() if len(found) == 1 else None


class ActionAskPlan(Action):
    """Which plan? The service's plans and prices as buttons."""

    def name(self) -> str:
        return "action_ask_plan"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        try:
            plans = billing().list_plans()
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return []
        buttons = [{"title": f"{p.name}: {price(p.monthly_price, p.currency)} a month", "payload": p.id}
                   for p in plans]
        dispatcher.utter_message(response="utter_ask_plan", buttons=buttons)
        return []


class ActionPreviewPlanChange(Action):
    """What the switch costs today and from the next renewal, from the service."""

    def name(self) -> str:
        return "action_preview_plan_change"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        customer_id, plan = verified_customer(tracker), tracker.get_slot("plan")
        try:
            subscription = active_subscription(customer_id)
            if subscription is None:
                dispatcher.utter_message(response=NO_SUBSCRIPTION)
                return [SlotSet("plan", None)]
            preview = billing().preview_plan_change(customer_id, subscription.id, plan)
            names = {p.id: p.name for p in billing().list_plans()}
        except InvalidRequest as error:
            if error.code == "same_plan":
                dispatcher.utter_message(response="utter_same_plan", plan=plan)
            else:
                reply_to_backend_error(dispatcher, error)
            return [SlotSet("plan", None)]
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return [SlotSet("plan", None)]
        due = preview.amount_due
        today = (f"you pay {price(due, preview.currency)} now for the rest of this period" if due > 0 else
                 f"you get a credit of {price(-due, preview.currency)} for the rest of this period" if due < 0
                 else "nothing changes on this period's bill")
        dispatcher.utter_message(response="utter_confirm_plan_change",
                                 old=names.get(preview.from_plan, preview.from_plan),
                                 new=names.get(preview.to_plan, preview.to_plan),
                                 today=today, renewal=price(preview.next_renewal_amount, preview.currency))
        quote = {"subscription_id": subscription.id, "plan": plan}
        return [SlotSet("plan_change_quote", quote)]


class ActionChangePlan(Action):
    def name(self) -> str:
        return "action_change_plan"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        quote, customer_id = tracker.get_slot("plan_change_quote") or {}, verified_customer(tracker)
        done = [SlotSet("plan_change_quote", None), SlotSet("plan", None)]
        if not quote or not customer_id:
            dispatcher.utter_message(response="utter_nothing_pending")
            return done
        try:
            change = billing().change_plan(customer_id, quote["subscription_id"], quote["plan"],
                                           idempotency_key=turn_key(tracker, "change_plan"))
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return done
        dispatcher.utter_message(response="utter_plan_changed", plan=change.subscription.plan_name)
        if change.invoice_id:
            dispatcher.utter_message(response="utter_plan_change_invoice", invoice_id=change.invoice_id,
                                     amount=price(change.amount_due, change.currency))
        elif change.amount_due < 0:
            dispatcher.utter_message(response="utter_plan_change_credit",
                                     amount=price(-change.amount_due, change.currency))
        return done
