"""Labelled history in (`learn import`), the review queue and its decisions, and the export to
Rasa NLU YAML, on SQLite and the real Postgres server."""
from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

from supportbot.learning import export, imports, review
from supportbot.learning.labels import known_labels
from supportbot.learning.store import LearningStore, TurnRow

REPO = Path(__file__).resolve().parents[2]
LABELS = known_labels(REPO / "domain", REPO / "data")


@pytest.fixture
def store(db_url):
    store = LearningStore(db_url)
    with store.session() as session, session.begin():  # Postgres is shared between tests
        session.query(TurnRow).delete()
    return store


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_known_labels_are_the_domains_intents_and_faq_topics():
    assert {"order_status", "request_refund", "out_of_scope", "faq/refund_policy", "faq/gift_cards"} <= LABELS
    assert not {"nlu_fallback", "faq", "greet+order_status"} & LABELS


def test_import_masks_skips_duplicates_and_names_sources(store, tmp_path):
    path = write_csv(tmp_path / "tickets.csv",
                     "text,intent,source\n"
                     "where is my parcel,order_status,zendesk\n"
                     "Where is my parcel?!,order_status,zendesk\n"  # a near-duplicate
                     '"my card 4111 1111 1111 1111 got charged, jo@example.com",dispute_charge,\n'
                     "what's your refund policy,faq/refund_policy,zendesk\n"
                     "Ünïcödé 😀 where's my stuff,order_status,zendesk\n")
    result = imports.import_csv(store, path, LABELS)
    assert (result.imported, result.duplicates, result.sources) == (4, 1, {"zendesk", "tickets"})
    texts = {t.text: (t.label, t.label_source) for t in store.turns()}
    assert texts["my card [card number ending 1111] got charged, [email]"] == ("dispute_charge", "tickets")
    assert texts["what's your refund policy"] == ("faq/refund_policy", "zendesk")
    again = imports.import_csv(store, path, LABELS)  # the same file twice: nothing new
    assert (again.imported, again.duplicates) == (0, 5) and len(store.turns()) == 4


@pytest.mark.parametrize("content, encoding, problem", [
    ("text,intent\nhello there,greet\nwhere is it,order_stauts\n", "utf-8",
     "line 3: unknown intent 'order_stauts'"),
    ("text,intent\nhello there,greet\n  ,order_status\n", "utf-8", "line 3: the text is empty"),
    ("text,label\nwhere is it,order_status\n", "utf-8", "the header must name the columns text and intent"),
    ("text,intent\nok,greet\ncafé crème,greet\n", "latin-1", "line 3 is not UTF-8"),
    ("text,intent\n", "utf-8", "no rows under the header"),
    ("text,intent\nhello there,greet\n" + "x" * 2001 + ",greet\n", "utf-8", "2001 characters"),
])
def test_a_bad_file_is_refused_whole_and_nothing_is_written(store, tmp_path, content, encoding, problem):
    with pytest.raises(imports.ImportRejected, match=problem):
        imports.import_csv(store, write_csv(tmp_path / "bad.csv", content, encoding), LABELS)
    assert store.turns() == []


@pytest.mark.slow  # about 10 s per database
def test_a_100k_row_file(store, tmp_path):
    rows = "".join(f"message number {i} about my order,order_status\n" for i in range(100_000))
    path = write_csv(tmp_path / "big.csv", "text,intent\n" + rows)
    assert imports.import_csv(store, path, LABELS).imported == 100_000


def _candidate(store, text, intent, confidence, reasons='["low_confidence"]', label=None):
    with store.session() as session, session.begin():
        row = TurnRow(conversation_id=f"c-{uuid.uuid4().hex}", message_id="m", text=text,
                      normalised=text.lower().strip("?! "), intent=intent, confidence=confidence,
                      at=review.datetime.now(review.timezone.utc), reasons_json=reasons, label=label)
        session.add(row)
        session.flush()
        return row.id


