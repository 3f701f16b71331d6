"""Resolved tickets and the intent an agent filed them under, read for the learning loop
(`resolved_since`, supportbot/learning/corrections.py): against a real Request Tracker 5 server
(the category in the ticket custom field `Intent`, created here as an RT admin would), and
Zendesk's incremental export against the local fake of its API (fake_zendesk.py; Zendesk's cloud
cannot be reached from here). The embedded queue: tests/unit/test_learning_corrections.py."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
import rt_server
from ticket_backends import make_rt, make_zendesk

from supportbot.learning.corrections import read_tickets
from supportbot.learning.store import LearningStore, TurnRow
from supportbot.store import HandoffStore
from supportbot.ticketing import rt as rt_module
from supportbot.ticketing.http import JsonApi


def a_moment_ago() -> dt.datetime:
    """RT and Zendesk keep whole seconds."""
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=2)).replace(microsecond=0)


@pytest.fixture(scope="module")
def intent_field(rt_url):
    """The ticket custom field agents file a resolved ticket under, applied to every queue."""
    api = JsonApi("rt", rt_url + "/REST/2.0", auth=(rt_server.USER, rt_server.PASSWORD))
    api.request("POST", "/customfield", body={"Name": "Intent", "Type": "Freeform", "MaxValues": 1,
                                               "LookupType": "RT::Queue-RT::Ticket", "Queue": 0})
    return "Intent"


def test_rt_lists_resolved_tickets_with_the_intent_they_were_filed_under(rt_url, intent_field, db_url, customer,
                                                                         key, monkeypatch):
    rt = make_rt(rt_url, db_url)
    since = a_moment_ago()
    ids = [rt.create_ticket(requester=customer, subject=subject, body="b", idempotency_key=key()).id
           for subject in ("Chat handoff H-00000001: customer_request", "no category",
                           "parcel intent:order_status", "still open")]
    rt.set_status(ids[0], "resolved", category="refund_status")
    rt.set_status(ids[1], "resolved")
    rt.set_status(ids[2], "resolved")
    rt.set_status(ids[3], "open", category="cancel_order")
    mine = [t for t in rt.resolved_since(since) if t.id in ids]
    assert [(t.id, t.category, t.status, t.resolved_by) for t in mine] == [
        (ids[0], "refund_status", "resolved", "root"), (ids[1], None, "resolved", "root"),
        (ids[2], "order_status", "resolved", "root")]
    assert all(since <= t.resolved_at <= dt.datetime.now(dt.timezone.utc) for t in mine)
    assert mine[0].subject == "Chat handoff H-00000001: customer_request"
    monkeypatch.setattr(rt_module, "PER_PAGE", 2)  # the same across pages
    assert [t for t in rt.resolved_since(since) if t.id in ids] == mine
    assert {t.id for t in rt.resolved_since()} >= set(ids[:3])
    assert [t.id for t in rt.resolved_since(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1))] == []


def test_an_rt_handoff_ticket_filed_under_another_intent_corrects_the_turn_once(rt_url, intent_field, db_url,
                                                                                customer, key, tmp_path):
    store = LearningStore(f"sqlite:///{tmp_path / 'learning.db'}")
    handoffs = HandoffStore(db_url)
    sender, at = f"c-{uuid.uuid4().hex[:12]}", dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    with store.session() as session, session.begin():  # as the collector stores a conversation
        for i, (text, intent) in enumerate((("my refund never came", "order_status"),
                                            ("a person please", "request_human"))):
            session.add(TurnRow(conversation_id=sender, message_id=f"m{i}", text=text, normalised=text,
                                intent=intent, confidence=0.5, at=at, reasons_json='["handoff_followed"]'))
    record = handoffs.record(conversation_id=sender, idempotency_key=key(), reason="customer_request",
                             customer_id=None, context={})
    rt = make_rt(rt_url, db_url)
    since = a_moment_ago()
    ticket = rt.create_ticket(requester=customer, subject=f"Chat handoff {record.reference}: customer_request",
                              body="b", idempotency_key=key())
    rt.set_status(ticket.id, "resolved", category="refund_status")
    labels = frozenset({"order_status", "refund_status", "request_human"})
    first = read_tickets(store, rt, handoffs, since=since, labels=labels)
    assert first.corrected == 1
    [turn] = [t for t in store.turns(sender) if t.label]
    assert (turn.text, turn.label, turn.label_source) == ("my refund never came", "refund_status", "ticket:rt")
    assert turn.labelled_by == f"ticket {ticket.id} (root)" and "ticket_recategorised" in turn.reasons
    again = read_tickets(store, rt, handoffs, labels=labels)  # from the cursor
    assert (again.read, again.corrected) == (0, 0)


def test_zendesk_solved_tickets_come_from_the_incremental_export_with_their_intent_tag(fake_zendesk, db_url,
                                                                                        customer, key):
    zendesk = make_zendesk(fake_zendesk.url, db_url)
    since = a_moment_ago()
    ids = [zendesk.create_ticket(requester=customer, subject=f"Chat handoff H-0000000{i}: legal", body="b",
                                 tags=["chat-handoff"], idempotency_key=key()).id for i in range(4)]
    fake_zendesk.set_status(int(ids[0]), "solved", tags=["intent:refund_status"], assignee_id=7)
    fake_zendesk.set_status(int(ids[1]), "closed")
    fake_zendesk.set_status(int(ids[2]), "pending", tags=["intent:order_status"])
    fake_zendesk.set_status(int(ids[3]), "solved", tags=["intent:faq/returns"])
    fake_zendesk.export_page_size = 1  # four pages, each asked for with the cursor of the one before
    resolved = zendesk.resolved_since(since)
    assert [(t.id, t.status, t.category, t.resolved_by) for t in resolved] == [
        (ids[0], "solved", "refund_status", "zendesk user 7"), (ids[1], "closed", None, None),
        (ids[3], "solved", "faq/returns", None)]
    assert all(since <= t.resolved_at <= dt.datetime.now(dt.timezone.utc) for t in resolved)
    pages = fake_zendesk.requests_to("GET", "/api/v2/incremental/tickets/cursor.json")
    assert pages[0].query == {"start_time": [str(int(since.timestamp()))]}
    assert [p.query["cursor"][0] for p in pages[1:]] == [f"{int(since.timestamp())}-{n}" for n in (1, 2, 3)]
