"""Rasa input channels that mask card numbers before Rasa sees the message.

Masking at the channel is the only place early enough: Rasa logs and stores the text of a
user message before any NLU component runs. The customer is told why in the same reply.
Use them in credentials.yml under their dotted paths; they keep Rasa's URLs
(/webhooks/rest/webhook, /socket.io) and options.

Both channels also refuse hostile input before Rasa parses, logs or stores it (`Limits`,
set from the environment): a message over SUPPORTBOT_MAX_MESSAGE_CHARS gets a reply saying so
and is not processed; a missing, over-long or control-character sender id, oversized or deeply
nested metadata and malformed JSON are a 400 (REST) or a `request_refused` event (socket.io);
lone surrogates become U+FFFD.

The socket.io channel also serves the web widget (docs/web-widget.md): each bot message
carries `metadata.reply_to` / `metadata.index` (which answer it is, for feedback), a
`bot_turn_done` event tells the widget that the bot finished answering and whether a person
has taken over, and POST /webhooks/socketio/feedback stores thumbs and ratings. A session is
kept to the browser that opened it: `session_confirm` carries a session key (`SessionKeys`)
that a reload must present to rejoin, and the feedback and state endpoints require in the
X-Session-Key header; only SUPPORTBOT_ALLOWED_ORIGINS may connect. It also hosts the live
handoff relay (supportbot/handoff/relay.py, docs/handoff.md): agents' messages into the chat,
delivered again when the customer's widget rejoins.

Every channel also counts and times its turns and serves the Rasa server's `/metrics`
(supportbot.metrics, docs/observability.md), names the conversation in the log lines of its
turns (supportbot.logs), and tells the customer to send a message again when the conversation
database stayed down for the tracker store's wait (`store_outage_told`, docs/deploy.md).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from supportbot import feedback, logs, metrics, settings, socket_presence
from supportbot.handoff.relay import Relay
from supportbot.identity import customer_from_metadata
from supportbot.redact import CardFragments, install_log_masking, mask_in_structure
from supportbot.store import FeedbackStore
from supportbot.tracker_store import TrackerStoreUnavailable

logger = logging.getLogger(__name__)
# Rasa loads this module with credentials.yml, before it handles any message: from then on
# no log line of the process carries a card number, however Rasa was started.
install_log_masking()

CARD_WARNING = (
    "For your safety I removed a card number from your message and did not store it. "
    "Please never share card details in chat: to change a card, use the secure payment "
    "page in your account."
)

# When the conversation database is down (supportbot.tracker_store): the turn was not stored, so
# the customer is asked to send it again (the fault matrix counts "try again in a few minutes" as
# a clear answer: supportbot/benchmark/faults.py).
STORE_UNAVAILABLE = (
    "Sorry, I can't reach our conversation records right now, so I couldn't keep track of that "
    "message. Please send it again in a few minutes."
)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


def allowed_origins(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """The web origins that may use the channels from a browser (CORS and socket.io):
    SUPPORTBOT_ALLOWED_ORIGINS, comma-separated, else the demo store's."""
    return [o.strip() for o in settings.get("SUPPORTBOT_ALLOWED_ORIGINS", environ).split(",") if o.strip()]


# Card numbers split over two messages of one sender (supportbot.redact.CardFragments).
_card_fragments = CardFragments()


def redacting(on_new_message: OnNewMessage) -> OnNewMessage:
    """Masks card numbers in the text (also when split over two messages) and in every string
    of the metadata, before Rasa logs, parses or stores the message. Counts and times the turn,
    and names its conversation in every line logged meanwhile."""
    async def handler(message: UserMessage) -> Any:
        with logs.conversation(message.sender_id), metrics.Turn(message.input_channel):
            return await _redacted(message)

    async def _redacted(message: UserMessage) -> Any:
        text, masked = _card_fragments.mask_message(message.sender_id or "", message.text or "")
        try:
            metadata, masked_in_metadata = mask_in_structure(message.metadata or {})
        except ValueError:  # nested deeper than any client needs: keep none of it
            metadata, masked_in_metadata = {"metadata_dropped": "nested too deeply"}, 0
        message.metadata = metadata
        if masked or masked_in_metadata:
            logger.info("Masked %d card number(s) from sender %s", masked + masked_in_metadata,
                        message.sender_id)
            message.text = text
            message.metadata = {**metadata, "card_number_masked": masked + masked_in_metadata}
            if message.output_channel is not None:
                await message.output_channel.send_text_message(message.sender_id, CARD_WARNING)
        return await on_new_message(message)

    return handler


