"""Request Tracker 5 over its REST 2.0 API (`/REST/2.0/`), as one RT user (e.g. root).

RT has no idempotency keys, so creates and comments go through our KeyLedger (ledger.py): key ->
ticket id in our own database, and after a crash between RT's answer and our record, a search
for the requester's ticket with the same subject created since the claim. RT has no tags
either: they are written into the ticket's first message. Comments are RT comments (internal,
not mailed to the requester). Customers only ever see tickets whose Requestor they are.
An agent files a resolved ticket under an intent in the ticket custom field `Intent` (or with an
`intent:<name>` marker in the subject), which the learning loop reads. A routed ticket goes to its
team's queue (which an RT admin creates; a queue RT lacks means RT_QUEUE and a warning) with a
numeric Priority (PRIORITY).
"""
from __future__ import annotations

import datetime as dt
import html
import logging
import re
from html.parser import HTMLParser
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple
from urllib.parse import quote

from supportbot.errors import BackendUnavailable, NotFound
from supportbot.ticketing.base import (
    CATEGORY_TAG,
    ResolvedTicket,
    Ticket,
    TicketingAdapter,
    TicketQueue,
    TicketReply,
    after_id,
    check_owner,
    check_priority,
    normal_email,
    request_hash,
)
from supportbot.ticketing.http import JsonApi
from supportbot.ticketing.ledger import KeyLedger

FIELDS = "Subject,Status,Created,Requestor"
RESOLVED_FIELDS = "Subject,Status,Resolved,LastUpdatedBy,CustomFields"
PER_PAGE = 100
SUBJECT_CATEGORY = re.compile(re.escape(CATEGORY_TAG) + r"([\w/+-]+)", re.IGNORECASE)
# RT's priorities are numbers; its default names (PriorityAsString) are Low 0, Medium 50, High 100.
PRIORITY = {"low": 0, "normal": 50, "high": 75, "urgent": 100}

logger = logging.getLogger(__name__)


