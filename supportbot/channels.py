"""Rasa input channels that mask card numbers before Rasa sees the message.

Masking at the channel is the only place early enough: Rasa logs and stores the text of a
user message before any NLU component runs. The customer is told why in the same reply.
Use them in credentials.yml under their dotted paths; they keep Rasa's URLs
(/webhooks/rest/webhook, /socket.io) and options.

The socket.io channel also serves the web widget (docs/web-widget.md): each bot message
carries `metadata.reply_to` / `metadata.index` (which answer it is, for feedback), a
`bot_turn_done` event tells the widget that the bot finished answering and whether a person
has taken over, and POST /webhooks/socketio/feedback stores thumbs and ratings.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot import feedback
from supportbot.redact import mask_card_numbers
from supportbot.store import FeedbackStore

logger = logging.getLogger(__name__)

CARD_WARNING = (
    "For your safety I removed a card number from your message and did not store it. "
    "Please never share card details in chat: to change a card, use the secure payment "
    "page in your account."
)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


def redacting(on_new_message: OnNewMessage) -> OnNewMessage:
    async def handler(message: UserMessage) -> Any:
        text, masked = mask_card_numbers(message.text or "")
        if masked:
            logger.info("Masked %d card number(s) from sender %s", masked, message.sender_id)
            message.text = text
            message.metadata = {**(message.metadata or {}), "card_number_masked": masked}
            if message.output_channel is not None:
                await message.output_channel.send_text_message(message.sender_id, CARD_WARNING)
        return await on_new_message(message)

    return handler


def payload_error(request: Request) -> Optional[str]:
    """Why a REST webhook payload cannot be handled, or None when it can."""
    try:
        body = json.loads(request.body or b"")
    except ValueError:
        return "The body must be JSON: {\"sender\": \"...\", \"message\": \"...\"}."
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    if not isinstance(body.get("message"), str):
        return "\"message\" must be a string."
    if "sender" in body and not isinstance(body["sender"], str):
        return "\"sender\" must be a string."
    if "metadata" in body and not isinstance(body["metadata"], (dict, type(None))):
        return "\"metadata\" must be an object."
    return None


class RedactingRestInput(RestInput):
    """Rasa's REST channel, plus a clear 400 for payloads it would crash on."""

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        blueprint = super().blueprint(redacting(on_new_message))

        @blueprint.middleware("request")
        async def reject_malformed(request: Request) -> Optional[HTTPResponse]:
            if request.method != "POST" or not request.path.endswith("/webhook"):
                return None
            error = payload_error(request)
            return response.json({"error": error}, status=400) if error else None

        return blueprint


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


class RedactingSocketIOInput(SocketIOInput):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app: Optional[Sanic] = None
        self._feedback: Optional[FeedbackStore] = None

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        blueprint = super().blueprint(redacting(self._answering(on_new_message)))

        @blueprint.listener("before_server_start")
        async def keep_app(app: Sanic, _: Any) -> None:
            self.app = app

        @blueprint.route("/feedback", methods=["POST"])
        async def receive_feedback(request: Request) -> HTTPResponse:
            return await self._receive_feedback(request)

        @blueprint.route("/conversations/<conversation_id>/state", methods=["GET"])
        async def state(request: Request, conversation_id: str) -> HTTPResponse:
            tracker = await request.app.ctx.agent.tracker_store.retrieve(conversation_id)
            return response.json({"paused": bool(tracker and tracker.is_paused())})

        return blueprint

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
        tracker = await agent.tracker_store.retrieve(sender_id) if agent and agent.tracker_store else None
        if tracker is None:
            return {"paused": False, "ended": False}
        intent = (tracker.latest_message.intent or {}).get("name") or "" if tracker.latest_message else ""
        return {"paused": tracker.is_paused(), "ended": "goodbye" in intent.split("+")}

    async def _receive_feedback(self, request: Request) -> HTTPResponse:
        try:
            wanted = feedback.parse(json.loads(request.body or b""))
        except ValueError as error:  # FeedbackError, or the body is not JSON
            message = str(error) if isinstance(error, feedback.FeedbackError) else "The body must be JSON."
            return response.json({"error": message}, status=400)
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
