"""Zendesk Support API v2: tickets and their comments, as one agent with an API token.

Creates send Zendesk's own `Idempotency-Key` header (Zendesk answers a repeat with the first
ticket, and 400 IdempotentRequestError when the key comes with a different body), so a create
may be retried. Comments are `PUT /api/v2/tickets/{id}.json` updates, which Zendesk does not
deduplicate: they go through our KeyLedger (ledger.py) and are never retried blindly. Each
comment is authored by the ticket's requester; customers only see tickets they requested.
Solved and closed tickets are read with the incremental export (cursor based); the agent files
one under an intent with the tag `intent:<name>`, which the learning loop reads.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Sequence

import requests

from supportbot.errors import BackendError, BackendUnavailable, Conflict, NotFound
from supportbot.ticketing.base import (
    ResolvedTicket,
    Ticket,
    TicketingAdapter,
    TicketQueue,
    TicketReply,
    after_id,
    category_from_tags,
    check_owner,
    check_priority,
    normal_email,
    request_hash,
)
from supportbot.ticketing.http import JsonApi
from supportbot.ticketing.ledger import KeyLedger

DONE = frozenset({"solved", "closed"})
MAX_EXPORT_PAGES = 1000  # 1,000 tickets a page: far more than a day's handoffs
MAX_COMMENT_PAGES = 20  # 100 comments a page
AGENT_ROLES = frozenset({"agent", "admin"})  # end users (the requester, people in CC) are not the team

class ZendeskTicketing(TicketingAdapter):
    name = "zendesk"

    def __init__(self, base_url: str, email: str, api_token: str, ledger: KeyLedger, *,
                 timeout: float = 5.0, retries: int = 2, backoff: float = 0.2) -> None:
        self.base_url = base_url.rstrip("/")
        self.api = JsonApi("zendesk", self.base_url + "/api/v2", auth=(f"{email}/token", api_token),
                           timeout=timeout, retries=retries, backoff=backoff, error_for=_zendesk_error)
        self.ledger = ledger
        self.stale_after = (retries + 1) * timeout * 2
        self._me: Optional[int] = None  # the agent the bot acts as: its comments are ours

    def create_ticket(self, *, requester: str, subject: str, body: str, tags: Sequence[str] = (),
                      idempotency_key: str, queue: Optional[TicketQueue] = None,
                      priority: Optional[str] = None) -> Ticket:
        requester = normal_email(requester)
        payload = {"ticket": {"subject": subject, "comment": {"body": body}, "tags": list(tags),
                              "requester": {"email": requester, "name": requester}}}
        if check_priority(priority) is not None:
            payload["ticket"]["priority"] = priority  # Zendesk's own words
        if queue is not None and queue.zendesk_group is not None:
            payload["ticket"]["group_id"] = queue.zendesk_group
        # Safe to retry: Zendesk replays the first answer for the same key and body.
        answer = self.api.request("POST", "/tickets.json", body=payload, retry=True,
                                  headers={"Idempotency-Key": idempotency_key})
        return self._ticket(_field(answer, "ticket"), {}, requester)

    def add_comment(self, ticket_id: str, text: str, *, requester: str, idempotency_key: str) -> None:
        ticket, requester_id = self._get(ticket_id)
        check_owner(ticket, requester)

        def write() -> str:
            body = {"ticket": {"comment": {"body": text, "public": True, "author_id": requester_id}}}
            self.api.request("PUT", f"/tickets/{_id(ticket_id)}.json", body=body, retry=False)
            return ticket.id

        self.ledger.once(self.name + ":comment", idempotency_key, request_hash(ticket.id, text), write,
                         stale_after=self.stale_after)

    def get_ticket(self, ticket_id: str, *, requester: str) -> Ticket:
        return check_owner(self._get(ticket_id)[0], requester)

    def move_ticket(self, ticket_id: str, queue: TicketQueue) -> None:
        """The team's group (null: none, Zendesk's default). Setting a group twice is harmless: a retry may."""
        self.api.request("PUT", f"/tickets/{_id(ticket_id)}.json",
                         body={"ticket": {"group_id": queue.zendesk_group}}, retry=True)

    def list_tickets(self, requester: str) -> List[Ticket]:
        requester = normal_email(requester)
        users = _list(self.api.request("GET", "/users/search.json", params={"query": f"email:{requester}"}),
                      "users")
        ids = [u.get("id") for u in users if normal_email(str(u.get("email") or "")) == requester]
        if not ids:
            return []  # Zendesk has never heard of this customer
        answer = self.api.request("GET", f"/users/{int(ids[0])}/tickets/requested.json",
                                  params={"sort_by": "created_at", "sort_order": "desc"})
        return [self._ticket(raw, {}, requester) for raw in _list(answer, "tickets")
                if raw.get("requester_id") == ids[0]]

    def resolved_since(self, since: Optional[dt.datetime] = None) -> List[ResolvedTicket]:
        """Zendesk's tickets have no solved time: a solved ticket's last update stands for it."""
        params = {"start_time": str(int(since.timestamp()) if since else 0)}
        found: List[ResolvedTicket] = []
        for _ in range(MAX_EXPORT_PAGES):
            answer = self.api.request("GET", "/incremental/tickets/cursor.json", params=params)
            found += [self._resolved(raw) for raw in _list(answer, "tickets") if raw.get("status") in DONE]
            if answer.get("end_of_stream") is not False or not answer.get("after_cursor"):
                break
            params = {"cursor": str(answer["after_cursor"])}
        return sorted((t for t in found if since is None or t.resolved_at >= since),
                      key=lambda t: (t.resolved_at, int(t.id)))

    def replies(self, ticket_id: str, after: Optional[str] = None) -> List[TicketReply]:
        """Public comments by agents (role agent or admin) other than the bot's own user; the
        requester's comments (add_comment writes them as the requester) and private notes are
        left out."""
        since = after_id(after)
        _, requester_id = self._get(ticket_id)
        me = self._my_id()
        found: List[TicketReply] = []
        params = {"sort_order": "asc", "include": "users", "page[size]": "100"}
        for _ in range(MAX_COMMENT_PAGES):
            answer = self.api.request("GET", f"/tickets/{_id(ticket_id)}/comments.json", params=params)
            users = {u.get("id"): u for u in answer.get("users") or [] if isinstance(u, dict)}
            for raw in _list(answer, "comments"):
                reply = self._reply(raw, users, requester_id, me)
                if reply is not None and int(reply.id) > since:
                    found.append(reply)
            meta = answer.get("meta") if isinstance(answer.get("meta"), dict) else {}
            if not meta.get("has_more") or not meta.get("after_cursor"):
                break
            params = {**params, "page[after]": str(meta["after_cursor"])}
        return sorted(found, key=lambda r: int(r.id))

    @property
    def location(self) -> str:
        return self.base_url

    # -- helpers

    def _resolved(self, raw: Dict[str, Any]) -> ResolvedTicket:
        try:
            tags = [str(tag) for tag in raw.get("tags") or []]
            assignee = raw.get("assignee_id")
            return ResolvedTicket(
                id=str(int(raw["id"])), subject=str(raw.get("subject") or ""), status=str(raw["status"]),
                category=category_from_tags(tags),
                resolved_at=dt.datetime.fromisoformat(str(raw["updated_at"]).replace("Z", "+00:00")),
                resolved_by=f"zendesk user {assignee}" if assignee else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendUnavailable(f"zendesk returned an unexpected ticket: {exc!r}") from None

    def _my_id(self) -> Optional[int]:
        if self._me is None:
            user = _field(self.api.request("GET", "/users/me.json"), "user")
            if not isinstance(user, dict) or not isinstance(user.get("id"), int):
                raise BackendUnavailable("zendesk returned an unexpected user")
            self._me = user["id"]
        return self._me

    @staticmethod
    def _reply(raw: Dict[str, Any], users: Dict[Any, Dict[str, Any]], requester_id: Any,
               me: Optional[int]) -> Optional[TicketReply]:
        try:
            author = users.get(raw["author_id"]) or {}
            if (raw.get("public") is not True or raw["author_id"] in (requester_id, me)
                    or author.get("role") not in AGENT_ROLES):
                return None
            return TicketReply(id=str(int(raw["id"])), author=str(author.get("name") or "Support"),
                               text=str(raw.get("plain_body") or raw.get("body") or ""),
                               at=dt.datetime.fromisoformat(str(raw["created_at"]).replace("Z", "+00:00")))
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendUnavailable(f"zendesk returned an unexpected comment: {exc!r}") from None

    def _get(self, ticket_id: str):
        answer = self.api.request("GET", f"/tickets/{_id(ticket_id)}.json", params={"include": "users"})
        raw = _field(answer, "ticket")
        users = {u.get("id"): u for u in answer.get("users") or [] if isinstance(u, dict)}
        ticket = self._ticket(raw, users, None)
        return ticket, raw.get("requester_id")

    def _ticket(self, raw: Any, users: Dict[Any, Dict[str, Any]], requester: Optional[str]) -> Ticket:
        try:
            email = requester or normal_email(users[raw["requester_id"]]["email"])
            created = dt.datetime.fromisoformat(str(raw["created_at"]).replace("Z", "+00:00"))
            return Ticket(id=str(raw["id"]), subject=str(raw["subject"] or ""), status=str(raw["status"]),
                          requester=email, created=created, url=f"{self.base_url}/agent/tickets/{raw['id']}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackendUnavailable(f"zendesk returned an unexpected ticket: {exc!r}") from None


def _zendesk_error(response: requests.Response) -> Optional[BackendError]:
    """Zendesk's error bodies: {"error": "RecordNotFound", "description": "..."}."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    name = error.get("title") if isinstance(error, dict) else error
    if name == "IdempotentRequestError":
        return Conflict("idempotency key reused for a different ticket", code="key_reused",
                        status=response.status_code)
    if name == "RecordNotFound":
        return NotFound("zendesk: not found", status=response.status_code)
    return None


def _field(payload: Any, name: str) -> Any:
    if not isinstance(payload, dict) or name not in payload:
        raise BackendUnavailable(f"zendesk answer lacks {name!r}")
    return payload[name]


def _list(payload: Any, name: str) -> List[Dict[str, Any]]:
    rows = _field(payload, name)
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise BackendUnavailable(f"zendesk returned an unexpected {name} list")
    return rows


def _id(ticket_id: str) -> str:
    if not str(ticket_id).isdigit():
        raise NotFound(f"no ticket {ticket_id!r}")
    return str(int(ticket_id))