class RtTicketing(TicketingAdapter):
    name = "rt"

    def __init__(self, base_url: str, user: str, password: str, ledger: KeyLedger, *, queue: str = "General",
                 timeout: float = 5.0, retries: int = 2, stale_after: Optional[float] = None,
                 category_field: str = "Intent", queues: Sequence[str] = ()) -> None:
        self.base_url = base_url.rstrip("/")
        self.api = JsonApi("rt", self.base_url + "/REST/2.0", auth=(user, password), timeout=timeout,
                           retries=retries)
        self.ledger, self.queue, self.category_field = ledger, queue, category_field
        # Every queue it files into (RT_QUEUE and the teams'): where resolved tickets are read.
        self.queues = tuple(dict.fromkeys([queue, *queues]))
        self._known_queues: Set[str] = set()
        # Longer than any one create can take, retries included (see ledger.py).
        self.stale_after = stale_after if stale_after is not None else (retries + 1) * timeout * 2
        self._users: Dict[str, Tuple[str, str]] = {}  # RT user name -> (email, display name)

    def create_ticket(self, *, requester: str, subject: str, body: str, tags: Sequence[str] = (),
                      idempotency_key: str, queue: Optional[TicketQueue] = None,
                      priority: Optional[str] = None) -> Ticket:
        requester = normal_email(requester)
        content = body + (f"\n\nTags: {', '.join(tags)}" if tags else "")
        check_priority(priority)

        def write() -> str:
            payload = {"Queue": self._queue(queue), "Subject": subject, "Requestor": requester,
                       "Content": content, "ContentType": "text/plain"}
            if priority is not None:
                payload["Priority"] = PRIORITY[priority]
            return _text(_field(self.api.request("POST", "/ticket", body=payload), "id"))

        def find(since: dt.datetime) -> Optional[str]:
            return self._find_created(requester, subject, since)

        ticket_id = self.ledger.once(self.name, idempotency_key, request_hash(requester, subject), write,
                                     find=find, stale_after=self.stale_after)
        return self.get_ticket(ticket_id, requester=requester)

    def add_comment(self, ticket_id: str, text: str, *, requester: str, idempotency_key: str) -> None:
        self.get_ticket(ticket_id, requester=requester)  # ownership first

        def write() -> str:
            self.api.request("POST", f"/ticket/{_id(ticket_id)}/comment",
                             body={"Content": text, "ContentType": "text/plain"})
            return str(ticket_id)

        self.ledger.once(self.name + ":comment", idempotency_key, request_hash(str(ticket_id), text), write,
                         stale_after=self.stale_after)

    def get_ticket(self, ticket_id: str, *, requester: str) -> Ticket:
        payload = self.api.request("GET", f"/ticket/{_id(ticket_id)}")
        return check_owner(self._ticket(payload, str(ticket_id)), requester)

    def list_tickets(self, requester: str) -> List[Ticket]:
        query = f"Requestor.EmailAddress = '{_quote(normal_email(requester))}'"
        return [t for t in self._search(query) if t.requester == normal_email(requester)]

    def set_status(self, ticket_id: str, status: str, *, category: Optional[str] = None) -> None:
        """What an agent does in RT's UI (with the category in the custom field); used by the tests."""
        body: Dict[str, Any] = {"Status": status}
        if category is not None:
            body["CustomFields"] = {self.category_field: category}
        self.api.request("PUT", f"/ticket/{_id(ticket_id)}", body=body)

    def move_ticket(self, ticket_id: str, queue: TicketQueue) -> None:
        self.api.request("PUT", f"/ticket/{_id(ticket_id)}", body={"Queue": self._queue(queue)})

    def resolved_since(self, since: Optional[dt.datetime] = None) -> List[ResolvedTicket]:
        queues = " OR ".join(f"Queue = '{_quote(q)}'" for q in self.queues)
        query = f"({queues}) AND Status = 'resolved'"
        if since is not None:  # a day of margin in TicketSQL (the RT user's time zone), then exact in UTC
            query += f" AND Resolved > '{(since - dt.timedelta(days=1)).strftime('%Y-%m-%d %H:%M:%S')}'"
        found = [self._resolved(item) for item in self._pages(query, RESOLVED_FIELDS, "Resolved", "ASC")]
        return sorted((t for t in found if since is None or t.resolved_at >= since),
                      key=lambda t: (t.resolved_at, int(t.id)))

    def replies(self, ticket_id: str, after: Optional[str] = None) -> List[TicketReply]:
        """Correspondence (RT's `Correspond` transactions: what RT mails the requestor) by anyone
        but the ticket's requestors. The bot never corresponds: it creates and comments, and
        comments are internal."""
        since = after_id(after)
        requestors = self._requestors(ticket_id)
        found = []
        for item in self._history(ticket_id):
            try:
                number, kind, creator = int(item["id"]), item["Type"], str(item["Creator"]["id"])
                at = dt.datetime.fromisoformat(str(item["Created"]).replace("Z", "+00:00"))
            except (KeyError, TypeError, ValueError) as exc:
                raise BackendUnavailable(f"rt returned an unexpected transaction: {exc!r}") from None
            if kind != "Correspond" or number <= since:
                continue
            email, name = self._user(creator)
            if email in requestors or normal_email(creator) in requestors:
                continue  # the customer writing by email
            text = self._content(number)
            if text:
                found.append(TicketReply(id=str(number), author=name, text=text, at=at))
        return sorted(found, key=lambda r: int(r.id))

    @property
    def location(self) -> str:
        return f"{self.base_url}#{self.queue}"

    # -- helpers

    def _queue(self, queue: Optional[TicketQueue]) -> str:
        """The RT queue for `queue`: its team's, if RT has it, else RT_QUEUE (logged: an RT admin
        must create it), so that no ticket is lost to a missing queue."""
        wanted = queue.rt_queue if queue is not None and queue.rt_queue else self.queue
        if wanted == self.queue or wanted in self._known_queues:
            return wanted
        names = {str(item.get("Name")) for item in self._pages("", "Name", "Name", "ASC", "/queues/all")}
        self._known_queues |= names
        if wanted in names:
            return wanted
        logger.warning("RT has no queue %r (team %s): the ticket goes to %r. Create the queue in RT "
                       "(docs/ticketing.md#queues-and-priorities).", wanted, queue.team if queue else "-",
                       self.queue)
        return self.queue

    def _find_created(self, requester: str, subject: str, since: dt.datetime) -> Optional[str]:
        # A day of margin in TicketSQL (which reads dates in the RT user's time zone), then exact in UTC.
        after = (since - dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
        query = (f"Requestor.EmailAddress = '{_quote(requester)}' AND Subject = '{_quote(subject)}'"
                 f" AND Created > '{after}'")
        margin = since - dt.timedelta(seconds=60)
        found = [t for t in self._search(query) if t.created >= margin and t.subject == subject]
        return found[0].id if found else None

    def _search(self, query: str) -> List[Ticket]:
        payload = self.api.request("GET", "/tickets", params={
            "query": query, "fields": FIELDS, "orderby": "Created", "order": "DESC", "per_page": "100"})
        items = _field(payload, "items")
        if not isinstance(items, list):
            raise BackendUnavailable("rt returned an unexpected search result")
        return [self._ticket(item, _text(_field(item, "id"))) for item in items]

    def _pages(self, query: str, fields: str, orderby: str, order: str,
               path: str = "/tickets") -> List[Dict[str, Any]]:
        """Every page of a search's results."""
        items: List[Dict[str, Any]] = []
        for page in range(1, 10_000):
            payload = self.api.request("GET", path, params={
                **({"query": query} if query else {}), "fields": fields, "orderby": orderby, "order": order,
                "per_page": str(PER_PAGE), "page": str(page)})
            batch = _field(payload, "items")
            if not isinstance(batch, list) or not all(isinstance(item, dict) for item in batch):
                raise BackendUnavailable("rt returned an unexpected search result")
            items += batch
            if len(batch) < PER_PAGE:
                break
        return items

    def _requestors(self, ticket_id: str) -> Set[str]:
        payload = self.api.request("GET", f"/ticket/{_id(ticket_id)}")
        try:
            return {normal_email(str(r["id"])) for r in payload["Requestor"]}
        except (KeyError, TypeError) as exc:
            raise BackendUnavailable(f"rt returned an unexpected ticket: {exc!r}") from None

    def _history(self, ticket_id: str) -> List[Dict[str, Any]]:
        items: List[Dict[str, Any]] = []
        for page in range(1, 10_000):
            payload = self.api.request("GET", f"/ticket/{_id(ticket_id)}/history", params={
                "fields": "Type,Creator,Created", "per_page": str(PER_PAGE), "page": str(page)})
            batch = _field(payload, "items")
            if not isinstance(batch, list) or not all(isinstance(item, dict) for item in batch):
                raise BackendUnavailable("rt returned an unexpected history")
            items += batch
            if len(batch) < PER_PAGE:
                return items
        return items

    def _user(self, name: str) -> Tuple[str, str]:
        """An RT user's email and the name a customer reads (RealName, else the login)."""
        if name not in self._users:
            payload = self.api.request("GET", f"/user/{quote(name, safe='@.+-_')}")
            if not isinstance(payload, dict):
                raise BackendUnavailable("rt returned an unexpected user")
            real = str(payload.get("RealName") or "").strip()
            self._users[name] = (normal_email(str(payload.get("EmailAddress") or "")), real or name)
        return self._users[name]

    def _content(self, transaction: int) -> str:
        """A transaction's message as text: its text/plain part, else its text/html part made text."""
        payload = self.api.request("GET", f"/transaction/{transaction}/attachments",
                                   params={"fields": "ContentType,Content,Filename", "per_page": "100"})
        parts = [item for item in _field(payload, "items") if isinstance(item, dict) and not item.get("Filename")]
        for kind, as_text in (("text/plain", str), ("text/html", html_text)):
            for part in parts:
                if str(part.get("ContentType", "")).lower() == kind and str(part.get("Content") or "").strip():
                    return as_text(str(part["Content"])).strip()
        return ""

    def _resolved(self, item: Dict[str, Any]) -> ResolvedTicket:
        try:
            subject = str(item["Subject"])
            fields = {cf.get("name"): cf.get("values") or [] for cf in item.get("CustomFields") or []}
            named = [str(v).strip() for v in fields.get(self.category_field, []) if str(v).strip()]
            in_subject = SUBJECT_CATEGORY.findall(subject)
            by = item.get("LastUpdatedBy")
            return ResolvedTicket(
                id=_text(item["id"]), subject=subject, status=str(item["Status"]),
                category=named[0] if named else (in_subject[-1] if in_subject else None),
                resolved_at=dt.datetime.fromisoformat(str(item["Resolved"]).replace("Z", "+00:00")),
                resolved_by=str(by.get("id")) if isinstance(by, dict) else None)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackendUnavailable(f"rt returned an unexpected ticket: {exc!r}") from None

    def _ticket(self, payload: Any, ticket_id: str) -> Ticket:
        try:
            requestors = [normal_email(r["id"]) for r in payload["Requestor"]]
            return Ticket(id=str(payload.get("id") or ticket_id), subject=str(payload["Subject"]),
                          status=str(payload["Status"]), requester=requestors[0] if requestors else "",
                          created=dt.datetime.fromisoformat(str(payload["Created"]).replace("Z", "+00:00")),
                          url=f"{self.base_url}/Ticket/Display.html?id={ticket_id}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackendUnavailable(f"rt returned an unexpected ticket: {exc!r}") from None


def _field(payload: Any, name: str) -> Any:
    if not isinstance(payload, dict) or name not in payload:
        raise BackendUnavailable(f"rt answer lacks {name!r}")
    return payload[name]


def _text(value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise BackendUnavailable("rt returned an unexpected id")
    return str(value)


def _id(ticket_id: str) -> str:
    """Ticket ids are numbers; anything else cannot name a ticket (and must not reach a URL)."""
    if not str(ticket_id).isdigit():
        raise NotFound(f"no ticket {ticket_id!r}")
    return str(int(ticket_id))


class _Text(HTMLParser):
    BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: List[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(markup: str) -> str:
    """RT's rich-text correspondence as the plain text a chat shows."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in html.unescape("".join(parser.parts)).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _quote(value: str) -> str:
    """A TicketSQL string literal's content."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
