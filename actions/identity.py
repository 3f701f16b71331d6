"""Who the customer is: a signed token from the channel, or email + order number checked
against the billing service. Forms that show account data inherit VerifiedFormValidation.

The verified identity is one fact per session: `customer_id` + `customer_email` (the address
the billing service has), set together only here and by `action_session_start`. Everything
the customer types -- the `email` slot included -- is a claim: no action reads it as
authority. A different email typed later starts a new verification; it never switches the
account silently (docs/security.md)."""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Dict, List, Optional, Tuple

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, EventType, FollowupAction, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import billing, reply_to_backend_error
from supportbot.errors import BackendError, NotFound, RateLimited
from supportbot.identity import customer_from_metadata
from supportbot.nlu import normalize

# Who the customer is, and anything still waiting for their yes: a new session starts clean.
NOT_CARRIED_OVER = {"requested_slot", "customer_id", "customer_verified", "customer_email", "email",
                    "refund_quote",
                    "subscription_step", "subscription_pending", "plan_change_quote",
                    "order_change_pending", "form_switch"}


def verified_customer(tracker: Tracker) -> Optional[str]:
    """The customer id this conversation may see data for, or None."""
    if tracker.get_slot("customer_verified") and tracker.get_slot("customer_id"):
        return tracker.get_slot("customer_id")
    return customer_from_metadata(tracker.latest_message.get("metadata"))


def verified_email(tracker: Tracker) -> Optional[str]:
    """The verified customer's address as the billing service has it, or None. Never the
    `email` slot, which holds whatever address the customer typed last."""
    customer_id = verified_customer(tracker)
    if not customer_id:
        return None
    if tracker.get_slot("customer_verified") and tracker.get_slot("customer_email"):
        return tracker.get_slot("customer_email")
    return billing().get_customer(customer_id).email


def identity_slots(customer_id: Optional[str], email: Optional[str]) -> Dict[str, Any]:
    """The slots that hold the verified identity, always set (or cleared) together."""
    return {"customer_id": customer_id, "customer_email": email,
            "customer_verified": bool(customer_id)}


def identity_events(customer_id: Optional[str], email: Optional[str]) -> List[EventType]:
    return [SlotSet(name, value) for name, value in identity_slots(customer_id, email).items()]


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
            events += identity_events(customer_id, None)  # the address is looked up when needed
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
        switching = self._other_account_named(dispatcher, tracker)
        if switching is not None:
            return switching
        events = await super().run(dispatcher, tracker, domain)
        if any(m.get("response") == "utter_verification_locked" for m in dispatcher.messages):
            # Asking again would only be refused: the form ends on the offer of a person, and
            # no flow runs on after it (its completion rule would answer as if verified).
            return events + [ActiveLoop(None), SlotSet("requested_slot", None), FollowupAction("action_listen")]
        # A signed token that arrives mid-form verifies the customer for the rest of the chat.
        if not tracker.get_slot("customer_verified"):
            customer_id = customer_from_metadata(tracker.latest_message.get("metadata"))
            if customer_id:
                events += identity_events(customer_id, None)
        return events

    @staticmethod
    def _other_account_named(dispatcher: CollectingDispatcher,
                             tracker: Tracker) -> Optional[List[EventType]]:
        """A verified customer who types another account's address starts a new verification
        (that address + one of its order numbers) instead of switching accounts silently.
        Identity from a signed channel token cannot be switched from the chat at all."""
        if tracker.get_slot("requested_slot") not in (None, "email", "order_id"):
            return None  # an answer to another question (a new address for the account, say)
        typed = [normalize.email(str(v)) for v in tracker.get_latest_entity_values("email")]
        typed = [email for email in typed if email]
        if not typed or not verified_customer(tracker):
            return None
        current = tracker.get_slot("customer_email") if tracker.get_slot("customer_verified") else None
        if current and typed[-1] == current.lower():
            return None
        if not tracker.get_slot("customer_verified") or not current:
            # Verified by the channel's signed token (or no address on record yet): stay put.
            dispatcher.utter_message(response="utter_signed_in_other_account")
            return [SlotSet("email", None)]
        dispatcher.utter_message(response="utter_verify_other_account", email=typed[-1])
        # The form now asks for an order number of that account and verifies the pair.
        return identity_events(None, None) + [SlotSet("email", typed[-1]), SlotSet("order_id", None),
                                              SlotSet("requested_slot", "order_id")]

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
        return self._verify(dispatcher, tracker, email, tracker.get_slot("order_id")) or {"email": email}

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
        return self._verify(dispatcher, tracker, email, order_id) or {"order_id": order_id}

    @staticmethod
    def _verify(
        dispatcher: CollectingDispatcher, tracker: Tracker, email: Optional[str], order_id: Optional[str]
    ) -> Optional[Dict[str, Any]]:
        """Check email + order together; None while one of them is still missing. The billing
        service counts failures per conversation and per customer and, past its limit,
        refuses for a while (RateLimited): then the customer is offered a person."""
        if not email or not order_id:
            return None
        try:
            customer = billing().verify_customer(email, order_id, conversation_id=tracker.sender_id)
        except NotFound:
            dispatcher.utter_message(response="utter_verification_failed")
            return {"email": None, "order_id": None}
        except RateLimited:
            dispatcher.utter_message(response="utter_verification_locked")
            return {"email": None, "order_id": None}
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return {"email": None, "order_id": None}
        return {"email": email, "order_id": order_id, **identity_slots(customer.id, customer.email)}

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
