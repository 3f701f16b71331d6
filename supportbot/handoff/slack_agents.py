"""Slack for support teams that live there (docs/slack.md#the-agents-channel): every handoff is
posted once to the agents' channel (SUPPORTBOT_AGENTS_SLACK_CHANNEL) with its summary, and that
message's thread is the agents' desk for the conversation:

- an agent's reply in the thread reaches the customer's chat through the Desk (desk.py), so the
  transcript stays whole, under the agent's Slack display name;
- who claimed, handed back or closed is posted into the thread, and, once someone has claimed,
  what the customer wrote since the handoff and each new message;
- thread commands: `claim`, `hand back`, `close`, `intent <name>` (a correction for the learning
  loop), `move <team>` (to another team's queue, a routing correction) and `help`; a message that
  @mentions the bot is always read as a command.

The posts are made by a watcher inside the Rasa server (`SlackAgents.watch`), not by a hook in
the handoff action: the customer's messages must be followed from the Rasa side anyway, and a
watcher that compares the store with what each thread was told also posts a handoff made while
Slack was down or the server restarting, one claimed from the agent page, and nothing twice.
Every step is a conditional write to `slack_handoff_threads` before the post, so several Rasa
servers sharing the database post each thing once. The one gap: a server that dies between
Slack's answer and recording it posts that summary again after LEASE.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from sqlalchemy import Column, DateTime, Integer, String, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, declarative_base

from supportbot.errors import BackendError, BackendUnavailable, NotFound
from supportbot.handoff import routing
from supportbot.handoff.claims import ACTIVE, CLAIMED, CLOSED, HANDED_BACK, RESOLVED, Claims
from supportbot.handoff.desk import Desk, summary
from supportbot.learning.collector import Collector
from supportbot.learning.corrections import CorrectionError, UnknownTurn, record_correction
from supportbot.learning.labels import known_labels
from supportbot.learning.store import LearningStore
from supportbot.redact import mask_card_numbers
from supportbot.store import Handoff, aware

if TYPE_CHECKING:  # supportbot.slack imports this module
    from supportbot.slack import Incoming

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)  # a summary post not confirmed by then is made again
INTERVAL = 1.0  # seconds between two looks at the store
CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{4,}")  # events name channels by id, never by #name
HELP = ("Reply in this thread to answer the customer. Commands: `claim`, `hand back`, `close`, "
        "`intent <name>` (what the customer really wanted, for the assistant to learn), "
        "`move <team>` (to another team's queue), `help`.")
VERBS = {"claim": "claim", "hand back": "hand_back", "handback": "hand_back", "release": "hand_back",
         "close": "close", "help": "help"}
SAID = {CLAIMED: "{agent} claimed this: replies in this thread go to the customer.",
        HANDED_BACK: "{agent} handed the conversation back to the assistant.",
        CLOSED: "{agent} closed this conversation.",
        RESOLVED: "Resolved on the server (`supportbot resume`)."}
LAST_TURNS = 6
SLACK_ERRORS = (SlackClientError, OSError)  # Slack's refusals; unreachable (urllib's URLError)
MAX_QUOTE = 300  # characters of one bot answer in the summary


def agents_channel(value: Optional[str]) -> Optional[str]:
    """SUPPORTBOT_AGENTS_SLACK_CHANNEL checked: a channel id, or ValueError saying why."""
    if value is not None and not CHANNEL_ID.fullmatch(value):
        raise ValueError(f"SUPPORTBOT_AGENTS_SLACK_CHANNEL must be a channel id such as C0123ABCD (Slack: "
                         f"channel details → About), not {value!r}: Slack's events name channels by id.")
    return value


# --- What the threads have been told ---

Base = declarative_base()


class SlackThreadRow(Base):
    """A handoff's message in the agents' channel and what its thread has been told."""

    __tablename__ = "slack_handoff_threads"

    handoff_id = Column(String(36), primary_key=True)
    channel = Column(String(32), nullable=False)
    thread_ts = Column(String(32), index=True)  # None until Slack took the post
    leased_at = Column(DateTime(timezone=True), nullable=False)  # when a server set out to post it
    status = Column(String(16), nullable=False)  # the handoff's state as last told in the thread
    agent = Column(String(255))
    told_until = Column(DateTime(timezone=True), nullable=False)  # customer messages to here are in it
    version = Column(Integer, nullable=False, default=0)  # each change is conditional on it


@dataclass(frozen=True)
class Thread:
    handoff_id: str
    channel: str
    thread_ts: Optional[str]
    leased_at: datetime
    status: str
    agent: Optional[str]
    told_until: datetime
    version: int


class Threads:
    """The `slack_handoff_threads` table, next to the handoffs in the assistant's store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine)

    def _session(self) -> Session:
        return Session(self.engine, future=True)

    def of(self, handoff_ids: Iterable[str]) -> Dict[str, Thread]:
        with self._session() as session:
            rows = session.scalars(select(SlackThreadRow).where(SlackThreadRow.handoff_id.in_(list(handoff_ids))))
            return {row.handoff_id: _thread(row) for row in rows}

    def find(self, channel: str, thread_ts: str) -> Optional[Thread]:
        with self._session() as session:
            row = session.scalars(select(SlackThreadRow).where(
                SlackThreadRow.channel == channel, SlackThreadRow.thread_ts == thread_ts)).first()
            return _thread(row) if row is not None else None

    def following(self) -> List[Thread]:
        """Posted threads whose handoff was last told as waiting or claimed."""
        with self._session() as session:
            rows = session.scalars(select(SlackThreadRow).where(
                SlackThreadRow.thread_ts.is_not(None), SlackThreadRow.status.in_(ACTIVE)))
            return [_thread(row) for row in rows]

    def lease(self, handoff: Handoff, channel: str, now: datetime, lease: timedelta) -> bool:
        """Set out to post `handoff`'s summary: True for one caller, and again once a lease went
        by without the post being recorded (the poster failed or died)."""
        with self._session() as session:
            session.add(SlackThreadRow(handoff_id=handoff.id, channel=channel, leased_at=now,
                                       status=handoff.status, agent=handoff.claimed_by,
                                       told_until=handoff.created_at, version=0))
            try:
                session.commit()
                return True
            except IntegrityError:
                session.rollback()
        return self._change([SlackThreadRow.handoff_id == handoff.id, SlackThreadRow.thread_ts.is_(None),
                             SlackThreadRow.leased_at < now - lease], leased_at=now)

    def posted(self, handoff_id: str, thread_ts: str) -> None:
        self._change([SlackThreadRow.handoff_id == handoff_id], thread_ts=thread_ts)

    def advance(self, thread: Thread, told_until: datetime, status: str, agent: Optional[str]) -> bool:
        """Record what the thread is about to be told; False when another server did first."""
        return self._change([SlackThreadRow.handoff_id == thread.handoff_id,
                             SlackThreadRow.version == thread.version],
                            told_until=told_until, status=status, agent=agent, version=thread.version + 1)

    def _change(self, where: List[Any], **values: Any) -> bool:
        with self._session() as session, session.begin():
            result = session.execute(update(SlackThreadRow).where(*where).values(**values)
                                     .execution_options(synchronize_session=False))
            return result.rowcount == 1


