"""Rasa input channels that mask card numbers before Rasa sees the message.

Masking at the channel is the only place early enough: Rasa logs and stores the text of a
user message before any NLU component runs. The customer is told why in the same reply.
Use them in credentials.yml under their dotted paths; they keep Rasa's URLs
(/webhooks/rest/webhook, /socket.io) and options.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Optional

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.channels.socketio import SocketIOInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.redact import mask_card_numbers

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


class RedactingSocketIOInput(SocketIOInput):
    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        return super().blueprint(redacting(on_new_message))
