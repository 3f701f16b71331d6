"""Agent corrections: a person who handled a conversation says what the customer really wanted,
and that becomes the label of the customer turn the assistant got wrong. Labelled turns wait in
the review queue like imports (`learn accept --all` takes them).

Sources: `supportbot learn correct` (an agent at the terminal), the admin app's
`POST /api/corrections`, and `supportbot learn tickets`: handoff tickets resolved in the
ticketing backend under a category (intent) other than the one the assistant understood.

A correction is idempotent (the same label again writes nothing) and a later one with another
label replaces it, keeping who gave it and when; it reopens a turn already reviewed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from supportbot.learning.collector import HANDOFF_WINDOW
from supportbot.learning.labels import known_labels
from supportbot.learning.review import ACCEPTED, NEW
from supportbot.learning.store import (
    LearningStore,
    RoutingCorrectionRow,
    Turn,
    TurnRow,
    add_reasons,
    read_cursor,
    to_turn,
    write_cursor,
)
from supportbot.store import HandoffRow, HandoffStore
from supportbot.ticketing.base import ResolvedTicket, TicketingAdapter, utc

AGENT_CORRECTED, TICKET_RECATEGORISED = "agent_corrected", "ticket_recategorised"
# Intents that say how a conversation goes, not what it is about. A correction names what the
# customer wanted, so by default it labels the latest turn that said so, not "a person, please".
NOT_A_TOPIC = frozenset({"greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "inform",
                         "request_human"})
# actions/handoff.py files a handoff's ticket as "Chat handoff H-1A2B3C4D: <reason>".
HANDOFF_REFERENCE = re.compile(r"\bH-([0-9A-Fa-f]{8})\b")
MAX_SOURCE, MAX_AGENT = 64, 255  # the columns' sizes


class CorrectionError(ValueError):
    pass


class UnknownIntent(CorrectionError):
    pass


class UnknownTurn(CorrectionError):
    pass


def record_correction(store: LearningStore, *, conversation_id: str, intent: str, source: str,
                      agent: Optional[str] = None, turn_id: Optional[int] = None,
                      labels: Optional[FrozenSet[str]] = None) -> Turn:
    """An agent says the bot's intent for a turn was wrong: label that turn (default: the customer
    turn that led to the conversation's latest handoff, else its last customer turn; either way
    the latest that names a topic, see NOT_A_TOPIC) with `intent`, reason `agent_corrected`.

    Raises UnknownIntent (not an intent of domain/ nor faq/<topic>), UnknownTurn (no such turn in
    the conversation, or none to label) or CorrectionError (a bad source or agent name)."""
    _check(intent, source, agent, known_labels() if labels is None else labels)
    with store.session() as session, session.begin():
        row = _turn(session, conversation_id, turn_id)
        _label(row, intent, source, agent, AGENT_CORRECTED)
        session.flush()
        return to_turn(row)


def _check(intent: str, source: str, agent: Optional[str], labels: FrozenSet[str]) -> None:
    if intent not in labels:
        raise UnknownIntent(f"unknown intent {intent!r} (intents as in domain/, FAQ topics as faq/<topic>)")
    if not source.strip() or len(source) > MAX_SOURCE:
        raise CorrectionError(f"the source must be 1 to {MAX_SOURCE} characters")
    if agent is not None and (not agent.strip() or len(agent) > MAX_AGENT):
        raise CorrectionError(f"the agent's name must be 1 to {MAX_AGENT} characters")


def _turn(session: Session, conversation_id: str, turn_id: Optional[int]) -> TurnRow:
    if turn_id is not None:
        row = session.get(TurnRow, turn_id, with_for_update=True)
        if row is None or row.conversation_id != conversation_id:
            raise UnknownTurn(f"no turn {turn_id} in conversation {conversation_id!r}")
        return row
    rows = _conversation(session, conversation_id)
    if not rows:
        raise UnknownTurn(f"no turns of conversation {conversation_id!r} in the learning store "
                          "(has `supportbot learn collect` read it yet?)")
    row = default_turn(rows)
    if row is None:
        raise UnknownTurn(f"conversation {conversation_id!r} has no customer turn that names a topic "
                          "(only greetings, yes/no, asking for a person): give the turn's id")
    return row


def _conversation(session: Session, conversation_id: str) -> List[TurnRow]:
    query = select(TurnRow).where(TurnRow.conversation_id == conversation_id).order_by(TurnRow.id)
    return list(session.scalars(query.with_for_update()))


def default_turn(rows: Sequence[TurnRow], before: Optional[dt.datetime] = None) -> Optional[TurnRow]:
    """The turn a correction is about, among a conversation's turns in order: of the turns that led
    to its handoff (the one at `before`, else the latest the collector saw), or else of all of
    them, the latest whose intent names a topic."""
    rows = [r for r in rows if before is None or utc(r.at) <= before]
    handoffs = [i for i, r in enumerate(rows) if "handoff_followed" in json.loads(r.reasons_json or "[]")]
    if before is None and handoffs:
        rows = rows[: handoffs[-1] + 1]
    if before is not None or handoffs:
        rows = rows[-HANDOFF_WINDOW:]
    return next((r for r in reversed(rows) if r.intent not in NOT_A_TOPIC), None)


def _label(row: TurnRow, intent: str, source: str, agent: Optional[str], reason: str) -> bool:
    """Give the turn its label, who gave it and when; back to the queue if it was reviewed.
    False when it already has that label from a correction or a reviewer (nothing written)."""
    if row.label == intent and (row.labelled_at is not None or row.status == ACCEPTED):
        return False
    row.label, row.label_source, row.labelled_by = intent, source, agent
    row.labelled_at = dt.datetime.now(dt.timezone.utc)
    add_reasons(row, [reason])
    if row.status != NEW:
        row.status, row.reviewed_at = NEW, None
    return True


# -- routing: an agent moved a handoff to another team's queue


@dataclass(frozen=True)
class RoutingCorrection:
    handoff_id: str
    conversation_id: str
    reason: str
    intent: Optional[str]
    from_team: Optional[str]
    to_team: str
    agent: str
    source: str
    at: dt.datetime


def record_routing_correction(store: LearningStore, correction: RoutingCorrection) -> None:
    """Keep that routing.yml sent this handoff to the wrong team: what support leads read to
    change the map (`supportbot learn routing`)."""
    with store.session() as session, session.begin():
        session.add(RoutingCorrectionRow(**{name: getattr(correction, name)
                                            for name in RoutingCorrection.__dataclass_fields__}))


def routing_corrections(store: LearningStore, since: Optional[dt.datetime] = None) -> List[RoutingCorrection]:
    query = select(RoutingCorrectionRow).order_by(RoutingCorrectionRow.at, RoutingCorrectionRow.id)
    if since is not None:
        query = query.where(RoutingCorrectionRow.at >= utc(since))
    with store.session() as session:
        return [RoutingCorrection(**{name: getattr(row, name) for name in RoutingCorrection.__dataclass_fields__})
                for row in session.scalars(query)]


def run_routing(args: argparse.Namespace) -> int:
    """`supportbot learn routing`: the moves agents made, and how often each (reason or intent,
    from, to) happened: where routing.yml is wrong."""
    try:
        since = _when(args.since) if args.since else None
    except argparse.ArgumentTypeError as error:
        print(error, file=sys.stderr)
        return 2
    found = routing_corrections(LearningStore(args.db), since)
    counts: Dict[Tuple[str, Optional[str], str], int] = {}
    for c in found:
        what = c.intent or c.reason
        counts[(what, c.from_team, c.to_team)] = counts.get((what, c.from_team, c.to_team), 0) + 1
    print(f"{len(found)} handoff(s) moved by agents" + (":" if found else "."))
    for (what, before, after), n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {n:>4} × {what}: {before or 'no team'} -> {after}")
    return 0


# -- tickets


@dataclass
class TicketsResult:
    read: int = 0
    corrected: int = 0
    agreed: int = 0  # filed under the intent the assistant had understood
    unchanged: int = 0  # already labelled so
    uncategorised: int = 0
    not_handoffs: int = 0  # tickets the handoff flow did not file
    skipped: List[str] = field(default_factory=list)  # why a categorised handoff ticket taught nothing


def read_tickets(store: LearningStore, adapter: TicketingAdapter, handoffs: HandoffStore, *,
                 since: Optional[dt.datetime] = None, labels: Optional[FrozenSet[str]] = None) -> TicketsResult:
    """Handoff tickets resolved since the last run (or `since`) under a category other than the
    intent the assistant acted on (none, when it fell back) become corrections (reason
    `ticket_recategorised`, source `ticket:<backend>`). All of them and the cursor are written in
    one transaction."""
    labels = known_labels() if labels is None else labels
    cursor = "tickets:" + hashlib.sha256(f"{adapter.name}|{adapter.location}".encode()).hexdigest()[:32]
    with store.session() as session:
        after = None if since is not None else _position(read_cursor(session, cursor))
    tickets = adapter.resolved_since(utc(since) if since else after[0] if after else None)
    tickets = [t for t in tickets if after is None or (t.resolved_at, int(t.id)) > after]
    result = TicketsResult(read=len(tickets))
    with store.session() as session, session.begin():
        for ticket in tickets:
            _apply_ticket(session, ticket, adapter.name, handoffs, labels, result)
        if tickets:
            last = tickets[-1]
            write_cursor(session, cursor, f"{last.resolved_at.isoformat()}|{last.id}")
    return result


def _position(value: Optional[str]) -> Optional[Tuple[dt.datetime, int]]:
    if not value:
        return None
    at, ticket_id = value.rsplit("|", 1)
    return dt.datetime.fromisoformat(at), int(ticket_id)


def _apply_ticket(session: Session, ticket: ResolvedTicket, backend: str, handoffs: HandoffStore,
                  labels: FrozenSet[str], result: TicketsResult) -> None:
    reference = HANDOFF_REFERENCE.search(ticket.subject)
    if reference is None:
        result.not_handoffs += 1
        return
    category = (ticket.category or "").strip().lower()
    if not category:
        result.uncategorised += 1
        return
    if category not in labels:
        result.skipped.append(f"ticket {ticket.id}: its category {category!r} is not an intent")
        return
    handoff = _handoff(handoffs, reference.group(1))
    if handoff is None:
        result.skipped.append(f"ticket {ticket.id}: no handoff H-{reference.group(1).upper()} in the store")
        return
    conversation_id, handed_off = handoff
    row = default_turn(_conversation(session, conversation_id), before=utc(handed_off))
    if row is None:
        result.skipped.append(f"ticket {ticket.id}: no turn of conversation {conversation_id!r} to label "
                              "(not collected yet, or none names a topic)")
    elif row.intent == category and "fallback" not in json.loads(row.reasons_json or "[]"):
        # The assistant acted on that intent. A turn that fell back was answered as unclear:
        # its stored intent is only the classifier's guess, and the ticket's category its label.
        result.agreed += 1
    else:
        agent = f"ticket {ticket.id}" + (f" ({ticket.resolved_by})" if ticket.resolved_by else "")
        written = _label(row, category, f"ticket:{backend}", agent[:MAX_AGENT], TICKET_RECATEGORISED)
        result.corrected += written
        result.unchanged += not written


def _handoff(handoffs: HandoffStore, prefix: str) -> Optional[Tuple[str, dt.datetime]]:
    """The conversation and time of the handoff a reference names (None if unknown or ambiguous)."""
    query = select(HandoffRow.conversation_id, HandoffRow.created_at).where(
        HandoffRow.id.like(prefix.lower() + "%")).limit(2)
    with Session(handoffs.engine) as session:
        found = session.execute(query).all()
    return (found[0][0], found[0][1]) if len(found) == 1 else None


# -- the command line: `supportbot learn correct` and `supportbot learn tickets`


def add_correct_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("conversation_id")
    parser.add_argument("intent", help="the right intent, or faq/<topic>")
    parser.add_argument("--turn", type=int, help="the turn's id (default: the one that led to the handoff)")
    parser.add_argument("--agent", help="who corrects (default: your login name)")
    parser.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")


def run_correct(args: argparse.Namespace) -> int:
    agent = args.agent if args.agent is not None else _login()
    try:
        turn = record_correction(LearningStore(args.db), conversation_id=args.conversation_id, intent=args.intent,
                                 source="cli", agent=agent, turn_id=args.turn)
    except CorrectionError as error:
        print(error, file=sys.stderr)
        return 2
    understood = f"{turn.intent} ({turn.confidence:.2f})" if turn.confidence is not None else turn.intent
    print(f"Turn {turn.id} labelled {turn.label} (the assistant understood {understood}) "
          f"by {turn.labelled_by or 'an agent'}: {turn.text[:100]}")
    return 0


def add_tickets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=_when, help="read tickets resolved since this date or time (ISO "
                        "8601, UTC unless it says otherwise; default: where the last run stopped)")
    parser.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")


def run_tickets(args: argparse.Namespace) -> int:
    from supportbot.errors import BackendError
    from supportbot.ticketing import ticketing_from_env

    try:
        result = read_tickets(LearningStore(args.db), ticketing_from_env(), HandoffStore(), since=args.since)
    except (BackendError, ValueError) as error:
        print(f"Nothing read: {error}", file=sys.stderr)
        return 2
    print(f"{result.read} resolved tickets read: {result.corrected} corrections, {result.agreed} agreed with "
          f"the assistant, {result.unchanged} already labelled so, {result.uncategorised} without a category, "
          f"{result.not_handoffs} not from a handoff, {len(result.skipped)} skipped")
    for reason in result.skipped:
        print(f"  - {reason}")
    return 0


def _when(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date or time like 2026-12-01 or "
                                         "2026-12-01T09:30") from None
    return utc(when)


def _login() -> Optional[str]:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. in a container)
        return None
