"""Support tickets through the ticketing adapter (docs/ticketing.md): bug reports (a form),
feature requests, the customer's own tickets, and comments on them. Every write carries a
turn key, so a retried action never files or comments twice."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    forget_unless_said,
    form_starting,
    month_day,
    reply_to_backend_error,
    ticketing,
    turn_key,
)
from actions.handoff import requester_email
from actions.identity import CustomerFormValidation, verified_customer
from actions.transcript import context_text, conversation_context, detected_intent
from supportbot.errors import BackendError
from supportbot.nlu import normalize
from supportbot.ticketing import Ticket

SEVERITIES = ("low", "medium", "high", "critical")
# Words in a severity answer (the buttons send the first of each), most severe first.
SEVERITY_WORDS = [
    ("critical", r"critical|block|urgent|can'?t|cannot|unusable|nothing works"),
    ("high", r"high|major|serious|bad"),
    ("medium", r"medium|moderate|normal|annoying"),
    ("low", r"low|minor|small|cosmetic|trivial"),
]
# "I want to report a bug": asks for the form but says nothing about what happened.
GENERIC_REPORT = re.compile(
    r"^\W*(hi|hello|hey)?\W*(i|we|there'?s|there is)?\s*"
    r"(want|would like|'?d like|need|have|found|wanna)?\s*(to)?\s*"
    r"(report|log|file|raise|flag)?\s*(a|an|another|one)?\s*(small|little|big|possible)?\s*"
    r"(bug|problem|issue|error|glitch|fault)s?\b(report)?\W*(on|with|in)?\s*(your|the)?\s*"
    r"(site|website|app|shop)?\W*$", re.IGNORECASE)
CLOSED = {"resolved", "solved", "closed", "rejected", "deleted"}
MAX_LISTED = 5
TICKET_REPLIES = {"not_found": "utter_ticket_not_found", "unavailable": "utter_ticketing_unavailable"}


def _free_text(value: Any, limit: int = 2000) -> Optional[str]:
    text = " ".join(str(value or "").split())[:limit]
    return text if len(text) >= 2 else None


class ValidateBugReportForm(FormValidationAction):
    """What happened, steps, severity; an email to reply to only if the customer is unknown."""

    def name(self) -> str:
        return "validate_bug_report_form"

    async def required_slots(self, domain_slots: List[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[str]:
        if verified_customer(tracker):
            return [slot for slot in domain_slots if slot != "email"]
        return domain_slots

    async def extract_bug_description(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: DomainDict) -> Dict[str, Any]:
        """The message that started the form is the description when it says what happened."""
        text = tracker.latest_message.get("text") or ""
        if form_starting(tracker, "report_bug") and not tracker.get_slot("bug_description") \
                and not GENERIC_REPORT.match(text) and len(text.split()) >= 3:
            return {"bug_description": text}
        return {}

    def validate_bug_description(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                 domain: DomainDict) -> Dict[str, Any]:
        return {"bug_description": _free_text(value)}

    def validate_bug_steps(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                           domain: DomainDict) -> Dict[str, Any]:
        return {"bug_steps": _free_text(value)}

    def validate_bug_severity(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                              domain: DomainDict) -> Dict[str, Any]:
        text = str(value or "").lower()
        for severity, words in SEVERITY_WORDS:
            if re.search(rf"\b({words})", text):
                return {"bug_severity": severity}
        dispatcher.utter_message(response="utter_invalid_bug_severity")
        return {"bug_severity": None}

    def validate_email(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: DomainDict) -> Dict[str, Any]:
        email = normalize.email(str(value or ""))
        if not email:
            dispatcher.utter_message(response="utter_invalid_email")
        return {"email": email or None}


class ActionCreateBugTicket(Action):
    def name(self) -> str:
        return "action_create_bug_ticket"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        description = tracker.get_slot("bug_description") or ""
        severity = tracker.get_slot("bug_severity") or "medium"
        intro = [f"Bug report from the chat assistant. Severity: {severity}.",
                 f"Detected intent: {detected_intent(conversation_context(tracker), 'report_bug')}", "",
                 f"What happened: {description}", f"Steps to reproduce: {tracker.get_slot('bug_steps') or ''}",
                 ""]
        ticket = _file(dispatcher, tracker, purpose="bug_ticket", subject=f"Bug: {_headline(description)}",
                       intro=intro, tags=["bug", f"severity-{severity}"])
        if ticket:
            dispatcher.utter_message(response="utter_bug_ticket_created", ticket_id=ticket.id)
        return [SlotSet("bug_description", None), SlotSet("bug_steps", None), SlotSet("bug_severity", None)]


class ActionCreateFeatureRequest(Action):
    def name(self) -> str:
        return "action_create_feature_request"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        text = tracker.latest_message.get("text") or ""
        intro = ["Feature request from the chat assistant.",
                 f"Detected intent: {detected_intent(conversation_context(tracker), 'feature_request')}", "",
                 f"Request: {text}", ""]
        ticket = _file(dispatcher, tracker, purpose="feature_request", intro=intro, tags=["feature-request"],
                       subject=f"Feature request: {_headline(text)}")
        if ticket:
            dispatcher.utter_message(response="utter_feature_request_created", ticket_id=ticket.id)
        return []


class ValidateTicketStatusForm(CustomerFormValidation):
    """Nothing to ask a verified customer; the others verify with email + an order number."""

    def name(self) -> str:
        return "validate_ticket_status_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        events = await super().run(dispatcher, tracker, domain)
        # A ticket number from earlier in the chat is not this question's: without one in the
        # message that asks, the customer gets the list of their open tickets.
        return events + forget_unless_said(tracker, "ticket_status", ticket_id="ticket_id")


class ActionTicketStatus(Action):
    """One ticket (ticket_id slot) or the open ones, only ever the verified customer's own."""

    def name(self) -> str:
        return "action_ticket_status"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        if not verified_customer(tracker):
            dispatcher.utter_message(response="utter_ticket_not_found")
            return []
        ticket_id = tracker.get_slot("ticket_id")
        try:
            requester = requester_email(tracker)
            if ticket_id:
                ticket = ticketing().get_ticket(ticket_id, requester=requester)
            else:
                open_tickets = [t for t in ticketing().list_tickets(requester) if t.status not in CLOSED]
        except BackendError as error:
            reply_to_backend_error(dispatcher, error, **TICKET_REPLIES)
            return [SlotSet("ticket_id", None)]
        if not ticket_id and len(open_tickets) != 1:
            if not open_tickets:
                dispatcher.utter_message(response="utter_no_open_tickets")
            else:
                lines = [describe_ticket(t) for t in open_tickets[:MAX_LISTED]]  # newest first
                dispatcher.utter_message(response="utter_open_tickets", tickets="\n".join(lines))
            return []
        ticket = ticket if ticket_id else open_tickets[0]
        dispatcher.utter_message(text=describe_ticket(ticket))
        if ticket.status in CLOSED:
            return [SlotSet("ticket_id", None)]  # nothing to add to a closed ticket
        dispatcher.utter_message(response="utter_offer_ticket_comment", ticket_id=ticket.id)
        return [SlotSet("ticket_id", ticket.id)]


