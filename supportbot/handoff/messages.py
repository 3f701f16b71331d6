"""What the customer reads about the live handoff, one text per state (docs/handoff.md).

They are sent by the handoff machinery (the relay), not chosen by the dialogue model, so they
live here rather than in the domain: changing them needs no retraining."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from supportbot.handoff.estimate import BusinessHours, Estimate

# Kinds of support-side messages (handoff_messages.kind); "agent" is a person's reply.
AGENT, JOINED, BACK, CLOSED, TIMEOUT = "agent", "joined", "back", "closed", "timeout"
KINDS = (AGENT, JOINED, BACK, CLOSED, TIMEOUT)
ASKS_FOR_RATING = (BACK, CLOSED)  # the chat with the person is over: one rating question

WAITING = ("You're in the queue for a person from our support team: the wait is about {minutes} min "
           "right now. Keep this chat open; you can write here meanwhile.")
OFFLINE = ("Our support team is not in right now; they're back {opens}. Your request {reference} stays "
           "open and a person will answer {by_email}.")
TIMED_OUT = ("Sorry, nobody from our team is free yet. Your request {reference} stays open and a person "
             "will answer {by_email}. You can also keep writing here.")
JOINED_TEXT = "{agent} from support joined the chat."
BACK_TEXT = ("You're back with the assistant, and it still knows what you told it. "
             "How did {agent} do? Please rate this chat.")
CLOSED_TEXT = ("{agent} from support closed this chat. The assistant is here if you need anything else. "
               "Please rate this chat.")
BY_EMAIL_VERIFIED = "by email, to the address on your account"
BY_EMAIL_ANONYMOUS = "by email: please leave your email address here"


def by_email(verified: bool) -> str:
    return BY_EMAIL_VERIFIED if verified else BY_EMAIL_ANONYMOUS


def waiting(estimate: Estimate, hours: BusinessHours, reference: str, verified: bool) -> str:
    """The line after "I'm handing you over": the wait, or when people are back."""
    if estimate.open:
        return WAITING.format(minutes=estimate.minutes)
    return OFFLINE.format(opens=opening(estimate.opens_at, hours), reference=reference,
                          by_email=by_email(verified))


def opening(at: Optional[datetime], hours: BusinessHours) -> str:
    """"Monday 08:00 (Europe/Berlin time)"."""
    if at is None:
        return "soon"
    local = at.astimezone(hours.zone)
    return f"{local:%A %H:%M} ({hours.zone.key} time)"
