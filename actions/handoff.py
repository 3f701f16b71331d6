"""Handing a conversation to a person: the record with its full context, a ticket in the
ticketing backend, the message to the customer with the honest wait, and the pause. An agent
claims, answers and hands back with supportbot.handoff (docs/handoff.md);
`supportbot resume <conversation id>` still gives a conversation back from the server."""
from __future__ import annotations

import hashlib
import logging
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import handoff_store, latest_intent, ticketing, turn_key
from actions.identity import verified_customer, verified_email
from actions.transcript import context_text, conversation_context
from supportbot.handoff import routing
from supportbot.handoff.claims import Claims
from supportbot.handoff.waiting import tell_wait
from supportbot.store import Handoff

logger = logging.getLogger(__name__)

# Why a conversation goes to a person, by the intent that triggered it.
REASONS = {
    "request_human": "customer_request",
    "complaint": "angry_complaint",
    "legal_request": "legal",
    "delete_account": "account_deletion",
    "nlu_fallback": "not_understood",
}


def is_angry(parse_data: Dict[str, Any]) -> bool:
    """ToneAnalyzer's verdict on the message (supportbot.nlu.tone)."""
    return bool((parse_data.get("tone") or {}).get("angry"))


def hand_off(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str,
             amount: Optional[Decimal] = None) -> List[EventType]:
    """Record the handoff with its team and priority (routing.yml; `amount`: the money at stake,
    when the caller knows it from the billing service) and file it as a ticket in that team's
    queue (once per turn), tell the customer how long the wait is (or when people are back), pause."""
    key = turn_key(tracker, "handoff")
    context = conversation_context(tracker)
    route = routing.from_env().route(reason, context, amount)
    record = handoff_store().record(
        conversation_id=tracker.sender_id,
        idempotency_key=key,
        reason=reason,
        customer_id=verified_customer(tracker),
        context=context,
        team=route.team,
        priority=route.priority,
    )
    logger.info("Handoff %s for %s (%s) to %s, priority %s", record.reference, tracker.sender_id, reason,
                record.team, record.priority)
    file_ticket(tracker, record, key, route.why)
    dispatcher.utter_message(response="utter_handoff", handoff_reference=record.reference)
    dispatcher.utter_message(text=tell_wait(Claims(handoff_store()), record))
    return [ConversationPaused()]


def file_ticket(tracker: Tracker, record: Handoff, key: str, why: Sequence[str] = ()) -> Optional[str]:
    """Open the handoff's ticket (same idempotency key as the record) in its team's queue, with its
    priority; returns its id.

    Never raises: the record is already stored and the customer must still be told, so a
    ticketing failure -- or a bug in an adapter -- is logged, not shown.
    """
    try:
        team = routing.from_env().teams.get(record.team or "")
        ticket = ticketing().create_ticket(
            requester=requester_email(tracker), subject=f"Chat handoff {record.reference}: {record.reason}",
            body=ticket_body(record, why=why), tags=["chat-handoff", record.reason], idempotency_key=key,
            queue=team.queue if team else None, priority=record.priority)
        handoff_store().set_ticket(record.id, ticket.id)  # agent replies on it reach the chat
    except Exception:  # noqa: BLE001 -- see the docstring
        logger.exception("Handoff %s stored, but no ticket could be opened", record.reference)
        return None
    logger.info("Handoff %s filed as ticket %s", record.reference, ticket.id)
    return ticket.id


def requester_email(tracker: Tracker) -> str:
    """The verified customer's email (never a typed one); an unverified chat gets a
    placeholder address that names the conversation and can never reach anyone (.invalid)."""
    email = verified_email(tracker)
    if email:
        return email
    digest = hashlib.sha256(tracker.sender_id.encode("utf-8")).hexdigest()[:16]
    return f"chat-{digest}@anonymous.invalid"


def ticket_body(record: Handoff, max_lines: int = 50, why: Sequence[str] = ()) -> str:
    """The summary a person reads in the ticket: why, who, and the latest transcript."""
    intro = [f"Handed off by the assistant: {record.reason} (reference {record.reference})."]
    if record.team:
        intro.append(f"Routed to {record.team}, priority {record.priority}"
                     + (f" ({'; '.join(why)})." if why else "."))
    return context_text(intro, record.context, conversation_id=record.conversation_id,
                        customer_id=record.customer_id, full_record=f"handoff {record.reference}",
                        max_lines=max_lines)


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        intent = latest_intent(tracker)
        return hand_off(dispatcher, tracker, REASONS.get(intent or "", "customer_request"))


class ActionHandleComplaint(Action):
    """An angry complaint goes to a person at once; a calm one gets an apology and choices."""

    def name(self) -> str:
        return "action_handle_complaint"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        if is_angry(tracker.latest_message):
            dispatcher.utter_message(response="utter_complaint_angry")
            return hand_off(dispatcher, tracker, reason="angry_complaint")
        dispatcher.utter_message(response="utter_complaint_calm")
        return []