def store_outage_told(on_new_message: OnNewMessage) -> OnNewMessage:
    """The customer is told when the turn could not be read or stored (the tracker database stayed
    down for the store's outage wait), after whatever the assistant had already said."""
    async def handler(message: UserMessage) -> Any:
        try:
            return await on_new_message(message)
        except TrackerStoreUnavailable as error:
            logger.error("Turn of %s not stored: %s", message.sender_id, error)
            metrics.ERRORS.labels("rasa", type(error).__name__).inc()
            if message.output_channel is not None:
                await message.output_channel.send_text_message(message.sender_id, STORE_UNAVAILABLE)
            return None

    return handler


def instrumented(blueprint: Blueprint) -> Tuple[Blueprint, Blueprint]:
    """`blueprint` and one that, registered with it, gives the Rasa server `/metrics` and the
    HTTP metrics and, with SUPPORTBOT_LOG_FORMAT=json, JSON logs for Sanic's loggers too."""
    return blueprint, metrics.InstrumentingBlueprint(f"supportbot_metrics_{blueprint.name}",
                                                     on_app=lambda _: logs.configure("rasa"))


# --- What a client may send: checked at the channel, before Rasa parses, logs or stores it ---

@dataclass(frozen=True)
class Limits:
    """Caps on one incoming message (docs/web-widget.md#limits). A message over
    `message_chars` gets TOO_LONG and is not processed: Rasa's parse time grows with the text
    (and faster than linearly for very long ones), and one turn holds the server."""

    message_chars: int = 2000
    sender_id_chars: int = 128
    metadata_bytes: int = 8192

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> Limits:
        values = {}
        for field, name in (("message_chars", "SUPPORTBOT_MAX_MESSAGE_CHARS"),
                            ("sender_id_chars", "SUPPORTBOT_MAX_SENDER_ID_CHARS"),
                            ("metadata_bytes", "SUPPORTBOT_MAX_METADATA_BYTES")):
            values[field] = settings.integer(name, environ, minimum=1)
        return cls(**values)


TOO_LONG = ("That message is too long for me ({length:,} characters). Please shorten it to {limit:,} "
            "characters or fewer, or split it.")
MAX_METADATA_DEPTH = 16
SURROGATE = re.compile("[\ud800-\udfff]")
WEB_SESSION_PREFIX = "web-"  # socket.io session ids; other channels may not use them


def too_long_reply(text: str, limits: Limits) -> Optional[str]:
    """The reply to a message over the cap, or None. Surrounding white space is free (Rasa
    strips it)."""
    length = len(text.strip())
    return TOO_LONG.format(length=length, limit=limits.message_chars) if length > limits.message_chars else None


def sender_error(sender: Any, limits: Limits) -> Optional[str]:
    """Why `sender` cannot be a conversation id, or None."""
    if not isinstance(sender, str) or not sender.strip():
        return "\"sender\" is required: the conversation id, a non-empty string."
    if len(sender) > limits.sender_id_chars:
        return f"\"sender\" is too long: at most {limits.sender_id_chars} characters."
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in sender):
        return "\"sender\" must not contain control or invisible characters."
    return None


