"""The agents' desk: the Python API the agent page, Slack and `supportbot handoffs` call.

Each operation stores first (claims.py: claims, idempotent messages), then asks the Rasa
server's relay to bring the conversation in line (relay.py). So a call retried after a
timeout does its work once, and anything stored but not yet delivered goes out with the next
call or when the customer's widget comes back. Errors are supportbot.errors': NotFound (no
such handoff), Conflict (another agent has it, or it is over), InvalidRequest (bad input, an
unknown team, or a conversation no live reply can reach), BackendUnavailable (Rasa or the
ticketing backend unreachable, Rasa without the relay: what was stored stays stored).
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

from sqlalchemy.exc import SQLAlchemyError

from supportbot.errors import BackendError, BackendUnavailable, InvalidRequest
from supportbot.handoff import messages as texts
from supportbot.handoff import routing
from supportbot.handoff.claims import CLOSED, HANDED_BACK, Claims, HandoffMessage, agent_name
from supportbot.handoff.client import RasaRelay
from supportbot.store import Handoff
from supportbot.ticketing import TicketingAdapter, ticketing_from_env
from supportbot.ticketing.base import PRIORITIES

logger = logging.getLogger(__name__)

LIVE_CHANNELS = ("socketio",)  # where a reply reaches an open chat: the web widget


@dataclass(frozen=True)
class QueueItem:
    reference: str
    handoff_id: str
    conversation_id: str
    reason: str
    status: str  # open (waiting) or claimed
    agent: Optional[str]  # who claimed it
    waiting_seconds: float  # since the handoff
    customer_id: Optional[str]  # the verified customer, None: not verified
    told_wait_minutes: Optional[int]
    email_offered: bool
    summary: Dict[str, Any]  # summary(): what the assistant knew
    team: Optional[str] = None  # whose queue it is in (None: made before routing)
    priority: Optional[str] = None  # low | normal | high | urgent

    @property
    def verified(self) -> bool:
        return self.customer_id is not None

    @property
    def rank(self) -> int:
        """Urgent first: 0 for urgent .. 3 for low (and no priority, as normal)."""
        return PRIORITIES[::-1].index(self.priority if self.priority in PRIORITIES else "normal")


@dataclass(frozen=True)
class Sent:
    """What became of a message: `delivered` to an open chat, or waiting for the customer's
    return; `duplicate`: the idempotency key had been used, nothing new was sent."""

    message: HandoffMessage
    duplicate: bool
    delivered: bool


@dataclass(frozen=True)
class Line:
    at: datetime
    who: str  # customer, bot, agent or support
    text: str
    agent: Optional[str] = None


def summary(context: Dict[str, Any], last: int = 8) -> Dict[str, Any]:
    """The handoff record's context, cut to what an agent reads first."""
    transcript = context.get("transcript") or []
    return {
        "last_messages": [{"from": t.get("from"), "text": t.get("text")} for t in transcript[-last:]],
        "intents": [{"text": t.get("text"), "intent": t.get("intent"), "confidence": t.get("confidence"),
                     "entities": t.get("entities") or []}
                    for t in transcript if t.get("from") == "customer"],
        "intent_ranking": context.get("intent_ranking") or [],
        "slots": context.get("slots") or {},
        "tone": context.get("tone"),
    }


