"""The relay, inside the Rasa server: puts the support side's messages into the customer's
conversation (tracker) and their open socket.io chat, and gives a handed-back conversation to
the bot again.

Why not Rasa's own `POST /conversations/<id>/tracker/events?output_channel=socketio`: when the
named channel is not registered on that server (a typo, a Rasa without the socket.io channel,
or an instance whose `sio` is None) Rasa silently uses a CollectingOutputChannel, answers 200
and delivers nothing; its socket.io output also drops a message's metadata (who wrote it), it
has no idempotency key and cannot say whether the customer is connected. So the socket.io
channel (supportbot/channels.py) carries one more route, `POST /webhooks/socketio/handoff/sync`
(Rasa's API token as a Bearer token), that makes a conversation agree with the store:

- every support message stored for it (supportbot.handoff.claims) is in the tracker once,
  as a BotUttered with metadata `{"from": "agent"|"support", "kind", "agent",
  "handoff_message_id"}`: the transcript stays whole, the event broker sees it;
- when its latest handoff is handed back or closed, the conversation is resumed (with an
  `action_listen`, as if the bot had just answered), slots untouched;
- every message not yet delivered is emitted to the room named by the conversation id (the
  channel puts each socket of a session there: `session_persistence: true`) when a socket is
  in it, then marked delivered; a "back"/"closed" message is followed by `bot_turn_done` with
  `ended: true`, the widget's cue to ask for a rating. Otherwise the messages wait, and go out
  when the customer's widget rejoins the session (`session_request` with its key).

A call that finds nothing to do does nothing, so a retried call is harmless. A watcher task
offers a reply by email to customers left waiting too long (docs/handoff.md); another brings
agents' replies on the handoffs' tickets into the chat (ticket_replies.py).
"""
from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Dict, List, Optional

from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, ConversationResumed
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot import settings
from supportbot.handoff import messages as texts
from supportbot.handoff.claims import CLOSED, HANDED_BACK, Claims, HandoffMessage
from supportbot.handoff.client import SYNC_PATH
from supportbot.handoff.estimate import BusinessHours
from supportbot.handoff.ticket_replies import TicketReplies

logger = logging.getLogger(__name__)

MESSAGE_ID = "handoff_message_id"


class UnknownConversation(LookupError):
    pass


