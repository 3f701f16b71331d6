"""Splits, sampling and label mapping of the benchmark's data sets, on tiny files written here."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import yaml

from supportbot.benchmark import datasets
from supportbot.benchmark.runner import prepare_config


def write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    return path


def test_banking77_stratified_validation_split_is_seeded(tmp_path):
    rows = [(f"{intent} text {i}", intent) for intent in ("a", "b", "c") for i in range(20)]
    train_csv = write_csv(tmp_path / "train.csv", rows)
    first = datasets.load_banking77(train_csv, val_fraction=0.1, seed=7)
    again = datasets.load_banking77(train_csv, val_fraction=0.1, seed=7)
    run = first.runs[0]
    assert [e.text for e in run.test] == [e.text for e in again.runs[0].test]
    assert sorted(e.intent for e in run.test) == ["a", "a", "b", "b", "c", "c"]  # 10% of 20 per intent
    assert len(run.train) == 54
    assert not {e.text for e in run.train} & {e.text for e in run.test}


def test_banking77_shots_subset_and_test_file(tmp_path):
    rows = [(f"{intent} text {i}", intent) for intent in "abcdef" for i in range(30)]
    train_csv = write_csv(tmp_path / "train.csv", rows)
    test_csv = write_csv(tmp_path / "test.csv", [(f"{intent} held out", intent) for intent in "abcdef"])
    benchmark = datasets.load_banking77(train_csv, test_csv, shots=10, subset_intents=3, seed=1)
    run = benchmark.runs[0]
    intents = benchmark.info["intents"]
    assert len(intents) == 3
    assert sorted({e.intent for e in run.train}) == intents
    assert all(sum(e.intent == i for e in run.train) == 10 for i in intents)
    assert sorted(e.intent for e in run.test) == intents  # test file, filtered to the same intents


def test_nlupp_protocols():
    low = datasets.nlupp_runs(20, "low")
    mid = datasets.nlupp_runs(20, "mid")
    large = datasets.nlupp_runs(20, "large")
    assert len(low) == 20 and low[3] == ([3], [i for i in range(20) if i != 3])
    assert len(mid) == 10 and mid[1][0] == [2, 3] and len(mid[1][1]) == 18
    assert len(large) == 10 and large[0] == (list(range(2, 20)), [0, 1])


def test_nlupp_example_maps_label_sets_and_slots():
    raw = {"text": "Create 6 new standing orders.", "intents": ["standing_order", "new", "make"],
           "slots": {"number": {"text": "6", "span": [7, 8], "value": 6}}}
    example = datasets.nlupp_example(raw)
    assert example.intent == "make+new+standing_order"
    assert example.entities == [{"start": 7, "end": 8, "entity": "number", "value": "6"}]
    assert datasets.nlupp_example({"text": "hm"}).intent == "no_label"


def test_nlupp_loader_limits_runs(tmp_path):
    for fold in range(4):
        examples = [{"text": f"fold {fold} example {i}", "intents": ["a", "b"] if i % 2 else ["c"]}
                    for i in range(5)]
        (tmp_path / f"fold{fold}.json").write_text(json.dumps(examples))
    benchmark = datasets.load_nlupp(tmp_path, "large", max_runs=1)
    assert len(benchmark.runs) == 1
    assert benchmark.info["runs_in_protocol"] == 2
    assert len(benchmark.runs[0].train) == 10 and len(benchmark.runs[0].test) == 10
    assert benchmark.info["labels"] == ["a", "b", "c"]


def test_training_yaml_round_trips_through_rasa(tmp_path):
    from rasa.shared.nlu.training_data.loading import load_data

    examples = [datasets.Example("Create 6 new standing orders.", "make+new",
                                 [{"start": 7, "end": 8, "entity": "number", "value": "6"}]),
                datasets.Example('what: "rate" # today?', "exchange_rate")]
    loaded = load_data(str(datasets.write_training_yaml(examples, tmp_path / "nlu.yml")))
    by_text = {m.get("text"): m for m in loaded.intent_examples}
    assert by_text['what: "rate" # today?'].get("intent") == "exchange_rate"
    entity = by_text["Create 6 new standing orders."].get("entities")[0]
    assert (entity["start"], entity["end"], entity["entity"]) == (7, 8, "number")


def test_prepare_config_records_every_change(tmp_path):
    source = tmp_path / "config.yml"
    source.write_text("pipeline:\n- name: WhitespaceTokenizer\n- name: DIETClassifier\n  epochs: 100\n")
    info = prepare_config(source, tmp_path / "out.yml", epochs=3, seed=42, multi_label=True)
    assert info["changes"] == [
        "WhitespaceTokenizer: intent_tokenization_flag -> true, intent_split_symbol '+'",
        "DIETClassifier: epochs 100 -> 3",
        "DIETClassifier: random_seed -> 42",
    ]
    assert "epochs: 3" in (tmp_path / "out.yml").read_text()


def test_prepare_config_anchors_a_relative_model_dir_where_the_benchmark_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "config.yml"
    source.write_text("pipeline:\n- name: Encoder\n  model_dir: .cache/encoders/x\n"
                      "- name: Other\n  model_dir: /abs/y\n")
    info = prepare_config(source, tmp_path / "out.yml", epochs=None, seed=42, multi_label=False)
    anchored = str(tmp_path.resolve() / ".cache/encoders/x")
    assert info["changes"] == [f"Encoder: model_dir .cache/encoders/x -> {anchored}"]
    written = yaml.safe_load((tmp_path / "out.yml").read_text())["pipeline"]
    assert [c["model_dir"] for c in written] == [anchored, "/abs/y"]


def test_stratified_folds_deal_every_group_evenly():
    items = [(intent, i) for intent, n in (("a", 7), ("b", 5), ("c", 1)) for i in range(n)]
    folds = datasets.stratified_folds(items, lambda item: item[0], 3, random.Random(5))
    assert sorted(x for fold in folds for x in fold) == sorted(items)  # each item in exactly one fold
    assert sorted(len(fold) for fold in folds) == [4, 4, 5]
    for intent in ("a", "b"):
        counts = [sum(1 for x in fold if x[0] == intent) for fold in folds]
        assert max(counts) - min(counts) <= 1, (intent, counts)
    again = datasets.stratified_folds(items, lambda item: item[0], 3, random.Random(5))
    assert folds == again


PROJECT_NLU = """version: "3.1"
nlu:
- intent: order_status
  examples: |
    - where is order [4817263](order_id)
    - status of my order
    - track my parcel
    - has my order shipped
