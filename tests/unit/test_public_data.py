"""The public-data mapping, split, importer and report scoring, on small files written here
(the real data sets are read only by `make train` and the report, never by these tests)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from supportbot.public_data import importer
from supportbot.public_data.mapping import load_mapping, parse_mapping, unknown_targets
from supportbot.public_data.report import score
from supportbot.public_data.split import (
    TRAINING,
    VALIDATION,
    PublicRow,
    bucket,
    is_validation,
    normalise,
    public_rows,
    training_pool,
    validation_slice,
)

MAPPING = {"sources": {
    "banking77": {"file": "banking77/train.csv", "validation_fraction": 0.2, "licence": "CC BY 4.0",
                  "intents": {"request_refund": "request_refund", "exchange_rate": "skip",
                              "terminate_account": {"to": "delete_account", "why": "close my account"}}},
    "clinc150": {"file": "clinc150/data_train_val.json", "licence": "CC BY 3.0",
                 "training_splits": ["train", "oos_train"], "validation_splits": ["val", "oos_val"],
                 "intents": {"greeting": "greet", "weather": "out_of_scope", "oos": "out_of_scope",
                             "balance": "skip"}}}}


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    (tmp_path / "banking77").mkdir()
    with open(tmp_path / "banking77" / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        for i in range(200):
            writer.writerow([f"I want a refund for item {i}", "request_refund"])
            writer.writerow([f"close account number {i} now", "terminate_account"])
            writer.writerow([f"what is the rate for {i} euros", "exchange_rate"])
        writer.writerow(["my card 4111 1111 1111 1111 was refunded wrong", "request_refund"])
    (tmp_path / "clinc150").mkdir()
    data = {"train": [[f"hello there {i}", "greeting"] for i in range(60)]
            + [[f"weather in town {i}", "weather"] for i in range(60)]
            + [["shared text", "greeting"], ["my balance", "balance"]],
            "val": [[f"hi friend {i}", "greeting"] for i in range(5)] + [["Shared text!", "greeting"]],
            "oos_train": [[f"odd question {i}", "oos"] for i in range(10)],
            "oos_val": [["what is the meaning of it all", "oos"]]}
    (tmp_path / "clinc150" / "data_train_val.json").write_text(json.dumps(data))
    return tmp_path


@pytest.fixture
def mapping():
    return parse_mapping(MAPPING)


def test_normalise_ignores_case_spacing_and_edge_punctuation():
    assert normalise("  Where is   my ORDER? ") == normalise("where is my order") == "where is my order"
    assert bucket("Where is my order?") == bucket("where is my order")
    assert bucket("where is my order") != bucket("where is my refund")


def test_split_is_stable_and_near_the_fraction():
    texts = [f"message number {i}" for i in range(5000)]
    share = sum(is_validation(t, 0.2) for t in texts) / len(texts)
    assert 0.18 < share < 0.22
    # Golden values: the split must not move between runs, machines or Python versions, or a
    # validation message could end up in training data written earlier.
    assert round(bucket("where is my order"), 6) == 0.495876
    assert [i for i, t in enumerate(texts[:12]) if is_validation(t)] == [1, 3, 4, 11]


def test_validation_and_training_sides_never_share_a_text(datasets, mapping):
    held_out = {normalise(r.text) for r in validation_slice(datasets, mapping)}
    pool = training_pool(datasets, mapping)
    assert held_out and pool
    assert not held_out & {normalise(r.text) for r in pool}
    # CLINC150: all of val and oos_val is validation; a train row repeating a val text is dropped.
    assert "shared text" in held_out
    assert {r.split for r in pool if r.source == "clinc150"} == {"train", "oos_train"}


def test_skipped_intents_are_neither_trained_nor_validated(datasets, mapping):
    rows = public_rows(datasets, mapping)
    assert {r.source_intent for r in rows} == {"request_refund", "terminate_account", "greeting", "weather", "oos"}
    assert {r.target for r in rows if r.source_intent == "terminate_account"} == {"delete_account"}
    banking = [r for r in rows if r.source == "banking77"]
    share = sum(r.side == VALIDATION for r in banking) / len(banking)
    assert 0.12 < share < 0.28
    assert all(r.side == (VALIDATION if is_validation(r.text) else TRAINING) for r in banking)


def test_select_caps_round_robin_and_excludes_our_own_texts(datasets, mapping):
    pool = training_pool(datasets, mapping)
    own = {normalise("hello there 3")}
    chosen = importer.select(pool, exclude=own, per_intent=10, out_of_scope=6, seed=1)
    counts = {}
    for row in chosen:
        counts[row.target] = counts.get(row.target, 0) + 1
    assert counts == {"request_refund": 10, "delete_account": 10, "greet": 10, "out_of_scope": 6}
    oos_sources = [r.source_intent for r in chosen if r.target == "out_of_scope"]
    assert oos_sources.count("weather") == oos_sources.count("oos") == 3  # taken in turn
    assert "hello there 3" not in {r.text for r in chosen}
    assert chosen == importer.select(pool, exclude=own, per_intent=10, out_of_scope=6, seed=1)
    assert chosen != importer.select(pool, exclude=own, per_intent=10, out_of_scope=6, seed=2)


def test_yaml_masks_card_numbers_and_loads_in_rasa_with_metadata(tmp_path):
    from rasa.shared.nlu.training_data.loading import load_data

    rows = [PublicRow("my card 4111 1111 1111 1111 was refunded wrong", "banking77", "request_refund",
                      "train", "request_refund", TRAINING),
            PublicRow('say "hi": it\'s me', "clinc150", "greeting", "train", "greet", TRAINING)]
    path = tmp_path / "public.yml"
    path.write_text(importer.to_yaml(rows, "# test\n"))
    assert "4111 1111" not in path.read_text()
    examples = load_data(str(path)).intent_examples
    assert {(m.get("intent"), m.get("text")) for m in examples} == {
        ("request_refund", "my card [card number ending 1111] was refunded wrong"),
        ("greet", 'say "hi": it\'s me')}
    metadata = {m.get("intent"): m.get("metadata") for m in examples}
    assert metadata["request_refund"] == {"example": {"source": "banking77/request_refund"}}


def test_import_writes_one_file_per_source_and_keeps_unchanged_files(datasets, mapping, tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "nlu").mkdir(parents=True)
    (data_dir / "nlu" / "ours.yml").write_text('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n'
                                               "    - Hello there 1\n")
    out = data_dir / "nlu" / "public"
    summary = importer.import_public_data(datasets, mapping, out, data_dir, per_intent=100, out_of_scope=20)
    # 61 greeting train rows, less "shared text" (a val text) and "Hello there 1" (ours)
    assert summary["clinc150"] == {"greet": 59, "out_of_scope": 20}
    written = yaml.safe_load((out / "clinc150.yml").read_text())
    greet = [e["text"] for block in written["nlu"] if block["intent"] == "greet" for e in block["examples"]]
    assert "Hello there 1" not in greet and "hello there 1" not in greet
    mtime = (out / "banking77.yml").stat().st_mtime_ns
    importer.import_public_data(datasets, mapping, out, data_dir, per_intent=100, out_of_scope=20)
    assert (out / "banking77.yml").stat().st_mtime_ns == mtime


def test_score_counts_rejection_faq_costly_and_multi_intents():
    def row(target, split="val"):
        return PublicRow("x", "clinc150", "any", split, target, VALIDATION)

    rows = [row("greet"), row("greet"), row("thank"), row("request_refund"),
            row("out_of_scope", "oos_val"), row("out_of_scope", "oos_val"),
            row("out_of_scope"), row("out_of_scope")]
    predicted = ["greet", "nlu_fallback", "thank+goodbye", "refund_status",
                 "out_of_scope", "faq", "nlu_fallback", "cancel_subscription"]
    result = score(rows, predicted)
    assert result["intents"]["greet"] == {"n": 2, "recall": 0.5, "fallback": 0.5,
                                          "top_confusions": {"nlu_fallback": 1}}
    assert result["intents"]["thank"]["recall"] == 1.0
    assert result["summary"]["balanced_accuracy"] == round((0.5 + 1.0 + 0.0) / 3, 4)
    assert result["summary"]["fallback_rate"] == 0.25
    assert result["summary"]["chitchat_recall"] == round(2 / 3, 4)
    assert result["out_of_scope"]["all"] == {"n": 4, "rejected": 0.5, "faq_answer": 0.25, "costly_intent": 0.25}
    assert result["out_of_scope"]["clinc150 oos_val"]["rejected"] == 0.5


def test_the_mapping_file_names_only_our_intents_and_covers_every_source_intent():
    from supportbot.public_data.mapping import domain_intents

    mapping = load_mapping()
    assert unknown_targets(mapping, domain_intents()) == []
    assert set(mapping.sources) == {"banking77", "clinc150"}
    for source in mapping.sources.values():
        assert source.licence