class ValidateTicketCommentForm(FormValidationAction):
    def name(self) -> str:
        return "validate_ticket_comment_form"

    async def required_slots(self, domain_slots: List[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[str]:
        return domain_slots if tracker.get_slot("ticket_id") and verified_customer(tracker) else []

    def validate_ticket_comment(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> Dict[str, Any]:
        return {"ticket_comment": _free_text(value, limit=5000)}


class ActionAddTicketComment(Action):
    def name(self) -> str:
        return "action_add_ticket_comment"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        ticket_id, text = tracker.get_slot("ticket_id"), tracker.get_slot("ticket_comment")
        if not ticket_id or not text or not verified_customer(tracker):
            dispatcher.utter_message(response="utter_which_ticket")
            return [SlotSet("ticket_comment", None)]
        try:
            ticketing().add_comment(ticket_id, text, requester=requester_email(tracker),
                                    idempotency_key=turn_key(tracker, "ticket_comment"))
        except BackendError as error:
            reply_to_backend_error(dispatcher, error, **TICKET_REPLIES)
            return [SlotSet("ticket_comment", None)]
        dispatcher.utter_message(response="utter_ticket_comment_added", ticket_id=ticket_id)
        return [SlotSet("ticket_comment", None)]


def describe_ticket(ticket: Ticket) -> str:
    opened = month_day(ticket.created)
    return f"Ticket {ticket.id}: \"{ticket.subject}\", {ticket.status}, opened {opened}."


def _headline(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _file(dispatcher: CollectingDispatcher, tracker: Tracker, *, purpose: str, subject: str,
          intro: List[str], tags: List[str]) -> Optional[Ticket]:
    """Open the ticket once per turn; on failure, say so honestly and return None."""
    context = conversation_context(tracker)
    body = context_text(intro, context, conversation_id=tracker.sender_id,
                        customer_id=verified_customer(tracker))
    try:
        requester = tracker.get_slot("email") if not verified_customer(tracker) else None
        return ticketing().create_ticket(
            requester=requester or requester_email(tracker), subject=subject, body=body, tags=tags,
            idempotency_key=turn_key(tracker, purpose))
    except BackendError as error:
        reply_to_backend_error(dispatcher, error, **TICKET_REPLIES)
        return None