- intent: faq/shipping_cost
  examples: |
    - how much is shipping
    - shipping fees?
- intent: faq/opening_hours
  examples: |
    - when are you open
    - opening hours
- synonym: premium
  examples: |
    - pro
- regex: order_id
  examples: |
    - \\b\\d{7}\\b
responses:
  utter_faq/shipping_cost:
  - text: Shipping is free over 50 USD.
  utter_faq/opening_hours:
  - text: We answer around the clock.
"""


def test_project_folds_keep_regexes_synonyms_and_responses(tmp_path):
    from rasa.shared.nlu.training_data.loading import load_data

    (tmp_path / "nlu.yml").write_text(PROJECT_NLU)
    benchmark = datasets.load_project_folds(tmp_path / "nlu.yml", None, folds=2, seed=3)
    assert [len(run.test) for run in benchmark.runs] == [4, 4]
    held_out = [e.text for run in benchmark.runs for e in run.test]
    assert sorted(held_out) == sorted(m.get("text") for m in load_data(str(tmp_path / "nlu.yml")).intent_examples)
    for run in benchmark.runs:
        # the retrieval intent is scored as `faq`, as `rasa test` does
        assert {e.intent for e in run.test} <= {"order_status", "faq"}
        assert not {e.text for e in run.train_examples()} & {e.text for e in run.test}
        written = load_data(str(datasets.write_training_yaml(run.train, tmp_path / "fold.yml")))
        assert len(written.intent_examples) == 4
        assert set(written.responses) == {"utter_faq/shipping_cost", "utter_faq/opening_hours"}
        assert written.entity_synonyms == {"pro": "premium"}
        assert [r["name"] for r in written.regex_features] == ["order_id"]
    entity = next(e for run in benchmark.runs for e in run.test + run.train_examples() if e.entities)
    assert entity.entities == [{"start": 15, "end": 22, "entity": "order_id", "value": "4817263"}]
    with pytest.raises(ValueError):
        datasets.load_project_folds(tmp_path / "nlu.yml", None, folds=1)


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "banking77", "--train", "x.csv", "--folds", "5"], "--folds is for --dataset project"),
    (["--dataset", "project", "--folds", "5", "--test", "t.yml"], "no --test"),
    (["--dataset", "project", "--folds", "1"], "at least 2"),
])
def test_bench_refuses_folds_where_they_mean_nothing(argv, message):
    import argparse

    from supportbot.benchmark.command import add_arguments, load_benchmark

    with pytest.raises(SystemExit, match=message):
        load_benchmark(add_arguments(argparse.ArgumentParser()).parse_args(argv))


def test_report_says_how_folds_were_scored(tmp_path):
    from supportbot.benchmark.report import dataset_lines

    (tmp_path / "nlu.yml").write_text(PROJECT_NLU)
    benchmark = datasets.load_project_folds(tmp_path / "nlu.yml", None, folds=2, seed=3)
    lines = dataset_lines({"dataset": {"name": "project", "info": benchmark.info}, "seed": 3})
    text = "\n".join(lines)
    assert "2-fold cross-validation" in text and "the held-out test set is not read" in text
    assert "train sizes [4, 4], test sizes [4, 4]" in text and "means over folds" in text
