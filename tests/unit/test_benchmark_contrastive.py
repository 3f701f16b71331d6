"""The contrastive fine-tuning trial's pairs, head and verdict (supportbot/benchmark/contrastive.py),
and the latency script's summary (supportbot/benchmark/latency.py). The runs themselves fine-tune
MiniLM or parse with a trained model: docs/benchmarks.md."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from supportbot.benchmark import contrastive, latency
from supportbot.public_data.split import PublicRow

CONFIG = Path(__file__).resolve().parents[2] / "config.yml"


def test_each_batch_has_distinct_labels_and_two_different_examples_of_each():
    labels = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["lonely"]
    batches = contrastive.pair_batches(labels, steps=20, batch_size=8, seed=1)
    assert len(batches) == 20
    for batch in batches:
        assert len(batch) == 3  # no more labels than there are: "lonely" has one example
        assert len({labels[a] for a, _ in batch}) == 3
        for anchor, positive in batch:
            assert anchor != positive and labels[anchor] == labels[positive] != "lonely"
    assert batches == contrastive.pair_batches(labels, steps=20, batch_size=8, seed=1)
    assert batches != contrastive.pair_batches(labels, steps=20, batch_size=8, seed=2)


def test_pairs_need_two_usable_labels():
    with pytest.raises(contrastive.BenchmarkError, match="two labels"):
        contrastive.pair_batches(["a", "a", "b"], steps=1, batch_size=4, seed=0)


def test_the_head_is_the_product_head_with_config_yml_settings(tmp_path):
    counts = contrastive.word_counts(["refund my order", "where is my parcel", "hello there", "hi"])
    vectors = np.eye(4, 8, dtype=np.float32)
    texts = ["refund my order", "where is my parcel", "hello there", "hi"]
    head = contrastive.Head(CONFIG, tmp_path / "head")
    assert head.settings["C"] == contrastive.pipeline_config(CONFIG, contrastive.CLASSIFIER)["C"]
    head.train(contrastive.messages(texts, vectors, counts(texts),
                                    ["request_refund", "order_status", "greet", "greet"]))
    top, final = head.predict(contrastive.messages(texts[:2], vectors[:2], counts(texts[:2])))
    assert top == ["request_refund", "order_status"]
    assert all(name in ("request_refund", "order_status", "nlu_fallback") for name in final)


def test_a_missing_component_is_a_clear_error(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("pipeline:\n  - name: WhitespaceTokenizer\n")
    with pytest.raises(contrastive.BenchmarkError, match="LinearIntentClassifier"):
        contrastive.pipeline_config(config, contrastive.CLASSIFIER)


def test_bootstrap_interval_brackets_the_change_in_balanced_accuracy():
    rows = [PublicRow(f"m{i}", "clinc150", "x", "val", "greet" if i < 20 else "thank", "validation")
            for i in range(40)]
    base = ["greet"] * 10 + ["thank"] * 10 + ["thank"] * 20  # greet recall 0.5, thank 1.0
    tuned = ["greet"] * 20 + ["thank"] * 20  # both 1.0: +0.25
    low, high = contrastive.bootstrap_difference(rows, base, tuned, seed=0, samples=500)
    assert 0.1 < low <= 0.25 <= high < 0.4
    assert contrastive.bootstrap_difference(rows, base, base, seed=0, samples=50) == (0.0, 0.0)


@pytest.mark.parametrize("gain, seconds, wire", [(0.02, 5.0, True), (0.02, 60.0, False), (0.005, 1.0, False)])
def test_the_verdict_needs_a_point_and_the_training_budget(gain, seconds, wire):
    base = {"external": {"balanced_accuracy": 0.90}}
    tuned = {"external": {"balanced_accuracy": 0.90 + gain}}
    assert contrastive.verdict(base, tuned, {"wall_seconds": seconds})["wire_in"] is wire


def test_latency_figures_are_the_median_of_the_runs_that_have_them():
    runs = [{"p95_ms": 40.0}, {"p95_ms": 25.0}, {"p95_ms": 28.0}, {"p95_ms": None}]
    assert latency.median_of(runs, "p95_ms") == 28.0
    assert latency.median_of([], "p95_ms") is None


def test_latency_refuses_a_missing_model(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        latency.main(["--model", str(tmp_path / "none.tar.gz"), "--out", str(tmp_path / "out")])