def metadata_error(metadata: Any, limits: Limits) -> Optional[str]:
    """Why `metadata` cannot be accepted, or None."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return "\"metadata\" must be an object."
    if _depth(metadata) > MAX_METADATA_DEPTH:
        return f"\"metadata\" is nested too deeply: at most {MAX_METADATA_DEPTH} levels."
    size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > limits.metadata_bytes:
        return f"\"metadata\" is too large: at most {limits.metadata_bytes:,} bytes of JSON."
    return None


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value`, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        deepest = max(deepest, depth if isinstance(item, (dict, list)) else depth - 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def without_lone_surrogates(value: Any) -> Any:
    """`value` with each lone UTF-16 surrogate (valid in JSON, not in UTF-8: Rasa would fail to
    store the message) replaced by U+FFFD, in strings, object keys and lists. Call after
    `metadata_error` has bounded the nesting."""
    if isinstance(value, str):
        return SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_lone_surrogates(k): without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_lone_surrogates(item) for item in value]
    return value


class PayloadError(ValueError):
    """A REST webhook payload that cannot be handled; the message is the client's 400."""


def rest_payload(raw: bytes, limits: Limits) -> Dict[str, Any]:
    """The REST webhook body, checked and with lone surrogates replaced; PayloadError if it
    cannot be handled."""
    try:
        body = json.loads(raw or b"")
    except RecursionError:
        raise PayloadError("The JSON is nested too deeply.") from None
    except ValueError:
        raise PayloadError("The body must be JSON: {\"sender\": \"...\", \"message\": \"...\"}.") from None
    if not isinstance(body, dict):
        raise PayloadError("The body must be a JSON object.")
    if not isinstance(body.get("message"), str):
        raise PayloadError("\"message\" must be a string.")
    error = sender_error(body.get("sender"), limits) or metadata_error(body.get("metadata"), limits)
    if error:
        raise PayloadError(error)
    if not isinstance(body.get("input_channel"), (str, type(None))):
        raise PayloadError("\"input_channel\" must be a string.")
    if body["sender"].startswith(WEB_SESSION_PREFIX) or ":" in body["sender"]:
        # Web chat sessions and Slack threads (team:channel:thread) are their channels' alone.
        raise PayloadError(f"\"sender\" must not start with {WEB_SESSION_PREFIX!r} or contain ':'.")
    return {key: without_lone_surrogates(body[key]) for key in ("sender", "message", "metadata", "input_channel")
            if key in body}


class RedactingRestInput(RestInput):
    """Rasa's REST channel, plus a clear 400 for payloads it would crash on or should not
    store, and a reply instead of processing for over-long messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = Limits.from_env()

    def blueprint(self, on_new_message: OnNewMessage) -> Tuple[Blueprint, Blueprint]:
        blueprint = super().blueprint(redacting(store_outage_told(on_new_message)))

        @blueprint.middleware("request")
        async def check_payload(request: Request) -> Optional[HTTPResponse]:
            if request.method != "POST" or not request.path.endswith("/webhook"):
                return None
            try:
                body = rest_payload(request.body, self.limits)
            except PayloadError as error:
                return response.json({"error": str(error)}, status=400)
            too_long = too_long_reply(body["message"], self.limits)
            if too_long:
                logger.info("Not processed: a %d-character message from %s", len(body["message"]), body["sender"])
                return response.json([{"recipient_id": body["sender"], "text": too_long}])
            request.parsed_json = body  # Rasa's handler reads exactly what was checked
            return None

        return instrumented(blueprint)


CLIENT_MESSAGE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def client_message_id(value: Any) -> Optional[str]:
    """The widget's id for a message (the same on a retry), when it is one we can keep; else
    None and Rasa makes one up."""
    return value if isinstance(value, str) and CLIENT_MESSAGE_ID.fullmatch(value) else None


def answers_to(events: List[Any], message_id: str) -> Optional[List[Dict[str, Any]]]:
    """The bot's answers to the user message `message_id` (what it said until it listened
    again; an agent's later messages are not part of it), or None if no such message is stored."""
    answers: Optional[List[Dict[str, Any]]] = None
    for event in events:
        if answers is None:
            if isinstance(event, UserUttered) and event.message_id == message_id:
                answers = []
        elif isinstance(event, BotUttered):
            answers.append(event.message())
        elif isinstance(event, UserUttered) or (
                isinstance(event, ActionExecuted) and event.action_name == ACTION_LISTEN_NAME):
            break
    return answers


