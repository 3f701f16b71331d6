"""The NLU inbox page and its JSON API: the review queue of supportbot.learning.review, decided one
entry or one group at a time (docs/learning.md#the-designer-page).

  GET  /inbox[?source=S]         the page (designers)
  POST /inbox/decisions          its forms without JavaScript: decide, then back to the page
  GET  /api/queue[?source=S]     the queue as JSON (designers)
  POST /api/decisions            {"ids": [..], "decision": "accepted"|"rejected"|"out_of_scope", "label"?}
  POST /api/corrections          {"conversation_id", "intent", "turn_id"?} (designers and agents)

Decisions go through `review.decide`, so the rules are the CLI's: one conditional update per item,
and of two reviewers deciding the same item, the second is told it was already reviewed (409).
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Dict, FrozenSet, List, Optional, Tuple
from urllib.parse import urlencode

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy import select

from supportbot.admin.app import ApiError, Page, in_thread, render, requires, user
from supportbot.learning import review
from supportbot.learning.corrections import CorrectionError, record_correction
from supportbot.learning.store import LearningStore, TurnRow

ENTRIES_SHOWN = 20  # per group on the page; decide them to see the next
MAX_IDS = 10_000
MAX_ID = 2**63 - 1  # the databases' integer: a larger one is an error there, a 400 here
MAX_TEXT = 255
DECISIONS = (review.ACCEPTED, review.REJECTED, review.OUT_OF_SCOPE)
DONE = {review.ACCEPTED: "accepted", review.REJECTED: "rejected", review.OUT_OF_SCOPE: "marked out of scope"}


def entry_view(entry: review.Entry, labels: FrozenSet[str]) -> Dict[str, Any]:
    intents = Counter(t.intent for t in entry.turns if t.intent)
    confidences = [t.confidence for t in entry.turns if t.confidence is not None]
    return {
        "ids": [t.id for t in entry.turns],
        "text": entry.text,  # masked when it was stored
        "label": entry.label,
        "acceptable": entry.label in labels,
        "intent": intents.most_common(1)[0][0] if intents else None,
        "intents": dict(intents),
        "confidence": round(sum(confidences) / len(confidences), 4) if confidences else None,
        "reasons": sorted({r for t in entry.turns for r in t.reasons}),
        "messages": len(entry.turns),
        "sources": sorted({s for t in entry.turns for s in (t.label_source, t.channel) if s}),
        "value": entry.value,
    }


def queue_view(store: LearningStore, labels: FrozenSet[str], source: Optional[str],
               limit: Optional[int] = None) -> Dict[str, Any]:
    """The queue (most valuable group and entry first), and every source there is to filter by."""
    everything = review.queue(store)
    groups = everything if not source else review.queue(store, source)
    sources = sorted({s for entries in everything.values() for e in entries for t in e.turns
                      for s in (t.label_source, t.channel) if s})
    views = []
    for label, entries in groups.items():
        views.append({
            "label": label,
            "acceptable": label in labels,
            "messages": sum(len(e.turns) for e in entries),
            "entries_total": len(entries),
            "value": round(sum(e.value for e in entries), 4),
            "entries": [entry_view(e, labels) for e in entries[:limit]],
        })
    return {"source": source, "sources": sources, "groups": views,
            "messages": sum(g["messages"] for g in views)}


def parse_decision(body: Any, labels: FrozenSet[str]) -> Tuple[List[int], str, Optional[str]]:
    """(ids, decision, label) from a request body, or a 400 that says what is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    ids, decision, label = body.get("ids"), body.get("decision"), body.get("label")
    if (not isinstance(ids, list) or not ids or len(ids) > MAX_IDS
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i <= MAX_ID for i in ids)):
        raise ApiError(400, f'"ids" must be a list of 1 to {MAX_IDS} item ids (positive integers)')
    if decision not in DECISIONS:
        raise ApiError(400, f'"decision" must be one of {", ".join(DECISIONS)}')
    if label is not None:
        if decision != review.ACCEPTED:
            raise ApiError(400, '"label" goes only with "decision": "accepted" (a relabel)')
        if not isinstance(label, str) or label not in labels:
            raise ApiError(400, f"unknown intent {str(label)[:MAX_TEXT]!r} "
                                "(intents as in domain/, FAQ topics as faq/<topic>)")
    return sorted(set(ids)), decision, label


def _statuses(store: LearningStore, ids: List[int]) -> Dict[int, str]:
    """The review status of each id that is a review item (a candidate turn)."""
    found: Dict[int, str] = {}
    with store.session() as session:
        for start in range(0, len(ids), 500):
            query = select(TurnRow.id, TurnRow.status).where(TurnRow.id.in_(ids[start:start + 500]),
                                                             TurnRow.reasons_json != "[]")
            found.update(session.execute(query).all())
    return found


def decide(store: LearningStore, labels: FrozenSet[str], ids: List[int], decision: str,
           label: Optional[str]) -> Dict[str, Any]:
    statuses = _statuses(store, ids)
    unknown = [i for i in ids if i not in statuses]
    if unknown:
        raise ApiError(400, "unknown item ids: " + ", ".join(map(str, unknown[:20]))
                       + (" ..." if len(unknown) > 20 else ""))
    before = [i for i in ids if statuses[i] != review.NEW]
    if len(before) == len(ids):
        raise ApiError(409, "already reviewed: nothing changed")
    try:
        changed = review.decide(store, ids, decision, labels, label)
    except review.ReviewError as error:  # e.g. another reviewer was first, or nothing to accept as
        raise ApiError(409 if str(error).startswith("already reviewed") else 400, str(error)) from None
    return {"changed": changed, "already_reviewed": before, "decision": decision, "label": label,
            "message": describe(decision, label, changed, len(ids) - changed)}