@dataclass
class SyncResult:
    channel: Optional[str]  # the conversation's latest input channel ("socketio" for the web chat)
    sockets: int  # sockets of the customer's chat connected (to any instance with a shared manager)
    paused: bool
    appended: List[str] = field(default_factory=list)  # message ids put in the tracker by this call
    delivered: List[str] = field(default_factory=list)  # message ids emitted by this call
    waiting: List[str] = field(default_factory=list)  # message ids still to be delivered

    def as_json(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def outgoing(message: HandoffMessage) -> Dict[str, Any]:
    """The bot_uttered payload (and the BotUttered metadata) of a support-side message."""
    return {"text": message.text,
            "metadata": {"from": "agent" if message.kind == texts.AGENT else "support", "kind": message.kind,
                         "agent": message.agent, MESSAGE_ID: message.id}}


class Relay:
    """Built by the socket.io channel with its `sio`; `app` is set when the server starts."""

    def __init__(self, sio: Any, namespace: Optional[str], bot_message_evt: str, presence: Any = None) -> None:
        self.sio, self.namespace, self.bot_message_evt = sio, namespace, bot_message_evt
        # With a shared client manager: who is connected on any instance (socket_presence.py).
        self.presence = presence
        self.app: Any = None
        self._claims: Optional[Claims] = None
        self._watcher: Optional[asyncio.Task] = None
        self.hours = BusinessHours.from_env()  # a bad setting stops the server at start, not later
        self.timeout = timedelta(minutes=settings.number("SUPPORTBOT_HANDOFF_TIMEOUT_MINUTES"))
        self.ticket_replies = TicketReplies()  # agents' replies on the tickets (ticket_replies.py)
        self._bridge: Optional[asyncio.Task] = None

    @property
    def claims(self) -> Claims:
        if self._claims is None:
            self._claims = Claims()
        return self._claims

    def register(self, blueprint: Blueprint) -> None:
        @blueprint.route(SYNC_PATH, methods=["POST"])
        async def sync(request: Request) -> HTTPResponse:
            return await self._sync_request(request)

        @blueprint.listener("after_server_start")
        async def start_watcher(app: Any, _: Any) -> None:
            self.app = app
            self._watcher = asyncio.get_running_loop().create_task(self.watch())
            self._bridge = asyncio.get_running_loop().create_task(self.ticket_replies.watch(self.sync))

        @blueprint.listener("before_server_stop")
        async def stop_watcher(app: Any, _: Any) -> None:
            for task in (self._watcher, self._bridge):
                if task is not None:
                    task.cancel()

    async def _sync_request(self, request: Request) -> HTTPResponse:
        token = settings.get("RASA_AUTH_TOKEN")
        if not token:
            return response.json({"error": "The handoff relay needs RASA_AUTH_TOKEN on the Rasa server."},
                                 status=503)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return response.json({"error": "Send Rasa's API token: Authorization: Bearer <token>."}, status=401)
        body = request.json if isinstance(request.json, dict) else {}
        conversation_id = body.get("conversation_id")
        if not isinstance(conversation_id, str) or not conversation_id:
            return response.json({"error": "\"conversation_id\" is required."}, status=400)
        self.app = request.app
        try:
            result = await self.sync(conversation_id)
        except UnknownConversation:
            return response.json({"error": f"No conversation {conversation_id!r} on this server.",
                                  "code": "unknown_conversation"}, status=404)
        return response.json(result.as_json())

    async def sync(self, conversation_id: str) -> SyncResult:
        """Make the conversation's tracker and chat agree with the store (see the module doc).
        All under Rasa's lock on the conversation: two calls at once (an agent's send and the
        customer's return) deliver a message once."""
        agent = self.app.ctx.agent
        async with agent.lock_store.lock(conversation_id):
            stored = self.claims.messages(conversation_id)
            tracker = await agent.tracker_store.retrieve(conversation_id)
            if tracker is None or not tracker.events:
                raise UnknownConversation(conversation_id)
            result = SyncResult(tracker.get_latest_input_channel(), await self._sockets(conversation_id),
                                tracker.is_paused())
            if not stored:
                return result
            resume = tracker.is_paused() and self._finished(conversation_id)
            result.appended = self._append(tracker, stored, resume)
            if result.appended or resume:
                await agent.tracker_store.save(tracker)
            result.paused = tracker.is_paused()
            waiting = [m for m in stored if m.delivered_at is None]
            if not result.sockets:
                result.waiting = [m.id for m in waiting]
                return result
            for message in waiting:
                await self._emit(conversation_id, message, result.paused)
            self.claims.mark_delivered(m.id for m in waiting)
            result.delivered = [m.id for m in waiting]
        return result

    def _finished(self, conversation_id: str) -> bool:
        """Whether the conversation's latest handoff is over: the bot takes it again."""
        latest = self.claims.latest(conversation_id)
        return latest is not None and latest.status in (HANDED_BACK, CLOSED)

    @staticmethod
    def _append(tracker: Any, stored: List[HandoffMessage], resume: bool) -> List[str]:
        """Put the stored messages the tracker lacks into it; resume before the message that
        says so. Returns the ids appended."""
        present = {e.metadata.get(MESSAGE_ID) for e in tracker.events if isinstance(e, BotUttered) and e.metadata}
        appended = []
        for message in stored:
            if message.id in present:
                continue
            if resume and message.kind in texts.ASKS_FOR_RATING and tracker.is_paused():
                tracker.update(ConversationResumed())
            payload = outgoing(message)
            tracker.update(BotUttered(payload["text"], metadata=payload["metadata"]))
            appended.append(message.id)
        if resume and tracker.is_paused():  # the closing message was already in: resume anyway
            tracker.update(ConversationResumed())
        if resume:
            tracker.update(ActionExecuted(ACTION_LISTEN_NAME))
        return appended

    async def _sockets(self, room: str) -> int:
        """Sockets in the room: on any instance with a shared client manager (its registry in
        Redis), else on this server (python-socketio's in-memory manager)."""
        if self.presence is not None:
            return await self.presence.count(room)
        try:
            return sum(1 for _ in self.sio.manager.get_participants(self.namespace or "/", room))
        except KeyError:  # no socket has joined any room of the namespace yet
            return 0

    async def _emit(self, room: str, message: HandoffMessage, paused: bool) -> None:
        await self.sio.emit(self.bot_message_evt, outgoing(message), room=room, namespace=self.namespace)
        if message.kind != texts.AGENT:
            state = {"kind": message.kind, "agent": message.agent, "paused": paused}
            await self.sio.emit("handoff_state", state, room=room, namespace=self.namespace)
        if message.kind in texts.ASKS_FOR_RATING:
            done = {"reply_to": None, "paused": paused, "ended": True}
            await self.sio.emit("bot_turn_done", done, room=room, namespace=self.namespace)

    async def rejoined(self, conversation_id: str) -> None:
        """A customer's widget is back in its session: deliver what waited for it."""
        if not any(m.delivered_at is None for m in self.claims.messages(conversation_id)):
            return
        try:
            await self.sync(conversation_id)
        except UnknownConversation:
            pass

    def state(self, conversation_id: str) -> Optional[Dict[str, Any]]:
        """The customer's view of an active handoff, for the widget's state endpoint."""
        handoff = self.claims.latest_active(conversation_id)
        if handoff is None:
            return None
        return {"reference": handoff.reference, "status": handoff.status, "agent": handoff.claimed_by,
                "wait_minutes": handoff.told_wait_minutes}

    # --- No agent in time: offer a reply by email, once ---

    async def watch(self) -> None:
        interval = min(30.0, max(1.0, self.timeout.total_seconds() / 4))
        while True:
            try:
                await self.notify_overdue()
            except Exception:  # noqa: BLE001 -- a database hiccup must not end the watcher
                logger.exception("Handoff watcher: could not check waiting handoffs")
            await asyncio.sleep(interval)

    async def notify_overdue(self) -> List[str]:
        """Tell each customer waiting longer than the timeout (business time) that a person will
        answer by email; the handoff stays open. Returns the references notified."""
        notified = []
        for handoff in self.claims.overdue(self.hours, self.timeout):
            text = texts.TIMED_OUT.format(reference=handoff.reference,
                                          by_email=texts.by_email(handoff.customer_id is not None))
            self.claims.add_message(handoff, texts.TIMEOUT, text, key="timeout")  # stored before it counts as made
            if not self.claims.offer_email(handoff.id):
                continue  # another Rasa instance made it
            try:
                await self.sync(handoff.conversation_id)
            except UnknownConversation:
                logger.warning("Handoff %s: conversation %s is not on this server", handoff.reference,
                               handoff.conversation_id)
            notified.append(handoff.reference)
        return notified
