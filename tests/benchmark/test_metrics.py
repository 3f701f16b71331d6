"""The benchmark's metric code on tiny hand-made data, with answers worked out by hand."""
from __future__ import annotations

import pytest

from supportbot.benchmark import metrics

GOLD = ["a", "a", "a", "b", "b", "c"]
PRED = ["a", "a", "b", "b", "nlu_fallback", "a"]


def test_accuracy():
    assert metrics.accuracy(GOLD, PRED) == pytest.approx(3 / 6)
    assert metrics.accuracy([], []) is None


def test_per_label_scores():
    scores = metrics.per_label_scores(GOLD, PRED)
    # a: tp 2, fp 1 (c -> a), fn 1 (a -> b); b: tp 1, fp 1, fn 1; c: tp 0, fp 0, fn 1
    assert scores["a"] == {"precision": 2 / 3, "recall": 2 / 3, "f1": pytest.approx(2 / 3), "support": 3}
    assert scores["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert "nlu_fallback" not in scores  # a miss of the gold label, not a class of its own


def test_macro_f1_averages_over_gold_labels():
    assert metrics.macro_f1(GOLD, PRED) == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    assert metrics.macro_f1(["x", "y"], ["x", "y"]) == 1.0


def test_confused_pairs_ranked_by_count_then_name():
    gold = ["a", "a", "a", "b", "b", "c", "c"]
    pred = ["b", "b", "c", "a", "a", "a", "c"]
    assert metrics.confused_pairs(gold, pred, top=3) == [
        {"gold": "a", "predicted": "b", "count": 2},
        {"gold": "b", "predicted": "a", "count": 2},
        {"gold": "a", "predicted": "c", "count": 1},
    ]
    assert metrics.confused_pairs(["a"], ["a"]) == []


def test_ece_known_answer():
    # bin 9 [0.9, 1.0]: confidences 0.95, 1.0 (mean 0.975), 1 of 2 correct -> gap 0.475
    # bin 6 [0.6, 0.7): confidences 0.6, 0.6 (mean 0.6), 2 of 2 correct   -> gap 0.4
    confidences = [0.95, 1.0, 0.6, 0.6]
    correct = [True, False, True, True]
    result = metrics.calibration(confidences, correct)
    assert result["ece"] == pytest.approx(2 / 4 * 0.475 + 2 / 4 * 0.4)
    assert [b["count"] for b in result["bins"]] == [0, 0, 0, 0, 0, 0, 2, 0, 0, 2]
    assert result["bins"][9] == {"lower": 0.9, "upper": 1.0, "count": 2, "accuracy": 0.5,
                                 "confidence": pytest.approx(0.975)}
    assert result["bins"][0]["accuracy"] is None


def test_ece_is_zero_when_confidence_matches_accuracy():
    assert metrics.calibration([0.25] * 4, [True, False, False, False])["ece"] == pytest.approx(0.0)
    assert metrics.calibration([], [])["ece"] is None


def test_split_labels():
    assert metrics.split_labels("pin+new+arrival") == {"arrival", "new", "pin"}
    assert metrics.split_labels("nlu_fallback") == set()
    assert metrics.split_labels("no_label") == set()


def test_multi_label_micro_f1():
    gold = [{"a", "b"}, {"c"}, set()]
    pred = [{"a"}, {"c", "d"}, {"e"}]
    # tp: a, c = 2; fp: d, e = 2; fn: b = 1
    scores = metrics.set_micro_scores(gold, pred)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 2, 1)
    assert scores["precision"] == 0.5
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_multi_label_per_label():
    scores = metrics.set_per_label_scores([{"a", "b"}, {"a"}], [{"a"}, {"b"}])
    assert scores["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert scores["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_slot_spans_micro_f1():
    gold = [{(0, 4, "date"), (10, 12, "number")}]
    pred = [{(0, 4, "date"), (10, 13, "number")}]  # off by one character: a miss and a false alarm
    assert metrics.set_micro_scores(gold, pred)["f1"] == 0.5


def test_percentiles_interpolate_linearly():
    values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert metrics.percentile(values, 50) == 55.0
    assert metrics.percentile(values, 95) == pytest.approx(95.5)
    assert metrics.percentile([7.0], 95) == 7.0
    assert metrics.percentile([], 50) is None
    summary = metrics.latency_summary([4.0, 1.0, 3.0, 2.0])
    assert summary == {"p50_ms": 2.5, "p95_ms": pytest.approx(3.85), "mean_ms": 2.5, "n": 4}


def test_ratio():
    assert metrics.ratio(0.9, 0.6) == pytest.approx(1.5)
    assert metrics.ratio(0.9, 0.0) is None
    assert metrics.ratio(None, 0.5) is None


def test_threshold_curve_counts_escalations_and_misroutes():
    gold = ["a", "a", "b", "b"]
    top = [("a", 0.9), ("b", 0.6), ("b", 0.3), ("a", 0.2)]
    rows = {row["threshold"]: row for row in metrics.threshold_curve(gold, top, thresholds=[0.0, 0.25, 0.5, 0.95])}
    # 0.0: nothing escalated; the 2nd and 4th are answered wrongly
    assert rows[0.0] == {"threshold": 0.0, "escalation_rate": 0.0, "misroute_rate": 0.5}
    # 0.25: the 4th (0.2, wrong) is escalated; the 2nd is still misrouted
    assert rows[0.25] == {"threshold": 0.25, "escalation_rate": 0.25, "misroute_rate": 0.25}
    # 0.5: the 3rd (0.3, right) is escalated too
    assert rows[0.5] == {"threshold": 0.5, "escalation_rate": 0.5, "misroute_rate": 0.25}
    assert rows[0.95] == {"threshold": 0.95, "escalation_rate": 1.0, "misroute_rate": 0.0}
