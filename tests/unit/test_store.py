"""HandoffStore on SQLite and on the real Postgres server."""
import uuid

import pytest

from supportbot.store import HandoffStore


@pytest.fixture
def store(db_url):
    return HandoffStore(db_url)


def test_record_is_idempotent_per_key_and_keeps_context(store):
    conversation = f"c-{uuid.uuid4().hex}"
    context = {"transcript": [{"from": "customer", "text": "Straße 😀 <b>"}], "slots": {"order_id": "4817263"}}
    first = store.record(conversation_id=conversation, idempotency_key=conversation + "-1",
                         reason="customer_request", customer_id="C-1001", context=context)
    again = store.record(conversation_id=conversation, idempotency_key=conversation + "-1",
                         reason="customer_request", customer_id="C-1001", context=context)
    assert again.id == first.id and first.reference.startswith("H-")
    assert [h.context for h in store.list(conversation_id=conversation)] == [context]
    assert store.resolve(conversation) == 1
    assert store.list(conversation_id=conversation)[0].status == "resolved"
    assert store.resolve(conversation) == 0
