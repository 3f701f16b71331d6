"""Feedback from the web widget: thumbs up/down on a bot answer, a 1-5 rating of the chat.

The client names only *which* answer it rates (the id of the user message it replied to, and
its position among the replies; the widget gets both from the bot message's metadata). The
texts, the predicted intent and its confidence come from the conversation's tracker, so a
client cannot forge them, and a message that is not in the conversation is rejected.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

from rasa.shared.core.events import BotUttered, Event, SlotSet, UserUttered

MAX_ANSWER_INDEX = 50
VOTES = {"up": 1, "down": -1}
MESSAGE_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class FeedbackError(ValueError):
    """The request is malformed (HTTP 400)."""


class UnknownMessage(LookupError):
    """The conversation has no such answer (HTTP 404)."""


@dataclass(frozen=True)
class FeedbackRequest:
    conversation_id: str
    kind: str  # "answer" | "conversation"
    value: int
    message_id: str = ""
    answer_index: int = 0


def parse(body: Any) -> FeedbackRequest:
    """The request in a JSON body, or FeedbackError saying what is wrong with it.

    {"conversation_id": ..., "message_id": ..., "index": 0, "vote": "up" | "down"}
    {"conversation_id": ..., "rating": 1..5}
    """
    if not isinstance(body, dict):
        raise FeedbackError("The body must be a JSON object.")
    conversation_id = body.get("conversation_id")
    if not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= 255:
        raise FeedbackError('"conversation_id" must be a non-empty string.')
    if "rating" in body:
        rating = body["rating"]
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise FeedbackError('"rating" must be an integer from 1 to 5.')
        return FeedbackRequest(conversation_id, "conversation", rating)
    vote, message_id, index = body.get("vote"), body.get("message_id"), body.get("index", 0)
    if vote not in VOTES:
        raise FeedbackError('"vote" must be "up" or "down" (or send a "rating" from 1 to 5).')
    if not isinstance(message_id, str) or not MESSAGE_ID.match(message_id):
        raise FeedbackError('"message_id" must be the message id from the bot message\'s metadata.')
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_ANSWER_INDEX:
        raise FeedbackError(f'"index" must be an integer from 0 to {MAX_ANSWER_INDEX}.')
    return FeedbackRequest(conversation_id, "answer", VOTES[vote], message_id, index)


def details_from_events(request: FeedbackRequest, events: Sequence[Event]) -> Dict[str, Any]:
    """What is stored with the feedback, read from the conversation's events."""
    customer_id = _verified_customer(events)
    if request.kind == "conversation":
        if not any(isinstance(event, UserUttered) for event in events):
            raise UnknownMessage("The conversation has no messages to rate.")
        return {"customer_id": customer_id}
    user: Optional[UserUttered] = None
    answers = []
    for event in events:
        if isinstance(event, UserUttered):
            if user is not None:
                break
            if event.message_id == request.message_id:
                user = event
        elif isinstance(event, BotUttered) and user is not None:
            answers.append(event.text)
    if user is None or request.answer_index >= len(answers):
        raise UnknownMessage("The conversation has no such answer.")
    intent = user.intent or {}
    return {
        "user_text": user.text,
        "bot_text": answers[request.answer_index],
        "intent": intent.get("name"),
        "confidence": intent.get("confidence"),
        "customer_id": customer_id,
    }


def _verified_customer(events: Sequence[Event]) -> Optional[str]:
    slots: Dict[str, Any] = {}
    for event in events:
        if isinstance(event, SlotSet) and event.key in ("customer_id", "customer_verified"):
            slots[event.key] = event.value
    return slots.get("customer_id") if slots.get("customer_verified") else None
