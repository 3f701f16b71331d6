"""The agent inbox: handed-off chats answered by a person in the customer's own widget
(docs/handoff.md#the-agent-inbox). A thin layer over supportbot.handoff.desk.Desk, which stores
each change first (claims, idempotent messages) and then has Rasa's relay deliver it.

  GET  /agents[?team=T]                 the queue (agents), of one team's queue when given
  GET  /agents/queue[?team=T]           the queue's HTML alone, for the page to refresh itself
  GET  /agents/<ref>                    one conversation: context, the chat, the controls
  POST /agents/<ref>/{claim,reply,hand-back,close,correction,move}   its forms, without JavaScript

  GET  /api/handoffs[?team=T]           the queue as JSON, most urgent first, then longest waiting
  GET  /api/handoffs/<ref>              one handoff with the context the assistant recorded
  GET  /api/handoffs/<ref>/conversation[?after=N]   the chat's lines from the N-th on, and its state
  POST /api/handoffs/<ref>/claim        409 when another agent was first
  POST /api/handoffs/<ref>/messages     {"text", "key"?}: the same key again sends nothing new
  POST /api/handoffs/<ref>/hand-back    the bot takes over again, with its slots
  POST /api/handoffs/<ref>/close
  POST /api/handoffs/<ref>/correction   {"intent"}: the bot's intent was wrong (the learning loop)
  POST /api/handoffs/<ref>/move         {"team"}: to another team's queue, with its ticket (a routing
                                        correction for the learning loop)

The agent is the logged-in account (or the bearer token's caller): the customer reads its name.
All state is in the stores, so a reloaded page, or another tab, shows the conversation as it is.
"""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlencode

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.admin.app import ApiError, Page, in_thread, render, requires, user
from supportbot.admin.inbox import _json_body
from supportbot.errors import BackendError, Conflict, InvalidRequest, NotFound, Unauthorized
from supportbot.handoff import routing
from supportbot.handoff.claims import ACTIVE, CLAIMED, message_text
from supportbot.handoff.desk import Desk, Line, QueueItem
from supportbot.learning.corrections import CorrectionError, UnknownTurn, record_correction
from supportbot.store import Handoff

MAX_REFERENCE = 255
MAX_KEY = 100
POLL_SECONDS = 1  # the conversation page asks for new lines this often (static/agents.js)
# Rasa's own bookkeeping, not a step the assistant took for the customer.
NOT_STEPS = frozenset({"action_listen", "action_session_start", "action_extract_slots",
                       "action_unlikely_intent", "action_back", "action_restart"})
DONE = {"claimed": "You claimed this conversation: the customer reads that you joined.",
        "sent": "Sent.",
        "handed_back": "Handed back: the assistant answers again, with what it knew.",
        "closed": "Closed: the assistant is back for anything else.",
        "moved": "Moved to the other team's queue, with its ticket: recorded as a routing correction."}


# --- The desk, opened on first use (pages that need no handoffs never open its store) ---

_desk_lock = threading.Lock()


def _desk(app: Sanic) -> Desk:
    with _desk_lock:
        if getattr(app.ctx, "desk", None) is None:
            # SUPPORTBOT_DB_URL; RASA_URL and RASA_AUTH_TOKEN (var/secrets.env); SUPPORTBOT_TICKETING for
            # moves; routing corrections go to the app's learning store.
            app.ctx.desk = Desk(learning=lambda: app.ctx.store)
        return app.ctx.desk


async def desk_call(request: Request, method: str, *args: Any, **kwargs: Any) -> Any:
    """A Desk method off the event loop, its errors as answers."""
    return await in_thread(lambda: _answer(getattr(_desk(request.app), method), *args, **kwargs))


def desk_error(error: BackendError) -> ApiError:
    if isinstance(error, NotFound):
        return ApiError(404, error.message)
    if isinstance(error, Conflict):
        return ApiError(409, error.message)
    if isinstance(error, InvalidRequest):
        return ApiError(400, error.message)
    said = error.message.rstrip(".")
    if isinstance(error, Unauthorized):
        return ApiError(502, f"{said}. Check the admin app's RASA_AUTH_TOKEN; what was saved stays saved "
                             "and goes out once Rasa accepts it.")
    return ApiError(502, f"{said}. What was saved stays saved and goes out when Rasa answers.")