def _thread(row: SlackThreadRow) -> Thread:
    return Thread(row.handoff_id, row.channel, row.thread_ts, aware(row.leased_at), row.status, row.agent,
                  aware(row.told_until), row.version)


# --- Slack's Web API ---


class SlackApi:
    """The few Web API methods the agents' channel uses, with the Slack channel's bot token."""

    def __init__(self, token: str, base_url: str, timeout: int = 10) -> None:
        self.client = WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[
            ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=2)])
        self._names: Dict[str, str] = {}

    def post(self, channel: str, text: str, thread_ts: Optional[str] = None) -> str:
        """Post `text` (Slack mrkdwn); its ts."""
        answer = self.client.chat_postMessage(channel=channel, text=text, thread_ts=thread_ts,
                                              unfurl_links=False, unfurl_media=False)
        return str(answer["ts"])

    def tell(self, channel: str, user: str, thread_ts: str, text: str) -> None:
        """A reply only `user` sees, in the thread."""
        self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=text)

    def display_name(self, user: str) -> str:
        """The name the customer will read ("Dana"); users.info needs the users:read scope."""
        if user not in self._names:
            try:
                found = self.client.users_info(user=user)["user"]
            except SlackApiError as error:
                raise BackendUnavailable(f"Slack did not give your name ({error.response.get('error')}): the "
                                         "app needs the users:read scope (docs/slack.md).") from None
            profile = found.get("profile") or {}
            self._names[user] = (profile.get("display_name") or profile.get("real_name") or found.get("real_name")
                                 or found.get("name") or user)
        return self._names[user]


# --- Inside the Rasa server ---


