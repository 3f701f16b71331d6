"""A local HTTP server answering like Zendesk Support API v2, for contract tests of the Zendesk
adapter (Zendesk's cloud cannot be reached here). Bodies are the recorded-shape fixtures in
fixtures/zendesk/ with ids, subjects, requesters and times filled in; it keeps tickets in memory,
replays creates by Idempotency-Key as Zendesk documents, and can be told to fail or stall.
"""
from __future__ import annotations

import copy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures" / "zendesk"
AGENT_ID = 76872


def fixture(name: str) -> Dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Seen:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: Any


@dataclass
class FakeZendesk:
    tickets: Dict[int, Dict[str, Any]] = field(default_factory=dict)
    comments: Dict[int, List[Dict[str, Any]]] = field(default_factory=dict)
    users: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # by email
    # Idempotency-Key -> (request body, status, answer)
    replies: Dict[str, Tuple[str, int, Dict[str, Any]]] = field(default_factory=dict)
    seen: List[Seen] = field(default_factory=list)
    faults: List[Tuple[Optional[str], int, Dict[str, str], Dict[str, Any]]] = field(default_factory=list)
    stall: float = 0.0
    export_page_size: int = 1000  # tickets per page of the incremental export, as Zendesk's
    comment_page_size: int = 100  # at most this many comments a page, whatever page[size] asks
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeZendesk:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            do_POST = do_PUT = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, status: int, times: int = 1, headers: Optional[Dict[str, str]] = None,
                  body: Optional[Dict[str, Any]] = None, method: Optional[str] = None) -> None:
        """Answer the next `times` requests (with `method`, if given) with `status` and `body`."""
        self.faults += [(method, status, headers or {}, body or {"error": "ServerError"})] * times

    def set_status(self, ticket_id: int, status: str, tags: Optional[List[str]] = None,
                   assignee_id: Optional[int] = None) -> None:
        """What an agent does in Zendesk: a new status, maybe tags and an assignee; a new updated_at."""
        ticket = self.tickets[ticket_id]
        ticket.update(status=status, updated_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        ticket["tags"] = ticket["tags"] + [t for t in tags or [] if t not in ticket["tags"]]
        if assignee_id is not None:
            ticket["assignee_id"] = assignee_id

    def reply(self, ticket_id: int, agent: str, text: str, public: bool = True) -> None:
        """What an agent does in Zendesk: a comment on the ticket, public or an internal note."""
        email = agent.lower().replace(" ", ".") + "@support.example"
        with self.lock:
            if email not in self.users:
                self._user(email, agent, role="agent")
            self._comment(ticket_id, text, self.users[email]["id"], public)

    def requests_to(self, method: str, path_pattern: str) -> List[Seen]:
        return [s for s in self.seen if s.method == method and re.fullmatch(path_pattern, s.path)]

    # -- the API

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        seen = Seen(handler.command, parts.path, parse_qs(parts.query), dict(handler.headers.items()),
                    json.loads(raw) if raw else None)
        with self.lock:
            self.seen.append(seen)
            fault = next((f for f in self.faults if f[0] in (None, seen.method)), None)
            if fault:
                self.faults.remove(fault)
        if self.stall:
            time.sleep(self.stall)
        if fault:
            return _send(handler, fault[1], fault[3], fault[2])
        if not handler.headers.get("Authorization", "").startswith("Basic "):
            return _send(handler, 401, {"error": "Couldn't authenticate you"})
        with self.lock:
            status, body, headers = self._route(seen)
        _send(handler, status, body, headers)

    def _route(self, req: Seen) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
        if req.method == "POST" and req.path == "/api/v2/tickets.json":
            return self._create(req)
        match = re.fullmatch(r"/api/v2/tickets/(\d+)\.json", req.path)
        if match and int(match[1]) in self.tickets:
            ticket = self.tickets[int(match[1])]
            if req.method == "PUT" and "comment" not in req.body["ticket"]:  # a move to another group
                ticket["group_id"] = req.body["ticket"].get("group_id", ticket["group_id"])
                return 200, {"ticket": ticket, "audit": {"ticket_id": ticket["id"], "events": []}}, {}
            if req.method == "PUT":
                comment = req.body["ticket"]["comment"]
                self._comment(ticket["id"], comment["body"], comment.get("author_id", AGENT_ID),
                              comment.get("public", True))
                if ticket["status"] == "new":
                    ticket["status"] = "open"
                return 200, {"ticket": ticket, "audit": {"ticket_id": ticket["id"], "events": []}}, {}
            users = [u for u in self.users.values() if u["id"] == ticket["requester_id"]]
            return 200, {"ticket": ticket, "users": users}, {}
        match = re.fullmatch(r"/api/v2/tickets/(\d+)/comments\.json", req.path)
        if req.method == "GET" and match and int(match[1]) in self.tickets:
            return self._comments(req, int(match[1]))
        if req.method == "GET" and req.path == "/api/v2/users/me.json":
            return 200, {"user": self._me()}, {}
        if req.method == "GET" and req.path == "/api/v2/incremental/tickets/cursor.json":
            return self._export(req)
        if req.method == "GET" and req.path == "/api/v2/users/search.json":
            email = req.query["query"][0].removeprefix("email:")
            found = [self.users[email]] if email in self.users else []
            return 200, {"users": found, "next_page": None, "previous_page": None, "count": len(found)}, {}
        match = re.fullmatch(r"/api/v2/users/(\d+)/tickets/requested\.json", req.path)
        if req.method == "GET" and match:
            rows = sorted((t for t in self.tickets.values() if t["requester_id"] == int(match[1])),
                          key=lambda t: (t["created_at"], t["id"]), reverse=True)
            return 200, {"tickets": rows, "next_page": None, "previous_page": None, "count": len(rows)}, {}
        return 404, fixture("error_not_found.json"), {}

    def _export(self, req: Seen) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
        """Incremental ticket export, cursor based: tickets updated since start_time, oldest first;
        the cursor here is simply the offset into that list."""
        if "cursor" in req.query:
            start_time, offset = (int(part) for part in req.query["cursor"][0].split("-"))
        else:
            start_time, offset = int(req.query["start_time"][0]), 0
        updated = sorted((t for t in self.tickets.values() if _unix(t["updated_at"]) >= start_time),
                         key=lambda t: (t["updated_at"], t["id"]))
        page = updated[offset: offset + self.export_page_size]
        after = f"{start_time}-{offset + len(page)}"
        return 200, {"tickets": page, "after_cursor": after, "before_cursor": None, "before_url": None,
                     "after_url": f"{self.url}/api/v2/incremental/tickets/cursor.json?cursor={after}",
                     "end_of_stream": offset + len(page) >= len(updated)}, {}

    def _comments(self, req: Seen, ticket_id: int) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
        """List Comments, cursor paginated (the cursor here is simply the offset)."""
        size = min(int(req.query.get("page[size]", ["100"])[0]), self.comment_page_size)
        offset = int(req.query.get("page[after]", ["0"])[0])
        rows = self.comments[ticket_id]
        if req.query.get("sort_order", ["asc"])[0] == "desc":
            rows = rows[::-1]
        page = rows[offset: offset + size]
        more = offset + size < len(rows)
        authors = {c["author_id"] for c in page}
        users = [u for u in [*self.users.values(), self._me()] if u["id"] in authors]
        return 200, {"comments": page, "users": users if "users" in req.query.get("include", [""])[0] else [],
                     "meta": {"has_more": more, "after_cursor": str(offset + size) if more else None,
                              "before_cursor": None}, "links": {"next": None, "prev": None}}, {}

    def _comment(self, ticket_id: int, text: str, author_id: int, public: bool) -> None:
        comment = fixture("comment.json")
        comment.update(id=1274 + sum(len(c) for c in self.comments.values()), author_id=author_id, body=text,
                       html_body=f"<p>{text}</p>", plain_body=text, public=public,
                       created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.comments[ticket_id].append(comment)

    def _user(self, email: str, name: str, role: str = "end-user") -> Dict[str, Any]:
        user = fixture("user.json")
        user.update(id=20978392 + len(self.users), email=email, name=name, role=role,
                    url=f"https://example.zendesk.com/api/v2/users/{20978392 + len(self.users)}.json")
        self.users[email] = user
        return user

    @staticmethod
    def _me() -> Dict[str, Any]:
        """The agent the adapter authenticates as (agent@example.com in ticket_backends.py)."""
        user = fixture("user.json")
        user.update(id=AGENT_ID, email="agent@example.com", name="Support Bot", role="admin",
                    url=f"https://example.zendesk.com/api/v2/users/{AGENT_ID}.json")
        return user

    def _create(self, req: Seen) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
        key = req.headers.get("Idempotency-Key")
        body_text = json.dumps(req.body, sort_keys=True)
        if key and key in self.replies:
            first_body, status, answer = self.replies[key]
            if first_body != body_text:
                return 400, fixture("error_idempotency.json"), {}
            return status, answer, {"x-idempotency-lookup": "hit"}
        data = req.body["ticket"]
        if data.get("priority") not in (None, "low", "normal", "high", "urgent"):
            return 422, {"error": "RecordInvalid", "description": "Record validation errors"}, {}
        email = data["requester"]["email"]
        if email not in self.users:
            self._user(email, data["requester"].get("name", email))
        ticket_id = 35436 + len(self.tickets)
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        ticket = copy.deepcopy(fixture("ticket.json"))
        ticket.update(id=ticket_id, url=f"https://example.zendesk.com/api/v2/tickets/{ticket_id}.json",
                      subject=data["subject"], raw_subject=data["subject"], description=data["comment"]["body"],
                      requester_id=self.users[email]["id"], submitter_id=AGENT_ID, tags=data.get("tags", []),
                      created_at=now, updated_at=now, status="new", priority=data.get("priority"),
                      group_id=data.get("group_id"))
        self.tickets[ticket_id] = ticket
        self.comments[ticket_id] = []
        # Created by an agent for the requester: the first comment is the requester's.
        self._comment(ticket_id, data["comment"]["body"], self.users[email]["id"], True)
        answer = {"ticket": ticket, "audit": {"ticket_id": ticket_id, "events": []}}
        if key:
            self.replies[key] = (body_text, 201, answer)
        return 201, answer, {"x-idempotency-lookup": "miss"} if key else {}


def _unix(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def _send(handler: BaseHTTPRequestHandler, status: int, body: Dict[str, Any], headers: Dict[str, str]) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)