def test_queue_groups_collapses_and_orders_by_value(store):
    a1 = _candidate(store, "where is it", "order_status", 0.3)
    a2 = _candidate(store, "Where is it?", "order_status", 0.5)
    b = _candidate(store, "parcel late", "order_status", 0.9)
    c = _candidate(store, "my thing broke", "report_bug", 0.55, label="complaint")
    _candidate(store, "hello", "greet", 0.99, reasons="[]")  # not a candidate
    groups = review.queue(store)
    assert list(groups) == ["order_status", "complaint"]
    first, second = groups["order_status"]
    assert [t.id for t in first.turns] == [a1, a2] and first.value == pytest.approx(2 * 0.6)
    assert [t.id for t in second.turns] == [b]
    assert [t.id for e in groups["complaint"] for t in e.turns] == [c]


def test_decisions_and_their_errors(store):
    ids = [_candidate(store, f"text {i}", "order_status", 0.4) for i in range(4)]
    assert review.decide(store, ids[:1], review.ACCEPTED, LABELS) == 1
    assert review.decide(store, ids[1:2], review.ACCEPTED, LABELS, label="cancel_order") == 1
    assert review.decide(store, ids[2:3], review.REJECTED, LABELS) == 1
    assert review.decide(store, ids[3:4], review.OUT_OF_SCOPE, LABELS) == 1
    turns = {t.id: t for t in store.turns()}
    assert [(turns[i].status, turns[i].label) for i in ids] == [
        ("accepted", "order_status"), ("accepted", "cancel_order"), ("rejected", None),
        ("out_of_scope", "out_of_scope")]
    with pytest.raises(review.ReviewError, match="already reviewed"):
        review.decide(store, ids[:1], review.REJECTED, LABELS)
    with pytest.raises(review.ReviewError, match="unknown intent 'nope'"):
        review.decide(store, [_candidate(store, "x", "greet", 0.4)], review.ACCEPTED, LABELS, label="nope")


def test_two_accepts_of_one_item_at_once_change_it_once(store, db_url):
    item = _candidate(store, "refund me", "request_refund", 0.4)
    outcomes = []

    def accept(label):
        try:
            outcomes.append(review.decide(LearningStore(db_url), [item], review.ACCEPTED, LABELS, label=label))
        except review.ReviewError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=accept, args=(label,)) for label in ("request_refund", "refund_status")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str) == [1, "already reviewed: nothing changed"]
    [turn] = store.turns()
    assert turn.status == "accepted" and turn.label in ("request_refund", "refund_status")


def test_accept_all_takes_only_labelled_items(store, tmp_path):
    imports.import_csv(store, write_csv(tmp_path / "a.csv", "text,intent\nbye now,goodbye\n"), LABELS,
                       source="helpdesk")
    guess = _candidate(store, "maybe a refund", "request_refund", 0.4)
    assert review.accept_all(store, LABELS, source="helpdesk") == 1
    assert {t.id: t.status for t in store.turns()}[guess] == "new"


def test_export_writes_rasa_yaml_with_sources_and_a_stable_heldout_share(store, tmp_path):
    texts = [f"please help with delivery question {i}" for i in range(60)] + ["where is my order?"]
    path = write_csv(tmp_path / "h.csv", "text,intent\n" + "".join(f"{t},order_status\n" for t in texts))
    imports.import_csv(store, path, LABELS, source="helpdesk")
    review.accept_all(store, LABELS)
    data = tmp_path / "data"
    (data / "nlu").mkdir(parents=True)
    (data / "nlu" / "orders.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: order_status\n  examples: |\n    - Where is my [order](x)\n')
    training, heldout = data / "nlu" / "learned" / "learned.yml", tmp_path / "tests" / "heldout.yml"
    result = export.export(store, data, training, heldout)
    assert result.training + result.heldout + result.already_in_data == 61
    assert 6 <= result.heldout <= 20 and result.already_in_data == (0 if export.is_heldout(texts[-1]) else 1)
    trained = RasaYAMLReader().read(training)
    held = RasaYAMLReader().read(heldout)
    assert len(trained.intent_examples) == result.training and len(held.intent_examples) == result.heldout
    sources = {m.get("metadata", {}).get("example", {}).get("source") for m in trained.intent_examples}
    assert sources == {"helpdesk"}
    assert not {m.get("text") for m in trained.intent_examples} & {m.get("text") for m in held.intent_examples}
    before = training.read_text()
    export.export(store, data, training, heldout)
    assert training.read_text() == before  # same store, same file