class LocalRelay:
    """RasaRelay's two calls (client.py) made inside the Rasa server, from a worker thread: the
    socket.io channel's relay and the tracker store, with no HTTP round trip to itself and no
    RASA_URL to configure."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop, timeout: float = 10) -> None:
        self.app, self.loop, self.timeout = app, loop, timeout

    def sync(self, conversation_id: str) -> Dict[str, Any]:
        from supportbot.handoff.relay import UnknownConversation

        try:
            return self._run(self._relay().sync(conversation_id)).as_json()
        except UnknownConversation:
            raise NotFound(f"No conversation {conversation_id!r} on this server.", status=404) from None

    def tracker(self, conversation_id: str) -> Dict[str, Any]:
        from rasa.shared.core.trackers import EventVerbosity

        async def state() -> Dict[str, Any]:
            tracker = await self.app.ctx.agent.tracker_store.retrieve(conversation_id)
            return tracker.current_state(EventVerbosity.ALL) if tracker is not None else {}

        return self._run(state())

    def _relay(self) -> Any:
        for channel in getattr(self.app.ctx, "input_channels", None) or []:
            if getattr(channel, "relay", None) is not None:
                return channel.relay
        raise BackendUnavailable("This Rasa server has no handoff relay: its credentials.yml must list "
                                 "supportbot.channels.RedactingSocketIOInput.", code="no_relay")

    def _run(self, coroutine: Any) -> Any:
        try:
            return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(self.timeout)
        except concurrent.futures.TimeoutError:
            raise BackendUnavailable("The Rasa server did not answer in time.") from None


# --- The agents' channel ---


@dataclass(frozen=True)
class AgentMessage:
    """A person's message in a thread of the agents' channel."""

    channel: str
    thread_ts: str
    ts: str
    user: str
    text: str  # Slack markup turned back into text, the bot's @mention removed
    mentioned: bool  # the bot was @mentioned: a command

    @classmethod
    def from_incoming(cls, incoming: Incoming) -> Optional[AgentMessage]:
        slack = incoming.metadata.get("slack") or {}
        ts, user = slack.get("ts"), slack.get("user")
        if not (ts and user) or ts == incoming.thread_ts:
            return None  # a top-level message (or a button): not in a handoff's thread
        return cls(incoming.channel, incoming.thread_ts, ts, user, incoming.text, bool(slack.get("mentioned")))


class Refused(Exception):
    """What an agent is told, only them, when a command can't be done."""


def parse(text: str, mentioned: bool) -> Tuple[Optional[str], str]:
    """(verb, argument) of a thread command; (None, text) for a reply to the customer. Refused
    for something meant as a command that isn't one."""
    words = text.split()
    said = " ".join(words).lower()
    if said in VERBS:
        return VERBS[said], ""
    if words and words[0].lower() == "intent":
        if len(words) != 2:
            raise Refused("Say `intent <name>`, e.g. `intent refund_status`.")
        return "intent", words[1]
    if len(words) == 2 and words[0].lower() == "move":  # "move the date?" stays a reply
        return "move", words[1].lower()
    if mentioned:
        raise Refused(f"Unknown command {' '.join(words)!r}. {HELP}")
    return None, text


def mrkdwn(text: str) -> str:
    """Someone's text inside our Slack message: escaped (no <!channel> pings, no fake links),
    card numbers masked."""
    text = mask_card_numbers(text or "")[0]
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def summary_text(handoff: Handoff) -> str:
    """The summary an agent reads first: reference, reason, who, what was understood, the last turns."""
    brief = summary(handoff.context, last=LAST_TURNS)
    state = f"claimed by {handoff.claimed_by}" if handoff.status == CLAIMED else handoff.status.replace("_", " ")
    told = "" if handoff.told_wait_minutes is None else f" (told about {handoff.told_wait_minutes} min)"
    customer = f"verified, {handoff.customer_id}" if handoff.customer_id else "not verified"
    routed = f" · {handoff.team}, {handoff.priority} priority" if handoff.team else ""
    lines = [f"*Handoff {handoff.reference}*: {handoff.reason.replace('_', ' ')}{routed} · {state}{told}",
             f"Customer: {customer}"]
    understood = [f"{i['intent']} {i['confidence']:.2f}" for i in brief["intents"][-3:]
                  if i.get("intent") and isinstance(i.get("confidence"), (int, float))]
    if understood:
        lines.append("Understood: " + ", ".join(understood))
    lines.append("Last messages:")
    lines += [f">*{m.get('from')}:* {mrkdwn(str(m.get('text') or ''))[:MAX_QUOTE]}"
              for m in brief["last_messages"]]
    lines += [f"Ticket: “Chat handoff {handoff.reference}: {handoff.reason}” · "
              f"conversation `{handoff.conversation_id}`", HELP]
    return "\n".join(lines)