class AnsweringSocketIOOutput(SocketIOOutput):
    """Tags every bot message with the user message it answers and its position among the
    answers, so the widget can say which answer a thumbs up or down is for."""

    def __init__(self, sio: Any, bot_message_evt: str, reply_to: str) -> None:
        super().__init__(sio, bot_message_evt)
        self.reply_to = reply_to
        self.index = -1

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        self.index += 1  # one call per BotUttered event, in the tracker's order
        await super().send_response(recipient_id, message)

    async def _send_message(self, socket_id: str, response: Any) -> None:
        metadata = {"reply_to": self.reply_to, "index": max(self.index, 0)}
        await super()._send_message(socket_id, {**response, "metadata": metadata})


# --- Web chat sessions: bound to the browser (and signed-in customer) that opened them ---

def session_secret(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """SUPPORTBOT_SESSION_SECRET, else SUPPORTBOT_IDENTITY_SECRET, else None."""
    return settings.get("SUPPORTBOT_SESSION_SECRET", environ)


class SessionKeys:
    """The session key the server gives the client that opened a web chat session: proof,
    on a reload and to the feedback and state endpoints, that it is that client.

    A key is `<tag>.<mac>`: the tag says who the session is for ("anon", or an HMAC of the
    session and the signed-in customer), the mac signs the session id and the tag. Nothing
    is stored: the keys survive a restart as long as the secret does."""

    ANONYMOUS = "anon"

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def _hmac(self, *parts: str) -> str:
        message = "\0".join(parts).encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _tag(self, session_id: str, customer: Optional[str]) -> str:
        return self.ANONYMOUS if customer is None else self._hmac("customer", session_id, customer)[:32]

    def issue(self, session_id: str, customer: Optional[str]) -> str:
        tag = self._tag(session_id, customer)
        return f"{tag}.{self._hmac('session', session_id, tag)}"

    def valid(self, session_id: str, key: Any) -> bool:
        """Whether `key` was issued for `session_id` (to anyone)."""
        if not isinstance(key, str) or key.count(".") != 1:
            return False
        tag, mac = key.split(".")
        return hmac.compare_digest(mac, self._hmac("session", session_id, tag))

    def valid_for(self, session_id: str, key: Any, customer: Optional[str]) -> bool:
        """Whether `key` was issued for `session_id` and this customer (None: anonymous)."""
        return self.valid(session_id, key) and hmac.compare_digest(
            key.split(".")[0], self._tag(session_id, customer))


@dataclass(frozen=True)
class ConfirmedSession:
    session_id: str
    customer: Optional[str]  # the verified customer it was opened for; None: anonymous


SESSION_KEY_HEADER = "X-Session-Key"
FORBIDDEN = {"error": f"This conversation needs its session key in the {SESSION_KEY_HEADER} header."}


class RedactingSocketIOInput(SocketIOInput):
    """Rasa's socket.io channel for the web widget: masks card numbers, tags answers, sends
    `bot_turn_done`, serves the feedback and state endpoints, and keeps each session to the
    browser that opened it (docs/web-widget.md#sessions)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app: Optional[Sanic] = None
        self._feedback: Optional[FeedbackStore] = None
        self.limits = Limits.from_env()
        self.keys = SessionKeys(self._secret())
        self._confirmed: Dict[str, ConfirmedSession] = {}  # socket id -> the session it may use
        self._handle: Optional[OnNewMessage] = None  # Rasa's on_new_message, wrapped (blueprint)
        self.relay: Optional[Relay] = None  # live handoff, set with `sio` (blueprint)
        self._in_flight: set = set()  # (conversation, client message id) being answered right now
        # Several Rasa instances: emit through Redis, and record who is connected where
        # (credentials.yml `client_manager_url`; supportbot/socket_presence.py).
        self.client_manager_url: Optional[str] = None
        self.presence: Optional[socket_presence.Presence] = None

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> RedactingSocketIOInput:
        channel = super().from_credentials(credentials)
        channel.client_manager_url = (credentials or {}).get("client_manager_url") or None
        return channel

    @staticmethod
    def _secret() -> str:
        secret = session_secret()
        if not secret:
            logger.warning("Neither SUPPORTBOT_SESSION_SECRET nor SUPPORTBOT_IDENTITY_SECRET is set: web chat "
                           "sessions are keyed with a random secret and do not survive a restart.")
        return secret or secrets.token_urlsafe(32)

    def blueprint(self, on_new_message: OnNewMessage) -> Tuple[Blueprint, Blueprint]:
        self._handle = redacting(self._answering(store_outage_told(on_new_message)))
        blueprint = super().blueprint(self._handle)
        self._secure(self.sio)
        if self.client_manager_url:
            self.presence = socket_presence.share(self.sio, self.client_manager_url, self.namespace)
        self.relay = Relay(self.sio, self.namespace, self.bot_message_evt, self.presence)
        self.relay.register(blueprint)

        @blueprint.listener("before_server_start")
        async def keep_app(app: Sanic, _: Any) -> None:
            self.app = app

        @blueprint.route("/feedback", methods=["POST"])
        async def receive_feedback(request: Request) -> HTTPResponse:
            return await self._receive_feedback(request)

        @blueprint.route("/conversations/<conversation_id>/state", methods=["GET"])
        async def state(request: Request, conversation_id: str) -> HTTPResponse:
            if not self._holds_key(request, conversation_id):
                return response.json(FORBIDDEN, status=403)
            tracker = await request.app.ctx.agent.tracker_store.retrieve(conversation_id)
            state: Dict[str, Any] = {"paused": bool(tracker and tracker.is_paused())}
            handoff = self.relay.state(conversation_id) if self.relay else None
            if handoff:  # waiting or with a person: reference, status, agent, wait_minutes
                state["handoff"] = handoff
            return response.json(state)

        return instrumented(blueprint)

    def _secure(self, sio: AsyncServer) -> None:
        """Our handlers replace Rasa's for these events (python-socketio keeps one per event).

        Origins are checked on connect rather than by Engine.IO's `cors_allowed_origins`
        (Rasa sets `[]`, no check): Engine.IO would then add its own CORS headers to those
        Rasa's `--cors` adds, and browsers refuse a response with two."""
        origins = set(allowed_origins())
        rasa_connect = sio.handlers[self.namespace or "/"]["connect"]  # Rasa's (jwt_key) check

        async def connect(sid: str, environ: Dict[str, Any], auth: Optional[Dict] = None) -> bool:
            origin = environ.get("HTTP_ORIGIN")
            if origin is not None and origin not in origins:
                logger.info("Refused a socket.io connection from origin %r", origin[:200])
                return False
            accepted = await rasa_connect(sid, environ, auth)
            if accepted is not False:  # python-socketio calls `disconnect` for these only
                metrics.SOCKETIO_CONNECTIONS.inc()
            return accepted

        sio.on("connect", connect, namespace=self.namespace)
        sio.on("session_request", self._session_request, namespace=self.namespace)
        sio.on(self.user_message_evt, self._user_uttered, namespace=self.namespace)
        sio.on("disconnect", self._disconnect, namespace=self.namespace)

    async def _session_request(self, sid: str, data: Any = None) -> None:
        """Rejoin a session only with the key it was issued with, for the same customer
        (customer_token); anything else gets a new session and key."""
        data = data if isinstance(data, dict) else {}
        customer = customer_from_metadata({"customer_token": data.get("customer_token")})
        session_id = data.get("session_id")
        if not (isinstance(session_id, str) and not sender_error(session_id, self.limits)
                and self.keys.valid_for(session_id, data.get("session_key"), customer)):
            if session_id:
                logger.info("Socket %s asked for a session without its key: it gets a new one", sid)
            session_id = f"{WEB_SESSION_PREFIX}{uuid.uuid4().hex}"
        self._join(sid, ConfirmedSession(session_id, customer))
        confirm = {"session_id": session_id, "session_key": self.keys.issue(session_id, customer)}
        await self.sio.emit("session_confirm", confirm, room=sid)
        if self.relay and session_id == data.get("session_id"):  # rejoined: what an agent sent meanwhile
            await self.relay.rejoined(session_id)

    def _join(self, sid: str, session: ConfirmedSession) -> None:
        previous = self._confirmed.get(sid)
        if previous and previous.session_id != session.session_id:
            self.sio.leave_room(sid, previous.session_id, namespace=self.namespace)
        self._confirmed[sid] = session  # before any await: a message right after is checked against it
        if self.session_persistence:
            self.sio.enter_room(sid, session.session_id, namespace=self.namespace)
            if self.presence:
                self.presence.join(sid, session.session_id)

    async def _disconnect(self, sid: str) -> None:
        metrics.SOCKETIO_CONNECTIONS.dec()
        self._confirmed.pop(sid, None)
        if self.presence:
            self.presence.leave(sid)

    async def _user_uttered(self, sid: str, data: Any = None) -> None:
        data = data if isinstance(data, dict) else {}
        sender, error = self._sender(sid, data.get("session_id"))
        metadata, metadata_problem = self._metadata(data.get(self.metadata_key))
        text = data.get("message", "")
        error = error or metadata_problem or self._customer_error(sid, metadata) or (
            None if isinstance(text, str) else "\"message\" must be a string.")
        if error or sender is None or self._handle is None:
            await self.sio.emit("request_refused", {"error": error}, room=sid)
            return
        text = without_lone_surrogates(text)
        output = SocketIOOutput(self.sio, self.bot_message_evt)
        too_long = too_long_reply(text, self.limits)
        if too_long:
            logger.info("Not processed: a %d-character message from %s", len(text), sender)
            await output.send_text_message(sender, too_long)
            await self.sio.emit("bot_turn_done", {"reply_to": None, **await self._turn_state(sender)}, room=sender)
            return
        message_id = client_message_id(data.get("message_id"))
        if (sender, message_id) in self._in_flight:
            logger.info("Message %s of %s is being answered: its retry is dropped", message_id, sender)
            return  # the answer goes to the room this socket waits in
        flight = {(sender, message_id)} if message_id else set()
        self._in_flight |= flight  # before any await: a copy sent at the same moment is dropped
        try:
            if message_id and await self._answered_already(sender, message_id):
                return
            await self._handle(UserMessage(text, output, sender, input_channel=self.name(), metadata=metadata,
                                           message_id=message_id))
        finally:
            self._in_flight -= flight

    async def _answered_already(self, sender: str, message_id: str) -> bool:
        """A message the widget sent again (its "Not delivered — Retry") is answered once: while
        the first copy is being answered the retry is dropped (above); once answered, the stored
        answer is sent again instead of a second turn."""
        agent = getattr(self.app.ctx, "agent", None) if self.app else None
        try:
            tracker = await agent.tracker_store.retrieve(sender) if agent and agent.tracker_store else None
        except TrackerStoreUnavailable:  # the turn itself will tell the customer
            return False
        answers = answers_to(list(tracker.events) if tracker else [], message_id)
        if answers is None:
            return False
        logger.info("Message %s of %s was answered already: its answer is sent again", message_id, sender)
        output = AnsweringSocketIOOutput(self.sio, self.bot_message_evt, message_id)
        for answer in answers:
            await output.send_response(sender, answer)
        done = {"reply_to": message_id, **await self._turn_state(sender)}
        await self.sio.emit("bot_turn_done", done, room=sender)
        return True

    def _sender(self, sid: str, session_id: Any) -> Tuple[Optional[str], Optional[str]]:
        """The conversation a message on this socket belongs to, or why it has none."""
        if not self.session_persistence:
            return sid, None  # Rasa's choice without persistence: one conversation per socket
        session = self._confirmed.get(sid)
        if session is None or session_id != session.session_id:
            return None, "This socket was not given that session: send session_request and use its session_id."
        return session.session_id, None

    def _metadata(self, raw: Any) -> Tuple[Dict[str, Any], Optional[str]]:
        if isinstance(raw, str):  # Rasa accepts metadata as a JSON string too
            try:
                raw = json.loads(raw)
            except (ValueError, RecursionError):
                return {}, "\"metadata\" must be a JSON object."
        error = metadata_error(raw, self.limits)
        return ({}, error) if error else (without_lone_surrogates(raw or {}), None)

    def _customer_error(self, sid: str, metadata: Dict[str, Any]) -> Optional[str]:
        """No other customer's token in a session opened for a signed-in customer. (An
        anonymous session may carry one: clients that send the token only with messages.)"""
        session = self._confirmed.get(sid)
        claimed = customer_from_metadata(metadata)
        if session and None not in (session.customer, claimed) and claimed != session.customer:
            return "This chat was opened for someone else: start a new chat (session_request)."
        return None

    def _holds_key(self, request: Request, conversation_id: str) -> bool:
        return self.keys.valid(conversation_id, request.headers.get(SESSION_KEY_HEADER))

    def _answering(self, on_new_message: OnNewMessage) -> OnNewMessage:
        async def handler(message: UserMessage) -> Any:
            channel = message.output_channel
            if not isinstance(channel, SocketIOOutput):
                return await on_new_message(message)
            message.output_channel = AnsweringSocketIOOutput(
                channel.sio, channel.bot_message_evt, message.message_id)
            try:
                return await on_new_message(message)
            finally:
                # Rasa has saved the tracker by now: a paused conversation is with a person.
                done = {"reply_to": message.message_id, **await self._turn_state(message.sender_id)}
                await channel.sio.emit("bot_turn_done", done, room=message.sender_id)

        return handler

    async def _turn_state(self, sender_id: str) -> Dict[str, bool]:
        """paused: a person has taken over; ended: the customer said goodbye (time to ask
        for a rating)."""
        agent = getattr(self.app.ctx, "agent", None) if self.app else None
        try:
            tracker = await agent.tracker_store.retrieve(sender_id) if agent and agent.tracker_store else None
        except TrackerStoreUnavailable:  # the customer was told (store_outage_told)
            tracker = None
        if tracker is None:
            return {"paused": False, "ended": False}
        intent = (tracker.latest_message.intent or {}).get("name") or "" if tracker.latest_message else ""
        return {"paused": tracker.is_paused(), "ended": "goodbye" in intent.split("+")}

    async def _receive_feedback(self, request: Request) -> HTTPResponse:
        try:
            wanted = feedback.parse(json.loads(request.body or b""))
        except (ValueError, RecursionError) as error:  # FeedbackError, or the body is not JSON
            message = str(error) if isinstance(error, feedback.FeedbackError) else "The body must be JSON."
            return response.json({"error": message}, status=400)
        if not self._holds_key(request, wanted.conversation_id):
            return response.json(FORBIDDEN, status=403)
        tracker = await request.app.ctx.agent.tracker_store.retrieve_full_tracker(wanted.conversation_id)
        try:
            details = feedback.details_from_events(wanted, list(tracker.events) if tracker else [])
        except feedback.UnknownMessage as error:
            return response.json({"error": str(error)}, status=404)
        if self._feedback is None:
            self._feedback = FeedbackStore()
        row, created = self._feedback.save(
            conversation_id=wanted.conversation_id, kind=wanted.kind, value=wanted.value,
            message_id=wanted.message_id, answer_index=wanted.answer_index, **details)
        return response.json({"id": row.id, "created": created}, status=201 if created else 200)
