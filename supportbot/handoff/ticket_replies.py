"""Agents' replies on a handoff's ticket, into the customer's chat: the fourth agent tool
(docs/handoff.md#the-ticket).

Every handoff is filed as a ticket, and the record keeps its id (actions/handoff.py). A task in
the Rasa server, next to the relay's watcher, reads the public agent replies (the ticketing
adapter's `replies`: RT correspondence, a public Zendesk comment by an agent, a reply in the
embedded queue) on the tickets of handoffs that are waiting, claimed, or ended less than
SUPPORTBOT_TICKET_REPLIES_HOURS ago, every SUPPORTBOT_TICKET_REPLIES_SECONDS. Each new reply is
stored as a handoff message under a key made of the backend's reply id, so a reply read again
(the next round, after a restart, by a second Rasa server) is stored and sent once; then the
relay puts it into the conversation and the customer's open chat, or keeps it for their return.
A reply on a handoff nobody had claimed is its author joining: the handoff is claimed in their
name first, and the customer reads "Dana from support joined the chat."

Why in the Rasa server rather than a process of its own: the relay is there (no HTTP round trip,
no RASA_URL to configure), and `supportbot run`, `rasa run` and the tests all get it with the
chat. The ticketing calls block, so they run in a worker thread; a backend that is down or
misconfigured is logged and read again next round, and never stops the server.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable, List, Mapping, Optional, Set

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from supportbot import settings
from supportbot.errors import BackendError, Conflict
from supportbot.handoff import messages as texts
from supportbot.handoff.claims import ACTIVE, MAX_AGENT_NAME, MAX_TEXT, WAITING, Claims, HandoffMessage
from supportbot.store import Handoff, HandoffMessageRow, HandoffRow, _to_handoff
from supportbot.ticketing import TicketingAdapter, ticketing_from_env

logger = logging.getLogger(__name__)

KEY = "ticket:"  # a reply's message key: ticket:<the backend's reply id>
TOO_LONG = " … (the whole reply is on your ticket)"


def display_name(author: str) -> str:
    """The name the customer reads, as claims.agent_name accepts it."""
    name = "".join(c for c in " ".join(str(author).split()) if c.isprintable())
    return name[:MAX_AGENT_NAME].strip() or "Support"


def chat_text(text: str) -> str:
    """A reply cut to what a chat message may hold (claims.message_text masks card numbers)."""
    text = text.strip()
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - len(TOO_LONG)].rstrip() + TOO_LONG


class TicketReplies:
    """`tick` stores the new replies (blocking: the store and the ticketing system); `watch` runs
    it every `interval` seconds in a worker thread and has the relay deliver what it stored."""

    def __init__(self, claims: Optional[Claims] = None, ticketing: Optional[TicketingAdapter] = None,
                 environ: Optional[Mapping[str, str]] = None) -> None:
        # Read now: a bad value stops the Rasa server at start, with the reason.
        self.interval = settings.number("SUPPORTBOT_TICKET_REPLIES_SECONDS", environ)
        self.window = timedelta(hours=settings.number("SUPPORTBOT_TICKET_REPLIES_HOURS", environ))
        self.environ = environ
        self._undelivered: Set[str] = set()  # conversations whose relay call failed: again next round
        # Built on first use, not at the server's start: a database or backend that is down must not stop it.
        self._claims, self._ticketing = claims, ticketing

    @property
    def claims(self) -> Claims:
        if self._claims is None:
            self._claims = Claims()
        return self._claims

    @property
    def ticketing(self) -> TicketingAdapter:
        if self._ticketing is None:
            self._ticketing = ticketing_from_env(self.environ)
        return self._ticketing

    def followed(self, now: Optional[datetime] = None) -> List[Handoff]:
        """Handoffs with a ticket: waiting, claimed, or ended within the window; oldest first."""
        since = (now or datetime.now(timezone.utc)) - self.window
        with Session(self.claims.store.engine, future=True) as session:
            rows = session.scalars(select(HandoffRow).where(
                HandoffRow.ticket_id.is_not(None),
                or_(HandoffRow.status.in_(ACTIVE), HandoffRow.resolved_at >= since))
                .order_by(HandoffRow.created_at)).all()
            return [_to_handoff(row) for row in rows]

    def tick(self, now: Optional[datetime] = None) -> List[str]:
        """Store every followed ticket's new replies; the conversations that got one."""
        changed = []
        for handoff in self.followed(now):
            try:
                if self.follow(handoff):
                    changed.append(handoff.conversation_id)
            except BackendError as error:  # one ticket that can't be read must not stop the others
                logger.warning("Replies on ticket %s of handoff %s not read (again in %.0f s): %s",
                               handoff.ticket_id, handoff.reference, self.interval, error.message)
        return changed

    def follow(self, handoff: Handoff) -> List[HandoffMessage]:
        """Store the replies on the handoff's ticket that are not stored yet; the new messages."""
        stored: List[HandoffMessage] = []
        for reply in self.ticketing.replies(handoff.ticket_id, after=self.last_reply(handoff)):
            agent = display_name(reply.author)
            if handoff.status == WAITING:
                handoff = self._join(handoff, agent, stored)
            message, new = self.claims.add_message(handoff, texts.AGENT, chat_text(reply.text),
                                                   key=KEY + reply.id, agent=agent)
            if new:
                stored.append(message)
                logger.info("Handoff %s: reply %s on ticket %s stored for the chat", handoff.reference,
                            reply.id, handoff.ticket_id)
        return stored

    def last_reply(self, handoff: Handoff) -> Optional[str]:
        """The newest reply id stored for the handoff: the ticket is read after it."""
        prefix = f"{handoff.id}:{KEY}"
        with Session(self.claims.store.engine, future=True) as session:
            keys = session.scalars(select(HandoffMessageRow.idempotency_key).where(
                HandoffMessageRow.handoff_id == handoff.id,
                HandoffMessageRow.idempotency_key.startswith(prefix, autoescape=True))).all()
        ids = [int(key[len(prefix):]) for key in keys if key[len(prefix):].isdigit()]
        return str(max(ids)) if ids else None

    def _join(self, handoff: Handoff, agent: str, stored: List[HandoffMessage]) -> Handoff:
        """An agent answering a waiting handoff on its ticket has taken it: claim it for them."""
        try:
            handoff = self.claims.claim(handoff.id, agent)
        except Conflict:  # someone claimed it meanwhile (the inbox, Slack): the reply still goes out
            return self.claims.get(handoff.id)
        message, new = self.claims.add_message(handoff, texts.JOINED, texts.JOINED_TEXT.format(agent=agent),
                                               key="joined", agent=agent)
        if new:
            stored.append(message)
        return handoff

    async def watch(self, sync: Callable[[str], Awaitable[object]]) -> None:
        """Every `interval` seconds: `tick` in a worker thread, then `sync` (the relay) each
        conversation that got a reply."""
        loop = asyncio.get_running_loop()
        while True:
            delay = self.interval
            try:
                changed = await loop.run_in_executor(None, self.tick)
                for conversation_id in dict.fromkeys([*changed, *self._undelivered]):
                    await self._deliver(sync, conversation_id)
            except Exception:  # noqa: BLE001 -- a database or configuration fault must not end the task
                logger.exception("Ticket replies: could not read the handoffs' tickets")
                delay = max(self.interval, 30.0)
            await asyncio.sleep(delay)

    async def _deliver(self, sync: Callable[[str], Awaitable[object]], conversation_id: str) -> None:
        self._undelivered.discard(conversation_id)
        try:
            await sync(conversation_id)
        except LookupError:  # relay.UnknownConversation: not on this server
            logger.warning("Ticket replies: conversation %s is not on this server", conversation_id)
        except Exception:  # noqa: BLE001 -- stored already: delivered next round or on the customer's return
            logger.exception("Ticket replies: conversation %s not brought up to date", conversation_id)
            self._undelivered.add(conversation_id)
