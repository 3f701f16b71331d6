"""Capture for the learning loop, through the real Rasa server: Rasa's SQL event broker
(`event_broker` in the stack's endpoints, as in endpoints.yml) records the conversation, and the
collector turns it into masked customer turns with what the model understood and why a turn is
worth reviewing."""
from __future__ import annotations

from supportbot.learning.collector import Collector, reasons_for
from supportbot.learning.store import LearningStore


def test_turns_reach_the_learning_store_with_the_models_understanding(stack, sender, tmp_path):
    stack.texts(sender, "hi")
    stack.texts(sender, "my card 4111 1111 1111 1111 was charged twice, mail me at jo@example.com")
    assert "handing you over" in stack.texts(sender, "I want to talk to a real person")
    store = LearningStore(f"sqlite:///{tmp_path / 'learning.db'}")
    collector = Collector(store, f"sqlite:///{stack.log_dir / 'events.db'}", stack.store_db_url)
    assert collector.run_once() > 0
    turns = store.turns(sender)
    assert [t.text for t in turns] == [
        "hi", "my card [card number ending 1111] was charged twice, mail me at [email]",
        "I want to talk to a real person"]
    # What the store says is what Rasa's tracker says the model understood.
    tracked = [e for e in stack.tracker(sender)["events"] if e["event"] == "user"]
    model_id = tracked[0]["metadata"]["model_id"]
    for turn, event in zip(turns, tracked):
        ranking = [r for r in event["parse_data"]["intent_ranking"] if r["name"] != "nlu_fallback"]
        assert turn.intent == ranking[0]["name"] and abs(turn.confidence - ranking[0]["confidence"]) < 1e-4
        assert turn.model_id == model_id and turn.channel == "rest"
    # The two turns before the handoff are candidates, whatever else they are.
    for turn in turns[1:]:
        assert "handoff_followed" in turn.reasons
    assert set(turns[0].reasons) == set(reasons_for(turns[0].confidence, turns[0].ranking, turns[0].fell_back))
    # A second run finds nothing new and writes nothing twice.
    assert collector.run_once() == 0 and len(store.turns(sender)) == 3
