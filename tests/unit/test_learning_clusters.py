"""Fallback clusters (supportbot/learning/clusters.py, `supportbot learn clusters`): paraphrases of
two goals the training data has no intent for are grouped apart and named, a lone message and
one an intent explains are left out, and `learn accept --label <new> --new-intent` labels them
(never without the flag). Real encoder, SQLite and Postgres."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from supportbot import cli
from supportbot.learning import clusters, noise
from supportbot.learning.store import LearningStore, TurnRow

REPO = Path(__file__).resolve().parents[2]
ENGRAVING = ["can you engrave my name on the watch", "do you do engraving on jewellery",
             "I'd like a personalised engraving on the bracelet", "is engraving possible on rings"]
SHOPS = ["do you have a store in Berlin", "is there a physical shop I can visit",
         "where is your nearest shop", "can I visit one of your stores in person"]
TRAINING_INTENTS = ("order_status", "request_refund", "reset_password")


@pytest.fixture(scope="module")
def training():
    """A slice of the real training data: enough for "explained", quick to embed."""
    examples = noise.data_examples(REPO / "data" / "nlu")
    return [e for label in TRAINING_INTENTS for e in [x for x in examples if x.label == label][:30]]


@pytest.fixture
def store(db_url):
    store = LearningStore(db_url)
    with store.session() as session, session.begin():  # Postgres is shared between tests
        session.query(TurnRow).delete()
    return store


def add_turn(store: LearningStore, text: str, reasons: str = '["fallback"]', label=None, status="new") -> int:
    with store.session() as session, session.begin():
        row = TurnRow(conversation_id=f"c-{uuid.uuid4().hex}", message_id="m", text=text, normalised=text.lower(),
                      intent="out_of_scope", confidence=0.3, at=datetime.now(timezone.utc), reasons_json=reasons,
                      label=label, status=status)
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture
def candidates(store):
    engraving = [add_turn(store, text) for text in ENGRAVING]
    shops = [add_turn(store, text, '["close_call", "low_confidence"]') for text in SHOPS]
    left_out = {
        "alone": add_turn(store, "my cat is sick"),
        "explained": add_turn(store, "where's my parcel at"),  # order_status has "where's my parcel"
        "labelled": add_turn(store, "can you engrave the back of the ring", '["clarified", "fallback"]',
                             label="faq/gift_cards"),
        "reviewed": add_turn(store, "engraving on a pendant?", status="rejected"),
        "sure": add_turn(store, "engrave my initials on it please", '["voted_down"]'),
    }
    return engraving, shops, left_out


def test_two_unseen_goals_are_grouped_apart_and_named(store, candidates, training):
    engraving, shops, left_out = candidates
    found = clusters.find_clusters(store, training, min_size=2)
    assert [c.ids for c in found] == [engraving, shops]
    assert found[0].name == "engrave"
    assert {"store", "shop"} <= set(found[1].name.split("_"))
    clustered = {i for c in found for i in c.ids}
    assert not clustered & set(left_out.values())


def test_min_size_hides_smaller_groups(store, training):
    ids = [add_turn(store, text) for text in ENGRAVING[:2] + SHOPS]
    assert [c.ids for c in clusters.find_clusters(store, training, min_size=3)] == [ids[2:]]


def test_the_suggested_name_is_the_words_most_messages_share():
    assert clusters.suggest_name(["gift wrap for my order?", "can you gift wrap it", "wrapping paper for a gift",
                                  "hi, [email] here"]) == "gift_wrap"
    assert clusters.suggest_name(["hello", "thanks"]) == "new_intent"


def test_cli_lists_clusters_then_accepts_a_new_intent_only_with_the_flag(store, candidates, training, tmp_path,
                                                                         capsys, monkeypatch):
    engraving, _, _ = candidates
    data = tmp_path / "nlu"
    data.mkdir()
    body = "".join(f"- intent: {label}\n  examples: |\n" + "".join(f"    - {e.text}\n" for e in training
                                                                   if e.label == label)
                   for label in TRAINING_INTENTS)
    (data / "nlu.yml").write_text(f'version: "3.1"\nnlu:\n{body}', encoding="utf-8")
    db = ["--db", store.db_url]
    assert cli.main(["learn", "clusters", "--data", str(data), "--min-size", "4", *db]) == 0
    printed = capsys.readouterr().out
    ids = " ".join(map(str, engraving))
    assert f"== engrave: 4 messages [{ids}]" in printed and "my cat is sick" not in printed
    assert f"supportbot learn accept {ids} --label engrave --new-intent" in printed

    monkeypatch.chdir(REPO)  # known_labels() reads domain/ and data/
    accept = ["learn", "accept", *map(str, engraving), "--label", "engraving", *db]
    assert cli.main(accept) == 2
    assert "unknown intent 'engraving'" in capsys.readouterr().err
    assert {t.status for t in store.turns() if t.id in engraving} == {"new"}
    assert cli.main([*accept, "--new-intent"]) == 0
    printed = capsys.readouterr().out
    assert "4 accepted" in printed and "engraving is a new intent: add it to a file in domain/" in printed
    assert {(t.status, t.label) for t in store.turns() if t.id in engraving} == {("accepted", "engraving")}


@pytest.mark.parametrize("arguments, message", [
    (["--new-intent"], "--new-intent needs --label"),
    (["--label", "Engraving!", "--new-intent"], "'Engraving!' cannot be an intent name"),
    (["--label", "engravng"], "unknown intent 'engravng' (intents as in domain/, FAQ topics as faq/<topic>); "
                              "for a new intent, add --new-intent"),
])
def test_cli_refuses_a_bad_new_intent(store, arguments, message, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    turn = add_turn(store, "can you engrave my name on the watch")
    assert cli.main(["learn", "accept", str(turn), *arguments, "--db", store.db_url]) == 2
    assert message in capsys.readouterr().err
    assert store.turns()[0].status == "new"


def test_cli_refuses_an_empty_store(store, capsys):
    assert cli.main(["learn", "clusters", "--db", store.db_url]) == 2
    assert "the learning store has no turns at all: check --db" in capsys.readouterr().err


def test_cli_says_when_nothing_clusters(store, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    add_turn(store, "hello", "[]")  # not a candidate
    assert cli.main(["learn", "clusters", "--db", store.db_url]) == 0
    assert "No group of 3 or more fallback messages" in capsys.readouterr().out
