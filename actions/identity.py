"""Who the customer is: a signed token from the channel, or email + order number checked
against the billing service. Forms that show account data inherit VerifiedFormValidation."""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Dict, List, Optional, Tuple

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import billing, reply_to_backend_error
from supportbot.errors import BackendError, NotFound
from supportbot.identity import customer_from_metadata
from supportbot.nlu import normalize

# Who the customer is, and anything still waiting for their yes: a new session starts clean.
NOT_CARRIED_OVER = {"requested_slot", "customer_id", "customer_verified", "email", "refund_quote",
                    "subscription_step", "subscription_pending", "plan_change_quote",
                    "order_change_pending"}


def verified_customer(tracker: Tracker) -> Optional[str]:
    """The customer id this conversation may see data for, or None."""
    if tracker.get_slot("customer_verified") and tracker.get_slot("customer_id"):
        return tracker.get_slot("customer_id")
    return customer_from_metadata(tracker.latest_message.get("metadata"))


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        events: List[EventType] = [SessionStarted()]
        # Carry over what the previous session knew, except who the customer is: after a
        # session expires, whoever is at the keyboard proves it again.
        for name, value in tracker.current_slot_values().items():
            if value is not None and name not in NOT_CARRIED_OVER:
                events.append(SlotSet(name, value))
        metadata = tracker.get_slot("session_started_metadata")
        customer_id = customer_from_metadata(metadata)
        if customer_id:
            events += [SlotSet("customer_id", customer_id), SlotSet("customer_verified", True)]
        events.append(ActionExecuted("action_listen"))
        return events


class VerifiedFormValidation(FormValidationAction):
    """Asks for email + order number only while the customer is not verified, and verifies
    them against the billing service as soon as both are known."""

    # A verified customer is not asked these again (the order number still is: it names the
    # order the flow is about).
    skipped_when_verified: Tuple[str, ...] = ("email",)

    @abstractmethod
    def name(self) -> str:
        """Each form's validation action names itself (abstract: not registered on its own)."""

    async def required_slots(
        self,
        domain_slots: List[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[str]:
        if verified_customer(tracker):
            return [slot for slot in domain_slots if slot not in self.skipped_when_verified]
        return domain_slots

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        events = await super().run(dispatcher, tracker, domain)
        # A signed token that arrives mid-form verifies the customer for the rest of the chat.
        if not tracker.get_slot("customer_verified"):
            customer_id = customer_from_metadata(tracker.latest_message.get("metadata"))
            if customer_id:
                events += [SlotSet("customer_id", customer_id), SlotSet("customer_verified", True)]
        return events

    async def extract_order_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        """On an order's page ("where is it?"), the order shown is the one meant, unless the
        customer names another. validate_order_id still checks it like a typed one."""
        if tracker.get_slot("order_id"):
            return {}
        page = (tracker.latest_message.get("metadata") or {}).get("page")
        order_id = page.get("order_id") if isinstance(page, dict) else None
        return {"order_id": order_id} if isinstance(order_id, str) and normalize.order_id(order_id) else {}

    def validate_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        email = normalize.email(str(value or ""))
        if not email:
            dispatcher.utter_message(response="utter_invalid_email")
            return {"email": None}
        return self._verify(dispatcher, email, tracker.get_slot("order_id")) or {"email": email}

    def validate_order_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        order_id = normalize.order_id(str(value or ""))
        if not order_id:
            dispatcher.utter_message(response="utter_invalid_order_id")
            return {"order_id": None}
        customer_id = verified_customer(tracker)
        if customer_id:
            return self._check_ownership(dispatcher, customer_id, order_id)
        email = tracker.get_slot("email")
        return self._verify(dispatcher, email, order_id) or {"order_id": order_id}

    @staticmethod
    def _verify(
        dispatcher: CollectingDispatcher, email: Optional[str], order_id: Optional[str]
    ) -> Optional[Dict[str, Any]]:
        """Check email + order together; None while one of them is still missing."""
        if not email or not order_id:
            return None
        try:
            customer = billing().verify_customer(email, order_id)
        except NotFound:
            dispatcher.utter_message(response="utter_verification_failed")
            return {"email": None, "order_id": None}
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return {"email": None, "order_id": None}
        return {
            "email": email,
            "order_id": order_id,
            "customer_id": customer.id,
            "customer_verified": True,
        }

    @staticmethod
    def _check_ownership(
        dispatcher: CollectingDispatcher, customer_id: str, order_id: str
    ) -> Dict[str, Any]:
        try:
            billing().get_order(customer_id, order_id)
        except NotFound:
            dispatcher.utter_message(response="utter_order_not_on_account", order_id=order_id)
            return {"order_id": None}
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return {"order_id": None}
        return {"order_id": order_id}


class CustomerFormValidation(VerifiedFormValidation):
    """For flows about the account rather than one order: a verified customer is asked for
    neither email nor order number; the others verify with both first."""

    skipped_when_verified = ("email", "order_id")

    @abstractmethod
    def name(self) -> str:
        """Each form's validation action names itself (abstract: not registered on its own)."""
