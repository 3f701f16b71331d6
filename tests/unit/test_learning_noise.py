"""The label-noise check (supportbot/learning/noise.py, `supportbot learn noise`): examples planted
with a wrong label among real training examples are found and ranked first, with the right label
suggested; what it reads from data/nlu and the learning store; bad inputs. Real encoder, real
cleanlab, SQLite and Postgres."""
from __future__ import annotations

import csv
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from supportbot import cli
from supportbot.learning import noise
from supportbot.learning.store import LearningStore, TurnRow

REPO = Path(__file__).resolve().parents[2]
INTENTS = ["order_status", "request_refund", "reset_password", "cancel_subscription"]
CLEAN_PER_INTENT = 25


@pytest.fixture(scope="module")
def real_examples() -> Dict[str, List[noise.Example]]:
    by_label: Dict[str, List[noise.Example]] = {}
    for example in noise.data_examples(REPO / "data" / "nlu"):
        by_label.setdefault(example.label, []).append(example)
    return by_label


@pytest.fixture(scope="module")
def planted_set(real_examples):
    """25 real examples of each of four intents, and one more of each given the next intent's label."""
    clean = [e for label in INTENTS for e in real_examples[label][:CLEAN_PER_INTENT]]
    wrong = dict(zip(INTENTS, INTENTS[1:] + INTENTS[:1]))
    planted = [noise.Example(real_examples[label][CLEAN_PER_INTENT].text, wrong[label], "planted")
               for label in INTENTS]
    return clean, planted


@pytest.fixture
def store(db_url):
    store = LearningStore(db_url)
    with store.session() as session, session.begin():  # Postgres is shared between tests
        session.query(TurnRow).delete()
    return store


def add_turn(store: LearningStore, text: str, label: str, status: str) -> int:
    with store.session() as session, session.begin():
        row = TurnRow(conversation_id=f"c-{uuid.uuid4().hex}", message_id="m", text=text, normalised=text.lower(),
                      intent=label, confidence=0.4, at=datetime.now(timezone.utc), reasons_json='["fallback"]',
                      label=label, status=status)
        session.add(row)
        session.flush()
        return row.id


def write_nlu(folder: Path, examples: List[noise.Example]) -> Path:
    by_label: Dict[str, List[str]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example.text)
    nlu = [{"intent": label, "examples": "".join(f"- {text}\n" for text in texts)}
           for label, texts in by_label.items()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nlu.yml").write_text(yaml.safe_dump({"version": "3.1", "nlu": nlu}, sort_keys=False),
                                    encoding="utf-8")
    return folder


def test_planted_mislabels_are_found_first_with_the_right_label_suggested(planted_set):
    clean, planted = planted_set
    report = noise.find_issues(clean + planted)
    assert report.checked == len(clean) + len(planted) and report.labels == 4 and report.too_few == {}
    found = report.issues[:len(planted)]
    assert {i.example for i in found} == set(planted)
    original = {e.text: label for e, label in zip(planted, INTENTS)}
    assert all(i.suggested == original[i.example.text] for i in found)
    assert len(report.issues) <= len(planted) + 2  # real examples are not flagged wholesale
    confidences = [i.self_confidence for i in report.issues]
    assert confidences == sorted(confidences) and confidences[0] < 0.2


def test_the_same_data_gives_the_same_ranking(planted_set):
    clean, planted = planted_set
    examples = clean + planted
    vectors = noise.embed([e.text for e in examples])
    assert noise.find_issues(examples, vectors) == noise.find_issues(examples, vectors)


def test_data_examples_read_intents_faq_topics_and_plain_text(tmp_path):
    (tmp_path / "nlu.yml").write_text(
        'version: "3.1"\nnlu:\n'
        "- intent: order_status\n  examples: |\n"
        "    - where is order [4817263](order_id)\n    - where's my parcel\n"
        "- intent: faq/refund_policy\n  examples: |\n    - what's your refund policy\n"
        "- intent: greet+order_status\n  examples: |\n    - hi, where is my order\n"
        "- regex: order_id\n  examples: |\n    - \\d{7}\n", encoding="utf-8")
    examples = noise.data_examples(tmp_path)
    origin = str(tmp_path / "nlu.yml")
    assert examples == [noise.Example("where is order 4817263", "order_status", origin),
                        noise.Example("where's my parcel", "order_status", origin),
                        noise.Example("what's your refund policy", "faq/refund_policy", origin)]


def test_accepted_store_items_join_the_data_once(store, tmp_path):
    data = write_nlu(tmp_path / "nlu", [noise.Example("where's my parcel", "order_status", ""),
                                        noise.Example("refund please", "request_refund", "")])
    accepted = add_turn(store, "Where's my parcel?", "order_status", "accepted")  # the same text and label
    relabelled = add_turn(store, "refund please", "refund_status", "accepted")  # the same text, another label
    add_turn(store, "pending item", "order_status", "new")
    add_turn(store, "rejected item", "order_status", "rejected")
    examples = noise.training_examples(store, data)
    assert [(e.text, e.label, e.origin) for e in examples] == [
        ("Where's my parcel?", "order_status", f"learning store #{accepted}"),
        ("refund please", "refund_status", f"learning store #{relabelled}"),
        ("refund please", "request_refund", str(data / "nlu.yml"))]


def test_cli_writes_the_ranked_csv(store, planted_set, tmp_path, capsys):
    clean, planted = planted_set
    data = write_nlu(tmp_path / "nlu", clean + planted + [noise.Example("hello there", "greet", "")])
    out = tmp_path / "out" / "noise.csv"
    assert cli.main(["learn", "noise", "--db", store.db_url, "--data", str(data), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == ["text", "given_label", "suggested_label", "self_confidence", "source"]
    assert {r["text"] for r in rows[:len(planted)]} == {e.text for e in planted}
    assert all(r["source"] == str(data / "nlu.yml") for r in rows)
    printed = capsys.readouterr().out
    assert f"{len(rows)} suspicious of {len(clean) + len(planted)} examples (4 labels" in printed
    assert "Not checked, fewer examples than folds: greet (1)" in printed
    assert planted[0].text in printed


def test_cli_refuses_data_with_one_label(store, tmp_path, capsys):
    data = write_nlu(tmp_path / "nlu", [noise.Example(f"where is order {i}", "order_status", "")
                                        for i in range(9)])
    out = tmp_path / "noise.csv"
    assert cli.main(["learn", "noise", "--db", store.db_url, "--data", str(data), "--out", str(out)]) == 2
    assert "nothing to check: 1 label(s) with at least 5 examples" in capsys.readouterr().err
    assert not out.exists()


def test_too_few_folds_is_refused():
    with pytest.raises(noise.NoiseError, match="--folds must be at least 2"):
        noise.find_issues([noise.Example("a", "x", "")], folds=1)