def describe(decision: str, label: Optional[str], changed: int, skipped: int = 0) -> str:
    what = f"{changed} message{'s' if changed != 1 else ''} "
    what += f"relabelled as {label}" if label else DONE[decision]
    if skipped:
        what += f"; {skipped} had already been reviewed"
    return what + "."


def _json_body(request: Request) -> Any:
    try:
        return json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None


def _source(request: Request) -> Optional[str]:
    return (request.args.get("source") or "").strip()[:MAX_TEXT] or None


def add_routes(app: Sanic) -> None:
    app.ctx.pages.append(Page("/inbox", "NLU inbox", ("designer",)))

    @app.get("/inbox")
    @requires("designer")
    async def page(request: Request) -> HTTPResponse:
        return await _page(request, _source(request), _flash(request, request.app.ctx.labels))

    @app.post("/inbox/decisions")
    @requires("designer")
    async def decide_form(request: Request) -> HTTPResponse:
        """The page's forms without JavaScript; the result is shown on the page it returns to."""
        form, labels = request.form, request.app.ctx.labels
        back = {"source": (form.get("source") or "")[:MAX_TEXT]} if form.get("source") else {}
        button = form.get("decision") or ""
        ids = [part.strip() for part in (form.get("ids") or "").split(",")]
        body = {"ids": [int(i) for i in ids if i.isascii() and i.isdigit()],
                "decision": review.ACCEPTED if button == "relabel" else button,
                "label": (form.get("label") or None) if button == "relabel" else None}
        try:
            if button == "relabel" and not body["label"]:
                raise ApiError(400, "choose the intent to relabel as")
            result = await in_thread(decide, request.app.ctx.store, labels, *parse_decision(body, labels))
        except ApiError as error:  # the page again, saying what went wrong
            return await _page(request, back.get("source"), {"kind": "error", "text": error.message}, error.status)
        back.update(done=result["decision"], n=result["changed"], label=result["label"] or "")
        return response.redirect(f"/inbox?{urlencode(back)}", status=303)

    @app.get("/api/queue")
    @requires("designer")
    async def queue(request: Request) -> HTTPResponse:
        view = await in_thread(queue_view, request.app.ctx.store, request.app.ctx.labels, _source(request))
        return response.json(view)

    @app.post("/api/decisions")
    @requires("designer")
    async def decisions(request: Request) -> HTTPResponse:
        labels = request.app.ctx.labels
        ids, decision, label = parse_decision(_json_body(request), labels)
        return response.json(await in_thread(decide, request.app.ctx.store, labels, ids, decision, label))

    @app.post("/api/corrections")
    @requires("designer", "agent")
    async def corrections(request: Request) -> HTTPResponse:
        labels = request.app.ctx.labels
        conversation_id, intent, turn_id = parse_correction(_json_body(request), labels)
        try:
            turn = await in_thread(record_correction, request.app.ctx.store, conversation_id=conversation_id,
                                   intent=intent, source="admin", agent=user(request).name, turn_id=turn_id,
                                   labels=labels)
        except CorrectionError as error:  # an unknown turn or conversation
            raise ApiError(400, str(error)) from None
        return response.json({"id": turn.id, "conversation_id": turn.conversation_id, "text": turn.text,
                              "intent": turn.intent, "confidence": turn.confidence, "label": turn.label,
                              "label_source": turn.label_source, "status": turn.status})


def parse_correction(body: Any, labels: FrozenSet[str]) -> Tuple[str, str, Optional[int]]:
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    conversation_id, intent, turn_id = body.get("conversation_id"), body.get("intent"), body.get("turn_id")
    if not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= MAX_TEXT:
        raise ApiError(400, f'"conversation_id" must be a non-empty string of at most {MAX_TEXT} characters')
    if not isinstance(intent, str) or intent not in labels:
        raise ApiError(400, f"unknown intent {str(intent)[:MAX_TEXT]!r} "
                            "(intents as in domain/, FAQ topics as faq/<topic>)")
    if turn_id is not None and (isinstance(turn_id, bool) or not isinstance(turn_id, int)
                                or not 0 < turn_id <= MAX_ID):
        raise ApiError(400, '"turn_id", when given, must be a positive integer')
    return conversation_id, intent, turn_id


async def _page(request: Request, source: Optional[str], flash: Optional[Dict[str, str]],
                status: int = 200) -> HTTPResponse:
    labels = request.app.ctx.labels
    view = await in_thread(queue_view, request.app.ctx.store, labels, source, ENTRIES_SHOWN)
    return render(request, "inbox.html", status, title="NLU inbox", queue=view, labels=sorted(labels),
                  flash=flash, shown=ENTRIES_SHOWN)


def _flash(request: Request, labels: FrozenSet[str]) -> Optional[Dict[str, str]]:
    """The result of a form's decision, from the address it redirected to (fixed texts only)."""
    args = request.args
    if args.get("done") in DONE and (args.get("n") or "").isdigit():
        label = args.get("label") if args.get("label") in labels else None
        return {"kind": "done", "text": describe(args.get("done"), label, int(args.get("n")))}
    return None
