"""What the actions see of a ticketing system: the `Ticket` and the `TicketingAdapter` interface.

Adapters (sql.py, rt.py, zendesk.py) raise only the typed errors of `supportbot.errors`:
BackendUnavailable (down, slow: code "timeout", 429/5xx), NotFound, Forbidden (code "not_yours"
for another customer's ticket), Conflict (an idempotency key reused for a different request,
or a write whose outcome is still unknown) and InvalidRequest.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import List, Optional, Sequence

from supportbot.errors import Forbidden, InvalidRequest


@dataclass(frozen=True)
class Ticket:
    id: str
    subject: str
    status: str  # the backend's own word: new, open, pending, resolved, solved, ...
    requester: str  # the customer's email address, lower case
    created: dt.datetime
    url: Optional[str]  # where a person opens it, when the backend has a web UI


@dataclass(frozen=True)
class ResolvedTicket:
    """A ticket an agent resolved or closed, with the category they filed it under: what the
    learning loop reads to correct the assistant's intents (supportbot/learning/corrections.py)."""

    id: str
    subject: str
    status: str
    category: Optional[str]  # the intent the agent named (RT custom field, Zendesk tag, resolution)
    resolved_at: dt.datetime  # UTC; a ticket resolved again later is read again
    resolved_by: Optional[str] = None


@dataclass(frozen=True)
class TicketReply:
    """A public reply a person of the support team wrote on a ticket: what reaches the
    customer's chat during a handoff (supportbot/handoff/ticket_replies.py)."""

    id: str  # the backend's id of the reply (RT transaction, Zendesk comment): a number, increasing
    author: str  # the agent's display name, as the customer reads it
    text: str
    at: dt.datetime  # UTC


@dataclass(frozen=True)
class TicketQueue:
    """Where a ticket goes: a team's queue in each backend (routing.yml, docs/handoff.md#routing)."""

    team: str  # the embedded queue's name for it: billing, orders, ...
    rt_queue: Optional[str] = None  # RT's queue (None: RT_QUEUE)
    zendesk_group: Optional[int] = None  # Zendesk's group id (None: Zendesk's default group)


PRIORITIES = ("low", "normal", "high", "urgent")  # Zendesk's words; RT's numbers: rt.py


def check_priority(priority: Optional[str]) -> Optional[str]:
    if priority is not None and priority not in PRIORITIES:
        raise InvalidRequest(f"unknown priority {priority!r}: one of {', '.join(PRIORITIES)}")
    return priority


CATEGORY_TAG = "intent:"  # a tag naming the category, where a backend has tags: intent:refund_status


class TicketingAdapter(ABC):
    """One ticketing backend. Every write takes an idempotency key: the same key again returns
    the first result instead of writing twice. Reads are limited to the requester's tickets."""

    name = "ticketing"

    @abstractmethod
    def create_ticket(self, *, requester: str, subject: str, body: str, tags: Sequence[str] = (),
                      idempotency_key: str, queue: Optional[TicketQueue] = None,
                      priority: Optional[str] = None) -> Ticket:
        """Open a ticket for `requester` (an email address), in `queue` (None: the backend's
        default) with `priority` (one of PRIORITIES; None: the backend's default)."""

    @abstractmethod
    def move_ticket(self, ticket_id: str, queue: TicketQueue) -> None:
        """Put the ticket in another team's queue (an agent's routing correction). Not limited
        to one requester: for the support team, never for a customer."""

    @abstractmethod
    def add_comment(self, ticket_id: str, text: str, *, requester: str, idempotency_key: str) -> None:
        """Add the requester's text to their ticket."""

    @abstractmethod
    def get_ticket(self, ticket_id: str, *, requester: str) -> Ticket:
        """The requester's ticket; Forbidden (not_yours) when it is someone else's."""

    @abstractmethod
    def list_tickets(self, requester: str) -> List[Ticket]:
        """The requester's tickets, newest first."""

    @abstractmethod
    def resolved_since(self, since: Optional[dt.datetime] = None) -> List[ResolvedTicket]:
        """Tickets resolved or closed at or after `since` (all when None), oldest first. Not
        limited to one requester: for the learning loop, never for a customer."""

    @abstractmethod
    def replies(self, ticket_id: str, after: Optional[str] = None) -> List[TicketReply]:
        """The public replies agents wrote on the ticket, oldest first, after the reply with id
        `after` (all when None). Never what the requester wrote, what we posted (the ticket's
        first message, add_comment) or internal notes. Not limited to one requester: for the
        handoff's bridge, never for a customer's question."""

    @property
    def location(self) -> str:
        """Which instance of the backend this is (a URL): readers keep one cursor per instance."""
        return self.name


def normal_email(requester: str) -> str:
    return requester.strip().lower()


def check_owner(ticket: Ticket, requester: str) -> Ticket:
    if ticket.requester != normal_email(requester):
        raise Forbidden(f"ticket {ticket.id} belongs to another customer", code="not_yours")
    return ticket


def request_hash(*parts: str) -> str:
    """Fingerprint of a write, to tell a retry (same request) from a reused key (Conflict)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def category_from_tags(tags: Sequence[str]) -> Optional[str]:
    """The category an `intent:<name>` tag names (the last, if an agent left several)."""
    named = [tag[len(CATEGORY_TAG):] for tag in tags if tag.lower().startswith(CATEGORY_TAG)]
    return named[-1] if named else None


def after_id(after: Optional[str]) -> int:
    """The reply id `after` names, as a number (0: from the first reply)."""
    if after is None:
        return 0
    if not str(after).isdigit():
        raise InvalidRequest(f"a reply id is a number, not {after!r}")
    return int(after)


def utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