class SlackAgents:
    """The agents' channel: `tick` posts what the threads lack, `handle` takes a thread message.
    Both are blocking (the store, Slack, the relay): the Rasa server runs them in worker threads
    (`watch`, `take`)."""

    def __init__(self, channel: str, slack: SlackApi, desk: Optional[Desk] = None,
                 learning: Callable[[], LearningStore] = LearningStore, lease: timedelta = LEASE,
                 interval: float = INTERVAL) -> None:
        self.channel = agents_channel(channel) or ""
        routing.from_env()  # `move <team>`: a wrong routing.yml stops the Rasa server at start, with the reason
        self.slack, self._desk, self.learning = slack, desk, learning
        self.lease, self.interval = lease, interval
        self.relay: Any = None  # set by start(); used when no desk was given
        self._threads: Optional[Threads] = None

    @property
    def desk(self) -> Desk:
        # Built on first use, not at Rasa's start: a database that is down must not stop it.
        if self._desk is None:
            self._desk = Desk(Claims(), self.relay)
        return self._desk

    @property
    def threads(self) -> Threads:
        if self._threads is None:
            self._threads = Threads(self.desk.claims.store.engine)
        return self._threads

    # --- The watcher ---

    def tick(self, now: Optional[datetime] = None) -> None:
        """Post each waiting or claimed handoff the channel lacks; bring every thread up to date."""
        now = now or datetime.now(timezone.utc)
        queue = self.desk.claims.queue()
        known = self.threads.of(h.id for h in queue)
        for handoff in queue:
            thread = known.get(handoff.id)
            if thread is not None and (thread.thread_ts or thread.leased_at > now - self.lease):
                continue
            if self.threads.lease(handoff, self.channel, now, self.lease):
                self._post_summary(handoff)
        for thread in self.threads.following():
            try:
                self.follow(thread)
            except BackendError as error:  # one conversation Rasa can't read must not stop the others
                logger.warning("Slack thread of handoff %s not brought up to date: %s", thread.handoff_id,
                               error.message)

    def _post_summary(self, handoff: Handoff) -> None:
        try:
            ts = self.slack.post(self.channel, summary_text(handoff))
        except SLACK_ERRORS as error:
            logger.warning("Handoff %s not posted to Slack (tried again in %s): %s", handoff.reference,
                           self.lease, error)
            return
        self.threads.posted(handoff.id, ts)
        logger.info("Handoff %s posted to Slack %s (%s)", handoff.reference, self.channel, ts)

    def follow(self, thread: Thread) -> None:
        """Post what the thread hasn't been told: a change of state, and, while someone holds the
        claim, what the customer wrote (to the end of the handoff)."""
        handoff = self.desk.claims.get(thread.handoff_id)
        changed = (handoff.status, handoff.claimed_by) != (thread.status, thread.agent)
        lines = []
        if handoff.claimed_by is not None and handoff.status in (CLAIMED, HANDED_BACK, CLOSED):
            lines = [line for line in self.desk.conversation(handoff.id, since=thread.told_until)
                     if line.who == "customer" and (handoff.resolved_at is None or line.at <= handoff.resolved_at)]
        if not (changed or lines):
            return
        told_until = lines[-1].at if lines else thread.told_until
        if not self.threads.advance(thread, told_until, handoff.status, handoff.claimed_by):
            return  # another server is telling it
        posts = [f"*Customer:* {mrkdwn(line.text)}" for line in lines]
        if changed and handoff.status in SAID:
            posts.append(SAID[handoff.status].format(agent=handoff.claimed_by))
        for text in posts:
            try:
                self.slack.post(thread.channel, text, thread.thread_ts)
            except SLACK_ERRORS as error:
                logger.error("Slack thread of handoff %s: a post failed: %s", handoff.reference, error)

    # --- A message in a thread ---

    def handle(self, message: AgentMessage) -> None:
        thread = self.threads.find(message.channel, message.thread_ts)
        if thread is None:
            return  # a thread that is not a handoff's: people talking
        try:
            self._do(thread, message)
        except Refused as refused:
            self._tell(message, str(refused))
        except CorrectionError as error:
            self._tell(message, f"No correction recorded: {error}.")
        except BackendError as error:  # Conflict (another agent has it), InvalidRequest, Unavailable
            self._tell(message, error.message)
        try:  # say who claimed now rather than at the next tick (which does it otherwise)
            self.follow(self.threads.find(message.channel, message.thread_ts) or thread)
        except BackendError as error:
            logger.warning("Slack thread of handoff %s: %s", thread.handoff_id, error.message)

    def _do(self, thread: Thread, message: AgentMessage) -> None:
        verb, argument = parse(message.text, message.mentioned)
        if verb == "help":
            self._tell(message, HELP)
            return
        agent = self.slack.display_name(message.user)
        if verb is None:
            sent = self.desk.say(thread.handoff_id, agent, message.text,
                                 key=f"slack:{message.channel}:{message.ts}")
            if not sent.delivered and not sent.duplicate:
                self._tell(message, "Stored: the customer's chat is closed right now. They see your message "
                                    "when they come back.")
        elif verb == "claim":
            self.desk.claim(thread.handoff_id, agent)
        elif verb == "hand_back":
            self.desk.hand_back(thread.handoff_id, agent)
        elif verb == "close":
            self.desk.close(thread.handoff_id, agent)
        elif verb == "move":
            handoff = self.desk.move(thread.handoff_id, agent, argument, source="slack")
            self._post(message, f"{agent} moved this to {self.desk.team(handoff.team).name}'s queue "
                                f"(`{handoff.team}`): a routing correction for the learning loop.")
        else:
            self._correct(thread, message, agent, argument)

    def _correct(self, thread: Thread, message: AgentMessage, agent: str, intent: str) -> None:
        """`intent <name>`: the customer's turn the assistant got wrong gets the right label,
        for the learning loop's review (supportbot.learning.corrections)."""
        labels = known_labels()
        if intent not in labels:
            raise Refused(unknown_intent(intent, labels))
        conversation_id = self.desk.claims.get(thread.handoff_id).conversation_id
        store = self.learning()
        correct = lambda: record_correction(store, conversation_id=conversation_id, intent=intent,  # noqa: E731
                                            source="slack", agent=f"{agent} ({message.user})", labels=labels)
        try:
            turn = correct()
        except UnknownTurn:  # not collected yet: collect now rather than ask the agent to wait for the cron
            try:
                Collector(store).run_once()
            except SQLAlchemyError as error:
                raise Refused(f"No correction recorded: the conversation's turns could not be collected "
                              f"({type(error).__name__}); try again later.") from None
            turn = correct()
        self._post(message, f"{agent} marked “{mrkdwn(turn.text)}” as `{intent}` (the assistant understood "
                            f"`{turn.intent}`): a correction for the learning loop's review.")

    def _tell(self, message: AgentMessage, text: str) -> None:
        try:
            self.slack.tell(message.channel, message.user, message.thread_ts, text)
        except SLACK_ERRORS as error:
            logger.error("Could not tell %s in Slack %r: %s", message.user, text, error)

    def _post(self, message: AgentMessage, text: str) -> None:
        try:
            self.slack.post(message.channel, text, message.thread_ts)
        except SLACK_ERRORS as error:
            logger.error("Could not post in the Slack thread %s: %s", message.thread_ts, error)

    # --- The Rasa server's side (supportbot.slack) ---

    def start(self, app: Any) -> None:
        """At the Rasa server's start: the relay inside it, and the watcher."""
        self.relay = LocalRelay(app, asyncio.get_running_loop())
        app.add_task(self.watch())

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            delay = self.interval
            try:
                await loop.run_in_executor(None, self.tick)
            except Exception:  # noqa: BLE001 -- a database or Slack hiccup must not end the watcher
                logger.exception("Slack agents' channel: could not bring the threads up to date")
                delay = max(self.interval, 30.0)
            await asyncio.sleep(delay)

    async def take(self, incoming: Incoming) -> None:
        """A message in the agents' channel, already recorded in the event log (so taken once)."""
        message = AgentMessage.from_incoming(incoming)
        if message is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.handle, message)
        except Exception:  # noqa: BLE001 -- a background task has nobody to raise to
            logger.exception("Handling the agents' Slack message %s failed", message.ts)


def unknown_intent(intent: str, labels: FrozenSet[str]) -> str:
    close = difflib.get_close_matches(intent, sorted(labels), n=3)
    maybe = f" Did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
    return (f"Unknown intent `{mrkdwn(intent)}`.{maybe} Valid: "
            + ", ".join(f"`{label}`" for label in sorted(labels)) + ".")