# --- Views: what the page and the API show ---

def waited(seconds: float) -> str:
    """"45 s", "12 min", "2 h 05 min"."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def team_name(key: Optional[str]) -> Optional[str]:
    """The team's name as agents read it ("Orders and delivery"); the key for a team no longer in
    routing.yml; None for a handoff made before routing."""
    if key is None:
        return None
    team = routing.from_env().teams.get(key)
    return team.name if team else key


def item_view(item: QueueItem, me: str) -> Dict[str, Any]:
    return {"reference": item.reference, "handoff_id": item.handoff_id, "conversation_id": item.conversation_id,
            "reason": item.reason, "status": item.status, "agent": item.agent, "yours": item.agent == me,
            "team": item.team, "team_name": team_name(item.team), "priority": item.priority,
            "waiting_seconds": round(item.waiting_seconds), "waited": waited(item.waiting_seconds),
            "verified": item.verified, "customer_id": item.customer_id,
            "told_wait_minutes": item.told_wait_minutes, "email_offered": item.email_offered,
            "summary": item.summary}


def handoff_view(handoff: Handoff, me: str, now: Optional[datetime] = None) -> Dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    context = handoff.context or {}
    return {"reference": handoff.reference, "handoff_id": handoff.id, "conversation_id": handoff.conversation_id,
            "reason": handoff.reason, "status": handoff.status, "agent": handoff.claimed_by,
            "yours": handoff.status == CLAIMED and handoff.claimed_by == me,
            "team": handoff.team, "team_name": team_name(handoff.team), "priority": handoff.priority,
            "ticket_id": handoff.ticket_id,
            "active": handoff.status in ACTIVE, "created_at": handoff.created_at.isoformat(),
            "waiting_seconds": round((now - handoff.created_at).total_seconds()),
            "waited": waited((now - handoff.created_at).total_seconds()),
            "verified": handoff.customer_id is not None, "customer_id": handoff.customer_id,
            "told_wait_minutes": handoff.told_wait_minutes,
            "email_offered": handoff.email_offered_at is not None,
            "context": context_view(context)}


def context_view(context: Dict[str, Any]) -> Dict[str, Any]:
    """The handoff record's context with every field present, whatever version wrote it."""
    transcript = [t for t in context.get("transcript") or [] if isinstance(t, dict)]
    tone = context.get("tone") if isinstance(context.get("tone"), dict) else None
    return {
        "transcript": transcript,
        "turns": [{"text": t.get("text") or "", "intent": t.get("intent"), "confidence": t.get("confidence"),
                   "entities": [e for e in t.get("entities") or [] if isinstance(e, dict)]}
                  for t in transcript if t.get("from") == "customer"],
        "intent_ranking": [{"name": r.get("name"), "confidence": r.get("confidence")}
                           for r in context.get("intent_ranking") or [] if isinstance(r, dict)],
        "entities": context.get("entities") or [],
        "slots": context.get("slots") if isinstance(context.get("slots"), dict) else {},
        "tone": {"angry": bool(tone.get("angry")), "anger": tone.get("anger")} if tone else None,
    }


SPEAKERS = {"customer": "Customer", "bot": "Assistant", "support": "Support notice"}


def line_view(line: Line, me: str) -> Dict[str, Any]:
    """A line of the chat; `speaker` is what the page shows ("Customer", "sam (you)")."""
    speaker = SPEAKERS.get(line.who) or (f"{line.agent} (you)" if line.agent == me else line.agent or "Agent")
    return {"at": line.at.isoformat(), "time": line.at.astimezone(timezone.utc).strftime("%H:%M:%S"),
            "who": line.who, "agent": line.agent, "speaker": speaker, "text": line.text}


def steps_tried(tracker: Dict[str, Any], handed_off: datetime) -> List[str]:
    """The actions and forms (not the responses) the assistant ran up to the handoff, that is
    before the customer's first message after it; repeats folded."""
    steps: List[str] = []
    for event in tracker.get("events") or []:
        if event.get("event") == "user" and (event.get("timestamp") or 0) > handed_off.timestamp():
            break
        name = event.get("name") if event.get("event") in ("action", "active_loop") else None
        if name and name not in NOT_STEPS and not name.startswith("utter_") and (not steps or steps[-1] != name):
            steps.append(name)
    return steps


