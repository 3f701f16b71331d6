"""Order status: the form that identifies the order (and the customer), then the answer."""
from __future__ import annotations

from typing import List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import billing, reply_to_backend_error
from actions.identity import VerifiedFormValidation, verified_customer
from supportbot.errors import BackendError

STATUS_TEXT = {
    "processing": "is being prepared in our warehouse and hasn't shipped yet",
    "shipped": "is on its way",
    "delivered": "was delivered",
    "cancelled": "was cancelled",
}


class ValidateOrderStatusForm(VerifiedFormValidation):
    def name(self) -> str:
        return "validate_order_status_form"


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
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name") or ""
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
        parts[0] = f"Order {order.id} was delivered on {order.delivered_at:%B} {order.delivered_at.day}."
    elif order.status == "processing" and order.eta:
        parts.append(f"We expect to deliver it by {order.eta:%B} {order.eta.day}.")
    return " ".join(parts)