class Desk:
    def __init__(self, claims: Optional[Claims] = None, relay: Optional[RasaRelay] = None,
                 ticketing: Callable[[], TicketingAdapter] = ticketing_from_env,
                 learning: Optional[Callable[[], Any]] = None) -> None:
        self.claims = claims or Claims()
        self.relay = relay or RasaRelay.from_env()
        self._ticketing, self._learning = ticketing, learning
        self._adapter: Optional[TicketingAdapter] = None

    def queue(self, now: Optional[datetime] = None, team: Optional[str] = None) -> List[QueueItem]:
        """Waiting and claimed handoffs (of `team`'s queue, when given), the most urgent first,
        then the longest waiting. InvalidRequest for a team routing.yml does not name."""
        if team is not None:
            self.team(team)
        now = now or datetime.now(timezone.utc)
        items = [QueueItem(h.reference, h.id, h.conversation_id, h.reason, h.status, h.claimed_by,
                           (now - h.created_at).total_seconds(), h.customer_id, h.told_wait_minutes,
                           h.email_offered_at is not None, summary(h.context), h.team, h.priority)
                 for h in self.claims.queue() if team is None or h.team == team]
        return sorted(items, key=lambda i: (i.rank, -i.waiting_seconds))

    @staticmethod
    def teams() -> Dict[str, routing.Team]:
        return routing.from_env().teams

    def team(self, key: object) -> routing.Team:
        teams = self.teams()
        if not isinstance(key, str) or key not in teams:
            raise InvalidRequest(f"Unknown team {str(key)[:64]!r}: one of {', '.join(teams)}.",
                                 code="unknown_team")
        return teams[key]

    def move(self, reference: str, agent: str, team: str, source: str = "desk") -> Handoff:
        """Put the handoff, and its ticket, in `team`'s queue: a routing correction, kept for the
        learning loop (`supportbot learn routing`). Moving it where it is changes nothing but
        moves the ticket again (a retry after the ticketing backend failed)."""
        agent, target = agent_name(agent), self.team(team)
        handoff, was = self.claims.move(reference, target.key)
        if was != target.key:
            self._record_move(handoff, was, agent, source)
        if handoff.ticket_id:
            try:
                self.ticketing().move_ticket(handoff.ticket_id, target.queue)
            except BackendError as error:
                raise BackendUnavailable(f"{handoff.reference} is in {target.name}'s queue now, but its ticket "
                                         f"{handoff.ticket_id} could not be moved ({error.message}). Move it "
                                         "again to retry.") from None
        return handoff

    def ticketing(self) -> TicketingAdapter:
        if self._adapter is None:
            self._adapter = self._ticketing()
        return self._adapter

    def _record_move(self, handoff: Handoff, was: Optional[str], agent: str, source: str) -> None:
        from supportbot.learning.corrections import NOT_A_TOPIC, RoutingCorrection, record_routing_correction
        from supportbot.learning.store import LearningStore

        # What the customer asked about ("a person, please" is not a topic): what the map routes by.
        topics = [i for i in routing.customer_intents(handoff.context) if not set(i.split("+")) <= NOT_A_TOPIC]
        correction = RoutingCorrection(handoff.id, handoff.conversation_id, handoff.reason,
                                       topics[-1] if topics else None, was, handoff.team or "", agent, source,
                                       datetime.now(timezone.utc))
        try:
            record_routing_correction((self._learning or LearningStore)(), correction)
        except SQLAlchemyError:  # the move stands; the learning loop misses one example, said in the log
            logger.exception("Handoff %s moved to %s, but the routing correction could not be stored",
                             handoff.reference, handoff.team)

    def claim(self, reference: str, agent: str) -> Handoff:
        """Claim a waiting handoff; the customer reads "<agent> from support joined". Conflict
        when another agent was first."""
        handoff = self.claims.claim(reference, agent)
        self._post(handoff, texts.JOINED, texts.JOINED_TEXT.format(agent=handoff.claimed_by), "joined",
                   handoff.claimed_by)
        return handoff

    def say(self, reference: str, agent: str, text: str, key: Optional[str] = None) -> Sent:
        """Send the customer `text` from `agent`, who must hold the claim. `key` makes a retried
        send one message (default: a new one each call)."""
        handoff = self.claims.holder(reference, agent)
        channel = self.relay.tracker(handoff.conversation_id).get("latest_input_channel")
        if channel not in LIVE_CHANNELS:
            raise InvalidRequest(f"{handoff.reference} is a conversation on {channel or 'no channel'!r}: a live "
                                 "reply reaches only the web chat. Answer on the ticket.", code="not_live")
        return self._post(handoff, texts.AGENT, text, f"agent:{key or uuid.uuid4().hex}", handoff.claimed_by)

    def hand_back(self, reference: str, agent: str) -> Handoff:
        """Give the conversation back to the bot (slots as they are); the customer is told and
        asked for a rating."""
        handoff = self.claims.finish(reference, agent, HANDED_BACK)
        self._post(handoff, texts.BACK, texts.BACK_TEXT.format(agent=handoff.claimed_by), "back",
                   handoff.claimed_by)
        return handoff

    def close(self, reference: str, agent: str) -> Handoff:
        """End the handoff (also one nobody claimed, answered elsewhere): the bot is back, the
        customer is told and asked for a rating; the ticket is left as it is."""
        handoff = self.claims.finish(reference, agent, CLOSED)
        self._post(handoff, texts.CLOSED, texts.CLOSED_TEXT.format(agent=handoff.claimed_by), "closed",
                   handoff.claimed_by)
        return handoff

    def conversation(self, reference: str, since: Optional[datetime] = None) -> List[Line]:
        """The conversation as stored in Rasa (what the customer wrote while waiting and since),
        after `since` if given."""
        handoff = self.claims.get(reference)
        lines = []
        for event in self.relay.tracker(handoff.conversation_id).get("events") or []:
            if event.get("event") not in ("user", "bot") or not event.get("text"):
                continue
            at = datetime.fromtimestamp(event.get("timestamp") or 0, timezone.utc)
            if since is not None and at <= since:
                continue
            metadata = event.get("metadata") or {}
            who = "customer" if event["event"] == "user" else metadata.get("from") or "bot"
            lines.append(Line(at, who, event["text"], metadata.get("agent")))
        return lines

    def _post(self, handoff: Handoff, kind: str, text: str, key: str, agent: Optional[str]) -> Sent:
        message, created = self.claims.add_message(handoff, kind, text, key, agent)
        result = self.relay.sync(handoff.conversation_id)
        delivered = message.id in (result.get("delivered") or []) or message.delivered_at is not None
        return Sent(self.claims.message(message.id), duplicate=not created, delivered=delivered)