def conversation_view(desk: Desk, reference: str, me: str, after: int) -> Dict[str, Any]:
    """The handoff's state and the chat's lines from index `after` on (all when the chat has
    fewer: it was restarted). Blocking: call it in a thread."""
    handoff = desk.claims.get(reference)
    lines = desk.conversation(handoff.id)
    start = after if after <= len(lines) else 0
    return {"reference": handoff.reference, "status": handoff.status, "agent": handoff.claimed_by,
            "yours": handoff.status == CLAIMED and handoff.claimed_by == me,
            "lines": [line_view(line, me) for line in lines[start:]], "from": start, "next": len(lines)}


# --- Reading requests ---

def _reference(reference: str) -> str:
    reference = reference.strip()
    if not reference or len(reference) > MAX_REFERENCE:
        raise ApiError(404, "no such handoff")
    return reference


def _after(request: Request) -> int:
    value = request.args.get("after") or "0"
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise ApiError(400, '"after" must be a line number (0 or more)')
    return int(value)


def _team(request: Request) -> Optional[str]:
    """`?team=`: a team of routing.yml, or none (every queue); Desk.queue says 400 for any other."""
    return request.args.get("team") or None


def teams_view() -> List[Dict[str, str]]:
    return [{"key": t.key, "name": t.name} for t in routing.from_env().teams.values()]


def _text_and_key(body: Any) -> Tuple[str, Optional[str]]:
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    text, key = body.get("text"), body.get("key")
    if not isinstance(text, str):
        raise ApiError(400, '"text" must be the message, a string')
    _check_text(text)
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= MAX_KEY or not key.isprintable()):
        raise ApiError(400, f'"key", when given, must be 1 to {MAX_KEY} printable characters')
    return text, key


def _check_text(text: str) -> None:
    """Empty or too long is a 400 before Rasa is asked anything."""
    try:
        message_text(text)
    except InvalidRequest as error:
        raise ApiError(400, error.message) from None


def _intent(value: Any, labels: frozenset) -> str:
    if not isinstance(value, str) or value not in labels:
        raise ApiError(400, f"unknown intent {str(value)[:MAX_REFERENCE]!r} "
                            "(intents as in domain/, FAQ topics as faq/<topic>)")
    return value


async def correct(request: Request, reference: str, intent: str) -> Dict[str, Any]:
    """The bot's intent for the turn that led to the handoff was wrong: label it `intent`."""
    handoff = await in_thread(_get, request.app, reference)
    try:
        turn = await in_thread(record_correction, request.app.ctx.store, conversation_id=handoff.conversation_id,
                               intent=intent, source="agent_inbox", agent=user(request).name,
                               labels=request.app.ctx.labels)
    except UnknownTurn as error:  # e.g. the collector has not read the conversation yet
        raise ApiError(409, f"{error}: try again in a minute") from None
    except CorrectionError as error:
        raise ApiError(400, str(error)) from None
    return {"reference": handoff.reference, "conversation_id": turn.conversation_id, "turn_id": turn.id,
            "text": turn.text, "intent": turn.intent, "label": turn.label, "label_source": turn.label_source,
            "status": turn.status}


