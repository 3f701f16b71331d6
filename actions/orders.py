"""Orders: the status (a form that identifies the order and the customer, then the answer),
cancelling an order and changing its delivery address while it is still being prepared."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import billing, intent_of, month_day, reply_to_backend_error, turn_key
from actions.handoff import hand_off
from actions.identity import VerifiedFormValidation, verified_customer
from supportbot.clients.billing import Order
from supportbot.errors import BackendError, InvalidRequest, NeedsReview
from supportbot.nlu import normalize

STATUS_TEXT = {
    "processing": "is being prepared in our warehouse and hasn't shipped yet",
    "shipped": "is on its way",
    "delivered": "was delivered",
    "cancelled": "was cancelled",
}


class ValidateOrderStatusForm(VerifiedFormValidation):
    def name(self) -> str:
        return "validate_order_status_form"

    async def extract_order_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        """On an order's page, "where is my order?" means the page's order, even when another
        order was discussed earlier: when the question starts and names no order, the page's
        order replaces the earlier one. validate_order_id checks it like a typed one."""
        page_order = page_order_id(tracker)
        if (page_order and tracker.get_slot("requested_slot") is None
                and not list(tracker.get_latest_entity_values("order_id"))):
            return {"order_id": page_order}
        return await super().extract_order_id(dispatcher, tracker, domain)


def page_order_id(tracker: Tracker) -> Optional[str]:
    """The order the customer's page shows (widget metadata `page.order_id`), or None."""
    page = (tracker.latest_message.get("metadata") or {}).get("page")
    order_id = page.get("order_id") if isinstance(page, dict) else None
    return normalize.order_id(order_id) if isinstance(order_id, str) else None


class ActionOrderStatus(Action):
    def name(self) -> str:
        return "action_order_status"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        customer_id = verified_customer(tracker)
        order_id = tracker.get_slot("order_id")
        if not customer_id or not order_id:
            dispatcher.utter_message(response="utter_not_found")
            return []
        try:
            order = billing().get_order(customer_id, order_id)
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return []
        dispatcher.utter_message(text=describe_order(order))
        if _asked_for_address_change(tracker):
            dispatcher.utter_message(response="utter_address_change_by_team")
        return []


def _asked_for_address_change(tracker: Tracker) -> bool:
    """Whether the message that started this form also asked to change the address."""
    for event in reversed(tracker.events):
        if event.get("event") == "active_loop" and event.get("name") == "order_status_form":
            break
    else:
        return False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            intent = intent_of(event) or ""
            if "change_shipping_address" in intent.split("+"):
                return True
            if intent not in ("inform", "affirm"):
                return False
    return False


def describe_order(order) -> str:
    status = STATUS_TEXT.get(order.status, f"has the status '{order.status}'")
    parts = [f"Order {order.id} {status}."]
    if order.status == "shipped":
        if order.carrier and order.tracking_number:
            parts.append(f"It's with {order.carrier}, tracking number {order.tracking_number}.")
        if order.eta:
            parts.append(f"Expected delivery: {order.eta:%A, %B} {order.eta.day}.")
    elif order.status == "delivered" and order.delivered_at:
        parts[0] = f"Order {order.id} was delivered on {month_day(order.delivered_at)}."
    elif order.status == "processing" and order.eta:
        parts.append(f"We expect to deliver it by {month_day(order.eta)}.")
    return " ".join(parts)


# --- cancelling an order and changing its delivery address --------------------------------
# Both are possible only while the order is still being prepared; the billing service has the
# last word (it refuses with already_shipped etc. if the status changed in the meantime).

NOT_CHANGEABLE = {
    "shipped": "it has already shipped",
    "delivered": "it has already been delivered",
    "cancelled": "it has been cancelled",
}


def pending_order_change(order_id: str, kind: str, **details: str) -> List[EventType]:
    return [SlotSet("order_change_pending", {"order_id": order_id, "kind": kind, **details})]


class ValidateOrderCancelForm(VerifiedFormValidation):
    def name(self) -> str:
        return "validate_order_cancel_form"


class ActionConfirmOrderCancellation(Action):
    """Says what cancelling would do (and the refund), or why the order can't be cancelled."""

    def name(self) -> str:
        return "action_confirm_order_cancellation"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        order = _load_order(dispatcher, tracker)
        if order is None:
            return []
        if order.status != "processing":
            dispatcher.utter_message(response="utter_order_not_cancellable", order_id=order.id,
                                     why=NOT_CHANGEABLE.get(order.status, "of its status"))
            return []
        items = ", ".join(f"{i.qty} × {i.name}" for i in order.items)
        dispatcher.utter_message(response="utter_confirm_order_cancellation", order_id=order.id,
                                 items=items, total=f"{order.total} {order.currency}")
        return pending_order_change(order.id, "cancel")


