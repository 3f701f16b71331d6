"""What every action module shares: backend clients and ticketing, turn keys, and the one place that turns
backend errors into honest replies."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from functools import lru_cache
from typing import Any, Dict, List, Optional, Union

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from supportbot.clients.billing import BillingClient
from supportbot.errors import BackendError, BackendUnavailable, Forbidden, NotFound
from supportbot.store import HandoffStore
from supportbot.ticketing import TicketingAdapter, ticketing_from_env

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def billing() -> BillingClient:
    return BillingClient.from_env()


@lru_cache(maxsize=1)
def handoff_store() -> HandoffStore:
    return HandoffStore()


@lru_cache(maxsize=1)
def ticketing() -> TicketingAdapter:
    """The ticketing backend SUPPORTBOT_TICKETING names (docs/ticketing.md)."""
    return ticketing_from_env()


def turn_key(tracker: Tracker, purpose: str) -> str:
    """An idempotency key for one write in one conversation turn.

    The same action run again for the same user message (action server retry, channel
    resend) gets the same key, so the backend performs the write once.
    """
    message_id = tracker.latest_message.get("message_id") or ""
    turn = message_id or str(len(tracker.events))
    raw = f"{tracker.sender_id}|{turn}|{purpose}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


def reply_to_backend_error(dispatcher: CollectingDispatcher, error: BackendError, *,
                           not_found: str = "utter_not_found",
                           unavailable: str = "utter_backend_unavailable") -> None:
    """The customer-facing answer for a failed backend call. Never claims success.

    NotFound and Forbidden get the same answer, so a reply never tells whether someone else's
    order or ticket exists. `not_found` and `unavailable` name the system in the reply."""
    if isinstance(error, (NotFound, Forbidden)):
        dispatcher.utter_message(response=not_found)
    elif isinstance(error, BackendUnavailable):
        logger.warning("Backend unavailable: %s", error)
        dispatcher.utter_message(response=unavailable)
    else:
        logger.warning("Backend refused the request: %s", error)
        dispatcher.utter_message(response="utter_backend_refused")


def latest_intent(tracker: Tracker) -> Optional[str]:
    return (tracker.latest_message.get("intent") or {}).get("name")


def intent_of(event: Dict[str, Any]) -> Optional[str]:
    """The intent NLU gave a `user` event (None for other events)."""
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def form_starting(tracker: Tracker, intent: str) -> bool:
    """Whether this validation runs on the message that activates the form for `intent`."""
    return tracker.get_slot("requested_slot") is None and latest_intent(tracker) == intent


def forget_unless_said(tracker: Tracker, intent: str, **entity_by_slot: str) -> List[EventType]:
    """When the form for `intent` starts, clear each slot whose entity this message doesn't
    carry: a number or date from earlier in the chat is not this question's."""
    if not form_starting(tracker, intent):
        return []
    return [SlotSet(slot, None) for slot, entity in entity_by_slot.items()
            if not list(tracker.get_latest_entity_values(entity))]


def flow_messages(tracker: Tracker, *intents: str) -> List[str]:
    """The customer's messages since the latest one whose intent is one of `intents`
    (included): what they said during the current flow."""
    texts: List[str] = []
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        texts.append(event.get("text") or "")
        if intent_of(event) in intents:
            break
    return texts[::-1]


def flow_intent(tracker: Tracker, *intents: str) -> Optional[str]:
    """Which of `intents` the customer expressed last: how the current flow started."""
    for event in reversed(tracker.events):
        if event.get("event") == "user" and intent_of(event) in intents:
            return intent_of(event)
    return None


def month_day(moment: Union[dt.date, dt.datetime]) -> str:
    """"March 3" -- the form every reply uses for dates."""
    return f"{moment:%B} {moment.day}"
