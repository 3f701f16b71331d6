"""The ticketing backends under test: building each adapter, and what an agent would do in
the backend's own UI (set a status, count comments)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import rt_server

from supportbot.ticketing import TicketingAdapter
from supportbot.ticketing.ledger import KeyLedger
from supportbot.ticketing.rt import RtTicketing
from supportbot.ticketing.zendesk import ZendeskTicketing


def make_rt(url: str, db_url: str, **kwargs) -> RtTicketing:
    return RtTicketing(url, rt_server.USER, rt_server.PASSWORD, KeyLedger(db_url), **kwargs)


def make_zendesk(url: str, db_url: str, **kwargs) -> ZendeskTicketing:
    kwargs.setdefault("backoff", 0.01)
    return ZendeskTicketing(url, "agent@example.com", "test-token", KeyLedger(db_url), **kwargs)


@dataclass
class Backend:
    """An adapter, plus what an agent would do in the backend's own UI."""

    adapter: TicketingAdapter
    set_status: Callable[[str, str], None]
    comments: Callable[[str], int]  # how many comments the ticket has, first message not counted
    reply: Optional[Callable[[str, str, bool], None]] = None  # an agent answers: (ticket, text, public)
    agent: str = ""  # the name the agent's replies carry


def rt_comments(adapter: RtTicketing, ticket_id: str) -> int:
    history = adapter.api.request("GET", f"/ticket/{ticket_id}/history",
                                  params={"fields": "Type", "per_page": "100"})
    return sum(1 for item in history["items"] if item["Type"] == "Comment")


def rt_reply(adapter: RtTicketing, ticket_id: str, text: str, public: bool) -> None:
    """An RT agent (here root) answering the requestor (correspondence) or leaving a comment."""
    adapter.api.request("POST", f"/ticket/{ticket_id}/{'correspond' if public else 'comment'}",
                        body={"Content": text, "ContentType": "text/plain"})
