"""Slack channel: Rasa's Slack connector, made safe for production.

What it adds to `rasa.core.channels.slack.SlackInput` (whose signature check it reuses):

- Secrets come from the environment (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, optional
  SLACK_CHANNEL, SLACK_API_URL); without token or secret Rasa still starts and the webhook
  answers 503, so `make run` works for people who don't use Slack.
- One conversation per Slack thread: sender id `team:channel:thread_ts` (a top-level message
  starts one, replies in its thread continue it), and the bot always answers in the thread.
- Slack resends an event it thinks was lost (no answer within 3 s, or an error). Every event is
  recorded once in the `seen_events` table (SUPPORTBOT_DB_URL) before it is processed; a resend
  finds its event id there and is answered 200 with nothing done. The message is handled in a
  background task, so Slack gets its answer at once, however slow the bot is.
- Card numbers are masked before Rasa sees the text (`redacting`, like the other channels).
- Clear status codes: 401 bad or stale signature, 400 malformed body, 200 for events it ignores.
- With SUPPORTBOT_AGENTS_SLACK_CHANNEL, that channel's events (signed and taken once like the
  rest) go to supportbot/handoff/slack_agents.py: the agents' side of the live handoff.

Setup and behaviour for operators: docs/slack.md.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.slack import SlackBot as RasaSlackBot
from rasa.core.channels.slack import SlackInput as RasaSlackInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Column, DateTime, String, delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, declarative_base

from supportbot import settings
from supportbot.channels import OnNewMessage, redacting, store_outage_told
from supportbot.handoff.slack_agents import SlackAgents, SlackApi
from supportbot.store import make_engine

logger = logging.getLogger(__name__)

DEFAULT_API_URL = settings.SETTINGS["SLACK_API_URL"].default
NOT_CONFIGURED = (
    "The Slack channel is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET in the "
    "environment of the Rasa server (see docs/slack.md)."
)
# Messages from people; every other subtype (bot_message, message_changed, channel_join...)
# is not something a customer said to the bot.
USER_SUBTYPES = {None, "thread_broadcast", "file_share"}

Base = declarative_base()


class SeenSlackEvent(Base):
    __tablename__ = "seen_events"

    # A Slack event id, or a message key (an @mention in a channel arrives as two events:
    # `message` and `app_mention`, with different event ids but the same message).
    event_id = Column(String(255), primary_key=True)
    created_at = Column(DateTime(timezone=True), nullable=False, index=True)


class SlackEventLog:
    """The Slack events already taken in. Slack resends for at most a few minutes, so rows
    older than `keep` are pruned now and then."""

    def __init__(self, db_url: Optional[str] = None, keep: timedelta = timedelta(days=1)) -> None:
        self.db_url = db_url or settings.get("SUPPORTBOT_DB_URL")
        self.keep = keep
        self._engine: Optional[Engine] = None
        self._lock = threading.Lock()
        self._next_prune = 0.0

    @property
    def engine(self) -> Engine:
        # Connect on first use, not at Rasa's start: a database that is down must not stop
        # the other channels from starting.
        with self._lock:
            if self._engine is None:
                engine = make_engine(self.db_url)
                Base.metadata.create_all(engine)
                self._engine = engine
            return self._engine

    def claim(self, *keys: str) -> bool:
        """Record the keys in one transaction; False if any was recorded before (a resend)."""
        now = datetime.now(timezone.utc)
        with Session(self.engine, future=True) as session:
            session.add_all([SeenSlackEvent(event_id=key, created_at=now) for key in keys])
            try:
                session.commit()
            except IntegrityError:
                return False
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + 3600
            self.prune(now - self.keep)
        return True

    def prune(self, before: datetime) -> None:
        with Session(self.engine, future=True) as session:
            session.execute(delete(SeenSlackEvent).where(SeenSlackEvent.created_at < before))
            session.commit()


class SlackBot(RasaSlackBot):
    """Rasa's Slack output channel, posting through SLACK_API_URL into the conversation's
    thread. A failed post is logged, not raised: raising would make Rasa drop the turn's
    events after its actions already ran."""

    def __init__(self, token: str, slack_channel: Optional[str] = None, thread_id: Optional[str] = None,
                 proxy: Optional[str] = None, api_url: str = DEFAULT_API_URL) -> None:
        super().__init__(token, slack_channel, thread_id, proxy)
        self.client = AsyncWebClient(
            token, base_url=api_url, proxy=proxy,
            # A 429 means "not posted": safe to retry. Connection errors: slack_sdk's default.
            retry_handlers=[AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(2)],
        )

    async def _post_message(self, channel: str, **kwargs: Any) -> None:
        # `as_user` is for classic apps only; Slack rejects it with a bot token of a new app.
        kwargs.pop("as_user", None)
        channel, thread_ts = _target(channel, self.thread_id)
        if thread_ts:
            kwargs.setdefault("thread_ts", thread_ts)
        try:
            await self.client.chat_postMessage(channel=channel, **kwargs)
        except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError) as error:
            logger.error("Slack chat.postMessage to %s failed: %s", channel, error)


def conversation_id(team: str, channel: str, thread_ts: str) -> str:
    return f"{team}:{channel}:{thread_ts}"


def _target(recipient: str, thread_ts: Optional[str]) -> Tuple[str, Optional[str]]:
    """Channel and thread to post to. Rasa's HTTP API (e.g. `output_channel=latest`) knows
    only the sender id; ours names the channel and thread (Slack ids never contain ':')."""
    parts = recipient.split(":")
    if len(parts) == 3:
        return parts[1], thread_ts or parts[2]
    return recipient, thread_ts


_MENTION = r"<@{uid}(?:\|[^>]*)?>"
_LABELLED_LINK = re.compile(r"<(?:mailto:|tel:|https?://)[^|>]*\|([^>]*)>")
_BARE_LINK = re.compile(r"<(?:mailto:|tel:)?((?:https?://)?[^|>@#!][^|>]*)>")
_CHANNEL_REF = re.compile(r"<#\w+\|([^>]*)>")


def clean_text(text: str, bot_user_ids: Sequence[str] = ()) -> str:
    """Slack's markup back to what the person typed: drop mentions of the bot, unwrap links
    and e-mail addresses (`<mailto:a@b.com|a@b.com>`), unescape &amp; &lt; &gt;."""
    for uid in bot_user_ids:
        text = re.sub(_MENTION.format(uid=re.escape(uid)), " ", text)
    text = _LABELLED_LINK.sub(r"\1", text)
    text = _CHANNEL_REF.sub(r"#\1", text)
    text = _BARE_LINK.sub(r"\1", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


@dataclass
class Incoming:
    """A message for the bot, taken from a Slack request."""

    text: str
    team: str
    channel: str
    thread_ts: str
    keys: List[str]  # what identifies it in the event log
    metadata: Dict[str, Any] = field(default_factory=dict)

    @property
    def sender_id(self) -> str:
        return conversation_id(self.team, self.channel, self.thread_ts)


class SlackInput(RasaSlackInput):
    """Rasa's Slack input channel at /webhooks/slack/webhook, with the additions described in
    the module docstring. In credentials.yml: `supportbot.slack.SlackInput:` (no secrets)."""

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> SlackInput:
        credentials = credentials or {}
        env = settings.get
        return cls(
            slack_token=credentials.get("slack_token") or env("SLACK_BOT_TOKEN") or "",
            slack_channel=credentials.get("slack_channel") or env("SLACK_CHANNEL"),
            proxy=credentials.get("proxy"),
            slack_signing_secret=credentials.get("slack_signing_secret") or env("SLACK_SIGNING_SECRET") or "",
            slack_api_url=credentials.get("slack_api_url") or env("SLACK_API_URL"),
            agents_channel=env("SUPPORTBOT_AGENTS_SLACK_CHANNEL"),
        )

    def __init__(self, slack_token: str, slack_channel: Optional[str] = None, proxy: Optional[str] = None,
                 slack_signing_secret: str = "", slack_api_url: str = DEFAULT_API_URL,
                 event_log: Optional[SlackEventLog] = None, agents_channel: Optional[str] = None) -> None:
        super().__init__(slack_token, slack_channel, proxy, use_threads=True,
                         slack_signing_secret=slack_signing_secret, conversation_granularity="thread")
        self.api_url = slack_api_url
        self.event_log = event_log or SlackEventLog()
        # Live handoff in Slack: the agents' channel is theirs, never a customer's conversation.
        self.agents: Optional[SlackAgents] = None
        if agents_channel and self.configured:
            self.agents = SlackAgents(agents_channel, SlackApi(slack_token, slack_api_url))

    @property
    def configured(self) -> bool:
        return bool(self.slack_token and self.slack_signing_secret)

    def _validate_credentials(self) -> None:
        # Rasa raises here; we start anyway and answer 503, so the other channels keep working.
        if not self.configured:
            logger.warning(NOT_CONFIGURED)

    def get_output_channel(self, channel: Optional[str] = None, thread_id: Optional[str] = None) -> OutputChannel:
        # Without a channel (Rasa's HTTP API), SlackBot posts to the recipient: the sender id,
        # which names channel and thread. SLACK_CHANNEL is only for recipients that don't.
        return SlackBot(self.slack_token, channel, thread_id, self.proxy, self.api_url)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        handle = redacting(store_outage_told(on_new_message))
        slack_webhook = Blueprint("slack_webhook", __name__)

        @slack_webhook.listener("after_server_start")
        async def start_agents(app: Any, _: Any) -> None:
            if self.agents is not None:
                self.agents.start(app)

        @slack_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.configured else "not configured"})

        @slack_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if not self.configured:
                return response.json({"error": NOT_CONFIGURED}, status=503)
            if not self.is_request_from_slack_authentic(request):
                return response.json({"error": "Missing, invalid or expired X-Slack-Signature."}, status=401)
            payload, error = _parse(request)
            if payload is None:
                return response.json({"error": error}, status=400)
            if payload.get("type") == "url_verification":
                return response.json({"challenge": payload.get("challenge")})
            incoming = self._incoming(payload)
            if incoming is None:
                return response.json({"ok": True, "ignored": True})
            return await self._take(request, incoming, handle)

        return slack_webhook

    async def _take(self, request: Request, incoming: Incoming, handle: OnNewMessage) -> HTTPResponse:
        """Record the message, then handle it in the background; a resend is answered only."""
        loop = asyncio.get_running_loop()
        try:
            first = await loop.run_in_executor(None, self.event_log.claim, *incoming.keys)
        except SQLAlchemyError:
            logger.exception("Cannot record Slack event %s; Slack will resend it", incoming.keys)
            return response.json({"error": "Event log unavailable, please retry."}, status=503)
        if not first:
            logger.info("Slack event %s already taken in (retry %s): answered only", incoming.keys,
                        request.headers.get("X-Slack-Retry-Num", "-"))
            return response.json({"ok": True, "duplicate": True}, headers={"X-Slack-No-Retry": "1"})
        if self.agents is not None and incoming.channel == self.agents.channel:
            work = self.agents.take(incoming)  # supportbot/handoff/slack_agents.py
        else:
            message = UserMessage(incoming.text, self.get_output_channel(incoming.channel, incoming.thread_ts),
                                  incoming.sender_id, input_channel=self.name(), metadata=incoming.metadata)
            work = _handle(handle, message)
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.create_task(work)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)
        return response.json({"ok": True})

    def _incoming(self, payload: Dict[str, Any]) -> Optional[Incoming]:
        if payload.get("type") == "event_callback":
            return self._from_event(payload)
        if payload.get("type") == "block_actions":
            return self._from_button(payload)
        logger.debug("Ignoring Slack payload of type %r", payload.get("type"))
        return None

    def _from_event(self, payload: Dict[str, Any]) -> Optional[Incoming]:
        event = payload.get("event")
        if not isinstance(event, dict) or event.get("type") not in ("message", "app_mention"):
            return None
        if event.get("bot_id") or event.get("subtype") not in USER_SUBTYPES:
            return None  # the bot's own replies come back as events too
        channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
        if not (isinstance(channel, str) and isinstance(ts, str) and user) or not self._answers_in(event):
            return None
        bot_ids = _bot_user_ids(payload)
        text = clean_text(str(event.get("text") or ""), bot_ids)
        if not text:
            return None
        team = str(payload.get("team_id") or event.get("team") or "-")
        thread_ts = str(event.get("thread_ts") or ts)
        keys = [f"message:{team}:{channel}:{ts}"]
        if payload.get("event_id"):
            keys.insert(0, str(payload["event_id"]))
        mentioned = event.get("type") == "app_mention" or any(f"<@{uid}" in str(event["text"]) for uid in bot_ids)
        return Incoming(text, team, channel, thread_ts, keys, _metadata(
            channel, thread_ts, bot_ids, team=team, user=user, ts=ts, event_id=payload.get("event_id"),
            mentioned=mentioned or None))

    def _from_button(self, payload: Dict[str, Any]) -> Optional[Incoming]:
        """A click on a button the bot sent (Slack's interactivity, same request URL)."""
        if not self._is_interactive_message(payload):
            return None
        text = self._get_interactive_response(payload["actions"][0])
        channel = (payload.get("channel") or {}).get("id")
        message = payload.get("message") or {}
        thread_ts = message.get("thread_ts") or message.get("ts")
        if not (text and channel and thread_ts):
            return None
        team = str((payload.get("team") or {}).get("id") or "-")
        key = f"interaction:{payload.get('trigger_id') or payload['actions'][0].get('action_ts')}"
        user = (payload.get("user") or {}).get("id")
        return Incoming(text, team, channel, thread_ts, [key],
                        _metadata(channel, thread_ts, [], team=team, user=user))

    def _answers_in(self, event: Dict[str, Any]) -> bool:
        """Direct messages and @mentions always; other channel messages only in SLACK_CHANNEL
        when it is set, else in every channel the bot was invited to."""
        return (event.get("channel_type") == "im" or event.get("type") == "app_mention"
                or not self.slack_channel or event.get("channel") in (self.slack_channel, self._agents_channel))

    @property
    def _agents_channel(self) -> Optional[str]:
        return self.agents.channel if self.agents is not None else None


def _parse(request: Request) -> Tuple[Optional[Dict[str, Any]], str]:
    """The request's payload: JSON for events, a form with a JSON `payload` for buttons."""
    try:
        if (request.content_type or "").startswith("application/x-www-form-urlencoded"):
            body = json.loads(request.form.get("payload") or "")
        else:
            body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        return None, "The body must be a Slack event (JSON) or an interaction payload."
    if not isinstance(body, dict):
        return None, "The body must be a JSON object."
    return body, ""


def _bot_user_ids(payload: Dict[str, Any]) -> List[str]:
    ids = [a.get("user_id") for a in payload.get("authorizations") or [] if isinstance(a, dict)]
    ids += payload.get("authed_users") or []
    return [str(uid) for uid in ids if uid]


def _metadata(channel: str, thread_ts: str, bot_ids: List[str], **slack: Any) -> Dict[str, Any]:
    # out_channel/thread_id/users: the keys Rasa's Slack channel puts in metadata.
    return {"out_channel": channel, "thread_id": thread_ts, "users": bot_ids,
            "slack": {key: value for key, value in slack.items() if value is not None}}


async def _handle(handle: OnNewMessage, message: UserMessage) -> None:
    try:
        await handle(message)
    except Exception:  # a background task has nobody to raise to
        logger.exception("Handling the Slack message of %s failed", message.sender_id)