class ActionCancelOrder(Action):
    def name(self) -> str:
        return "action_cancel_order"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        pending, customer_id = _pending(tracker, "cancel"), verified_customer(tracker)
        done = [SlotSet("order_change_pending", None)]
        if not pending or not customer_id:
            dispatcher.utter_message(response="utter_nothing_pending")
            return done
        try:
            result = billing().cancel_order(customer_id, pending["order_id"], reason=None,
                                            idempotency_key=turn_key(tracker, "cancel_order"))
        except InvalidRequest as error:
            _explain_refusal(dispatcher, error, pending["order_id"], "utter_order_not_cancellable")
            return done
        except NeedsReview:  # what was paid is above the service's refund limit
            dispatcher.utter_message(response="utter_refund_needs_review",
                                     what=f"cancelling order {pending['order_id']}",
                                     why="refunding what was paid needs a person's approval")
            return done + hand_off(dispatcher, tracker, reason="refund_review")
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return done
        dispatcher.utter_message(response="utter_order_cancelled", order_id=result.order.id)
        if result.refund is not None:
            dispatcher.utter_message(response="utter_order_cancel_refund", refund_id=result.refund.id,
                                     amount=f"{result.refund.amount} {result.refund.currency}")
        return done


class ValidateAddressChangeForm(VerifiedFormValidation):
    """Order, verification, then the new address -- which is not asked for when the order
    has already left (action_confirm_address_change then says why)."""

    def name(self) -> str:
        return "validate_address_change_form"

    async def required_slots(self, domain_slots: List[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[str]:
        slots = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        customer_id, order_id = verified_customer(tracker), tracker.get_slot("order_id")
        if customer_id and order_id and not tracker.get_slot("new_address"):
            try:
                if billing().get_order(customer_id, order_id).status != "processing":
                    return [slot for slot in slots if slot != "new_address"]
            except BackendError:
                pass  # action_confirm_address_change reports it
        return slots

    def validate_new_address(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> Dict[str, Any]:
        address = " ".join(str(value or "").split())
        if not 10 <= len(address) <= 500 or not any(ch.isdigit() for ch in address):
            dispatcher.utter_message(response="utter_invalid_address")
            return {"new_address": None}
        return {"new_address": address}


class ActionConfirmAddressChange(Action):
    def name(self) -> str:
        return "action_confirm_address_change"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        address = tracker.get_slot("new_address")
        order = _load_order(dispatcher, tracker)
        if order is None:
            return [SlotSet("new_address", None)]
        if order.status != "processing" or not address:
            dispatcher.utter_message(response="utter_address_not_changeable", order_id=order.id,
                                     why=NOT_CHANGEABLE.get(order.status, "of its status"))
            return [SlotSet("new_address", None)]
        dispatcher.utter_message(response="utter_confirm_address_change", order_id=order.id, address=address)
        return [SlotSet("new_address", None)] + pending_order_change(order.id, "address", address=address)


class ActionChangeAddress(Action):
    def name(self) -> str:
        return "action_change_address"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        pending, customer_id = _pending(tracker, "address"), verified_customer(tracker)
        done = [SlotSet("order_change_pending", None)]
        if not pending or not customer_id:
            dispatcher.utter_message(response="utter_nothing_pending")
            return done
        try:
            order = billing().change_shipping_address(customer_id, pending["order_id"], pending["address"],
                                                      idempotency_key=turn_key(tracker, "change_address"))
        except InvalidRequest as error:
            _explain_refusal(dispatcher, error, pending["order_id"], "utter_address_not_changeable")
            return done
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return done
        dispatcher.utter_message(response="utter_address_changed", order_id=order.id,
                                 address=" ".join(order.shipping_address.split()))
        return done


def _load_order(dispatcher: CollectingDispatcher, tracker: Tracker) -> Optional[Order]:
    customer_id, order_id = verified_customer(tracker), tracker.get_slot("order_id")
    if not customer_id or not order_id:
        dispatcher.utter_message(response="utter_not_found")
        return None
    try:
        return billing().get_order(customer_id, order_id)
    except BackendError as error:
        reply_to_backend_error(dispatcher, error)
        return None


def _pending(tracker: Tracker, kind: str) -> Optional[Dict[str, Any]]:
    pending = tracker.get_slot("order_change_pending") or {}
    return pending if pending.get("kind") == kind and pending.get("order_id") else None


def _explain_refusal(dispatcher: CollectingDispatcher, error: InvalidRequest, order_id: str,
                     response: str) -> None:
    """The order changed status since the customer was asked: say why nothing was done."""
    status = (error.code or "").replace("already_", "")
    if status in NOT_CHANGEABLE:
        dispatcher.utter_message(response=response, order_id=order_id, why=NOT_CHANGEABLE[status])
    else:
        reply_to_backend_error(dispatcher, error)