def _answer(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except BackendError as error:
        raise desk_error(error) from None


def _get(app: Sanic, reference: str) -> Handoff:
    return _answer(lambda: _desk(app).claims.get(reference))


def _from_rasa(desk: Desk, handoff: Handoff, me: str) -> Tuple[List[Dict[str, Any]], List[str], Optional[str]]:
    """The chat's lines and the steps tried, or why Rasa could not say (the record is still worth
    reading). Blocking."""
    try:
        steps = steps_tried(desk.relay.tracker(handoff.conversation_id), handoff.created_at)
        return [line_view(line, me) for line in desk.conversation(handoff.id)], steps, None
    except BackendError as error:
        return [], [], desk_error(error).message


# --- Routes ---

def add_routes(app: Sanic) -> None:
    app.ctx.pages.append(Page("/agents", "Agent inbox", ("agent",)))
    _add_pages(app)
    _add_forms(app)
    _add_api(app)


def _add_pages(app: Sanic) -> None:
    @app.get("/agents")
    @requires("agent")
    async def queue_page(request: Request) -> HTTPResponse:
        return await _queue_page(request, None)

    @app.get("/agents/queue")
    @requires("agent")
    async def queue_part(request: Request) -> HTTPResponse:
        items = await desk_call(request, "queue", team=_team(request))
        return render(request, "agents_queue.html", title="Agent inbox",
                      items=[item_view(i, user(request).name) for i in items])

    @app.get("/agents/<reference>")
    @requires("agent")
    async def conversation_page(request: Request, reference: str) -> HTTPResponse:
        flash = None
        if request.args.get("done") in DONE:
            flash = {"kind": "done", "text": DONE[request.args.get("done")]}
        elif request.args.get("corrected") in request.app.ctx.labels:
            flash = {"kind": "done", "text": f"Recorded: the customer wanted {request.args.get('corrected')}. "
                                             "Designers review it before the assistant learns it."}
        return await _conversation_page(request, _reference(reference), flash)


async def _queue_page(request: Request, flash: Optional[Dict[str, str]], status: int = 200) -> HTTPResponse:
    team = _team(request)
    items = await desk_call(request, "queue", team=team)
    return render(request, "agents.html", status, title="Agent inbox", flash=flash, team=team, teams=teams_view(),
                  items=[item_view(i, user(request).name) for i in items])


async def _conversation_page(request: Request, reference: str, flash: Optional[Dict[str, str]],
                             status: int = 200, draft: str = "") -> HTTPResponse:
    me = user(request).name
    handoff = await in_thread(_get, request.app, reference)
    lines, steps, problem = await in_thread(_from_rasa, _desk(request.app), handoff, me)
    if flash and flash["text"] == problem:
        problem = None
    return render(request, "agent_conversation.html", status, title=f"Conversation {handoff.reference}",
                  handoff=handoff_view(handoff, me), lines=lines, steps=steps, problem=problem,
                  flash=flash, draft=draft, key=uuid.uuid4().hex, labels=sorted(request.app.ctx.labels),
                  poll_seconds=POLL_SECONDS, teams=teams_view())


def _add_forms(app: Sanic) -> None:
    """The conversation page's forms: each does its work, then shows the page again."""

    def form_route(verb: str, done: Callable[[Request, str], Any]) -> None:
        async def handler(request: Request, reference: str) -> HTTPResponse:
            reference = _reference(reference)
            try:
                query = await done(request, reference)
            except ApiError as error:
                if verb == "claim" and error.status == 409 and request.form.get("from") == "queue":
                    return await _queue_page(request, {"kind": "error", "text": lost(error)}, 409)
                if error.status == 404:
                    raise
                text = lost(error) if verb == "claim" and error.status == 409 else error.message
                return await _conversation_page(request, reference, {"kind": "error", "text": text},
                                                error.status, draft=(request.form.get("text") or "")[:4000])
            anchor = "#reply" if verb == "reply" else ""
            return response.redirect(f"/agents/{reference}?{urlencode(query)}{anchor}", status=303)

        handler.__name__ = f"form_{verb.replace('-', '_')}"
        app.post(f"/agents/<reference>/{verb}", name=handler.__name__)(requires("agent")(handler))

    async def claim(request: Request, reference: str) -> Dict[str, str]:
        await desk_call(request, "claim", reference, user(request).name)
        return {"done": "claimed"}

    async def reply(request: Request, reference: str) -> Dict[str, str]:
        key = (request.form.get("key") or "")[:MAX_KEY] or None
        _check_text(request.form.get("text") or "")
        await desk_call(request, "say", reference, user(request).name, request.form.get("text") or "", key=key)
        return {"done": "sent"}

    async def hand_back(request: Request, reference: str) -> Dict[str, str]:
        await desk_call(request, "hand_back", reference, user(request).name)
        return {"done": "handed_back"}

    async def close(request: Request, reference: str) -> Dict[str, str]:
        await desk_call(request, "close", reference, user(request).name)
        return {"done": "closed"}

    async def correction(request: Request, reference: str) -> Dict[str, str]:
        if not request.form.get("intent"):
            raise ApiError(400, "choose the intent the customer meant")
        result = await correct(request, reference, _intent(request.form.get("intent"), request.app.ctx.labels))
        return {"corrected": result["label"]}

    async def move(request: Request, reference: str) -> Dict[str, str]:
        if not request.form.get("team"):
            raise ApiError(400, "choose the team whose queue it belongs in")
        await desk_call(request, "move", reference, user(request).name, request.form.get("team"),
                        source="agent_inbox")
        return {"done": "moved"}

    for verb, done in (("claim", claim), ("reply", reply), ("hand-back", hand_back), ("close", close),
                       ("correction", correction), ("move", move)):
        form_route(verb, done)


def lost(error: ApiError) -> str:
    """What the agent who lost a race for a claim reads."""
    return f"Someone else was first: {error.message}"


def _add_api(app: Sanic) -> None:
    @app.get("/api/handoffs")
    @requires("agent")
    async def api_queue(request: Request) -> HTTPResponse:
        items = await desk_call(request, "queue", team=_team(request))
        return response.json({"handoffs": [item_view(i, user(request).name) for i in items]}, default=str)

    @app.get("/api/handoffs/<reference>")
    @requires("agent")
    async def api_handoff(request: Request, reference: str) -> HTTPResponse:
        handoff = await in_thread(_get, request.app, _reference(reference))
        return response.json(handoff_view(handoff, user(request).name), default=str)

    @app.get("/api/handoffs/<reference>/conversation")
    @requires("agent")
    async def api_conversation(request: Request, reference: str) -> HTTPResponse:
        reference, after = _reference(reference), _after(request)
        me = user(request).name
        return response.json(await in_thread(lambda: _answer(conversation_view, _desk(request.app),
                                                             reference, me, after)))

    @app.post("/api/handoffs/<reference>/claim")
    @requires("agent")
    async def api_claim(request: Request, reference: str) -> HTTPResponse:
        handoff = await desk_call(request, "claim", _reference(reference), user(request).name)
        return response.json(handoff_view(handoff, user(request).name), default=str)

    @app.post("/api/handoffs/<reference>/messages")
    @requires("agent")
    async def api_message(request: Request, reference: str) -> HTTPResponse:
        text, key = _text_and_key(_json_body(request))
        sent = await desk_call(request, "say", _reference(reference), user(request).name, text, key=key)
        return response.json({"id": sent.message.id, "text": sent.message.text, "agent": sent.message.agent,
                              "delivered": sent.delivered, "duplicate": sent.duplicate},
                             status=200 if sent.duplicate else 201)

    @app.post("/api/handoffs/<reference>/hand-back")
    @requires("agent")
    async def api_hand_back(request: Request, reference: str) -> HTTPResponse:
        handoff = await desk_call(request, "hand_back", _reference(reference), user(request).name)
        return response.json(handoff_view(handoff, user(request).name), default=str)

    @app.post("/api/handoffs/<reference>/close")
    @requires("agent")
    async def api_close(request: Request, reference: str) -> HTTPResponse:
        handoff = await desk_call(request, "close", _reference(reference), user(request).name)
        return response.json(handoff_view(handoff, user(request).name), default=str)

    @app.post("/api/handoffs/<reference>/correction")
    @requires("agent")
    async def api_correction(request: Request, reference: str) -> HTTPResponse:
        body = _json_body(request)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        intent = _intent(body.get("intent"), request.app.ctx.labels)
        return response.json(await correct(request, _reference(reference), intent))

    @app.post("/api/handoffs/<reference>/move")
    @requires("agent")
    async def api_move(request: Request, reference: str) -> HTTPResponse:
        body = _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("team"), str):
            raise ApiError(400, '"team" must be the team to move it to, a string')
        handoff = await desk_call(request, "move", _reference(reference), user(request).name, body["team"],
                                  source="agent_inbox")
        return response.json(handoff_view(handoff, user(request).name), default=str)

