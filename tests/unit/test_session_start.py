"""A new session keeps what the customer told us, but not who they are nor anything still
waiting for their yes (actions/identity.py, NOT_CARRIED_OVER)."""
from __future__ import annotations

import asyncio

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.identity import ActionSessionStart

PENDING = {
    "refund_quote": {"order_id": "4817264", "amount": "49.99"},
    "subscription_step": "confirm",
    "subscription_pending": {"subscription_id": "S-1001"},
    "plan_change_quote": {"subscription_id": "S-1001", "plan": "premium"},
    "order_change_pending": {"order_id": "4817265", "kind": "cancel"},
}


def test_new_session_drops_identity_and_pending_confirmations():
    slots = {"customer_id": "C-1001", "customer_verified": True, "email": "alice@example.com",
             "order_id": "4817265", "retention_offered": True, **PENDING}
    tracker = Tracker("s", slots, {}, [], False, None, {}, "action_listen")
    events = asyncio.run(ActionSessionStart().run(CollectingDispatcher(), tracker, {}))
    carried = {e["name"] for e in events if e.get("event") == "slot"}
    assert carried == {"order_id", "retention_offered"}
