"""The customer's account: a secure link to change the card, password resets, locked
accounts and sign-up trouble, and changing name or email.

The bot never takes card details in chat: it hands out a short-lived link the billing service
serves (a card number typed anyway is masked before anything stores it: supportbot/redact.py).
Password and unlock mails are "sent" by the billing service (its outbox table); the reply is
the same whether or not an account uses the address, so nobody can probe for accounts.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Dict, List, Optional

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import billing, form_starting, reply_to_backend_error, turn_key
from actions.identity import CustomerFormValidation, verified_customer, verified_email
from supportbot.errors import BackendError, Conflict, InvalidRequest
from supportbot.nlu import normalize

# Words that name the detail to change ("address" alone means the email: postal addresses
# belong to orders).
FIELDS = {"name": "name", "surname": "name", "firstname": "name", "lastname": "name",
          "email": "email", "mail": "email", "address": "email"}


class ValidatePaymentMethodForm(CustomerFormValidation):
    def name(self) -> str:
        return "validate_payment_method_form"


class ActionPaymentMethodLink(Action):
    def name(self) -> str:
        return "action_payment_method_link"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        customer_id = verified_customer(tracker)
        if not customer_id:
            dispatcher.utter_message(response="utter_not_found")
            return []
        try:
            link = billing().create_payment_method_link(
                customer_id, idempotency_key=turn_key(tracker, "payment_method_link"))
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return []
        dispatcher.utter_message(response="utter_payment_method_link", link=link.url,
                                 until=f"{link.expires_at:%H:%M} UTC")
        return []


class EmailOnlyFormValidation(FormValidationAction):
    """Forms that only need the address a mail goes to: none for a verified customer."""

    @abstractmethod
    def name(self) -> str:
        """Each form's validation action names itself (abstract: not registered on its own)."""

    async def required_slots(self, domain_slots: List[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[str]:
        return [] if verified_customer(tracker) else domain_slots

    def validate_email(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: DomainDict) -> Dict[str, Any]:
        email = normalize.email(str(value or ""))
        if not email:
            dispatcher.utter_message(response="utter_invalid_email")
        return {"email": email}


class ValidatePasswordResetForm(EmailOnlyFormValidation):
    def name(self) -> str:
        return "validate_password_reset_form"


class ValidateAccountAccessForm(EmailOnlyFormValidation):
    def name(self) -> str:
        return "validate_account_access_form"


def account_email(tracker: Tracker) -> Optional[str]:
    """The verified customer's address from the service, else the one the customer typed."""
    return verified_email(tracker) or normalize.email(tracker.get_slot("email") or "")


class MailAction(Action):
    """Asks the billing service to mail the account's address (once per turn) and says so in
    words that do not tell whether an account uses that address."""

    purpose = ""  # the write's name in its idempotency key
    sent = ""  # the response that confirms

    @abstractmethod
    def name(self) -> str:
        """Each mail action names itself (abstract: not registered on its own)."""

    @abstractmethod
    def request(self, email: str, idempotency_key: str) -> None:
        """The billing client call that queues the mail."""

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        try:
            email = account_email(tracker)
            if email:
                self.request(email, turn_key(tracker, self.purpose))
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
            return []
        dispatcher.utter_message(response=self.sent if email else "utter_invalid_email", email=email or "")
        return []


class ActionRequestPasswordReset(MailAction):
    purpose, sent = "password_reset", "utter_password_reset_sent"

    def name(self) -> str:
        return "action_request_password_reset"

    def request(self, email: str, idempotency_key: str) -> None:
        billing().request_password_reset(email, idempotency_key=idempotency_key)


class ActionAccountAccess(MailAction):
    """Locked out, or the sign-in never worked: the service mails an unlock link to a locked
    account and sign-in help to any other; the reply also covers sign-up problems."""

    purpose, sent = "account_unlock", "utter_account_access_sent"

    def name(self) -> str:
        return "action_account_access"

    def request(self, email: str, idempotency_key: str) -> None:
        billing().request_account_unlock(email, idempotency_key=idempotency_key)


class ValidateUpdateAccountForm(CustomerFormValidation):
    """Verify first; then which detail (name or email) and its new value."""

    def name(self) -> str:
        return "validate_update_account_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        events = await super().run(dispatcher, tracker, domain)
        # A new address typed as the answer also fills the `email` slot (it maps every email
        # entity); that slot must keep meaning "the address we verified", so clear it -- the
        # verified customer's address is read from the service when needed.
        if tracker.get_slot("requested_slot") == "account_new_value" and verified_customer(tracker):
            events.append(SlotSet("email", None))
        return events

    async def extract_account_field(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> Dict[str, Any]:
        """"I want to change my email address": the message that starts the form says which."""
        starting = form_starting(tracker, "update_account")
        field = account_field(tracker.latest_message.get("text") or "") if starting else None
        return {"account_field": field} if field else {}

    def validate_account_field(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> Dict[str, Any]:
        field = account_field(str(value or ""))
        if field is None:
            dispatcher.utter_message(response="utter_invalid_account_field")
        return {"account_field": field}

    def validate_account_new_value(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                   domain: DomainDict) -> Dict[str, Any]:
        text = " ".join(str(value or "").split())
        if tracker.get_slot("account_field") == "email":
            email = normalize.email(text)
            if not email:
                dispatcher.utter_message(response="utter_invalid_email")
            return {"account_new_value": email}
        if not 2 <= len(text) <= 200:
            dispatcher.utter_message(response="utter_invalid_name")
            return {"account_new_value": None}
        return {"account_new_value": text}


def account_field(text: str) -> Optional[str]:
    words = text.lower().replace("-", "").replace("e mail", "email").split()
    found = {FIELDS[w.strip(".,!?")] for w in words if w.strip(".,!?") in FIELDS}
    return found.pop() if len(found) == 1 else None


class ActionUpdateAccount(Action):
    """A new name is saved at once; a new email is only applied once the customer clicks the
    confirmation link the service mails to that new address."""

    def name(self) -> str:
        return "action_update_account"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        customer_id = verified_customer(tracker)
        field, value = tracker.get_slot("account_field"), tracker.get_slot("account_new_value")
        done = [SlotSet("account_field", None), SlotSet("account_new_value", None)]
        if not customer_id or not field or not value:
            dispatcher.utter_message(response="utter_nothing_pending")
            return done
        key = turn_key(tracker, f"update_{field}")
        try:
            if field == "name":
                customer = billing().update_customer_name(customer_id, value, idempotency_key=key)
                dispatcher.utter_message(response="utter_name_updated", name=customer.name)
            else:
                billing().request_email_change(customer_id, value, idempotency_key=key)
                dispatcher.utter_message(response="utter_email_change_sent", email=value)
        except Conflict as error:
            if error.code != "email_taken":
                reply_to_backend_error(dispatcher, error)
            else:
                dispatcher.utter_message(response="utter_email_taken")
        except InvalidRequest as error:
            if error.code != "same_email":
                reply_to_backend_error(dispatcher, error)
            else:
                dispatcher.utter_message(response="utter_same_email")
        except BackendError as error:
            reply_to_backend_error(dispatcher, error)
        return done
