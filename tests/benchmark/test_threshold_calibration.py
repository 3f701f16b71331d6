"""Per-intent threshold calibration on tiny hand-made predictions, answers worked out by hand."""
from __future__ import annotations

import json

from supportbot.benchmark import calibration
from supportbot.cli import main

GRID = [0.0, 0.5, 0.9]
# "a" is often wrong at middling confidence; "b" is always right.
GOLD = ["a", "a", "x", "x", "b", "b", "b"]
TOP = [("a", 0.95), ("a", 0.6), ("a", 0.6), ("a", 0.55), ("b", 0.3), ("b", 0.45), ("b", 0.6)]


def test_calibrate_picks_the_cheapest_threshold_per_intent():
    # a at 0.0: 2 misroutes; at 0.5: same; at 0.9: 3 escalated (one of them right), 0 misroutes.
    assert calibration.calibrate(GOLD, TOP, misroute_cost=2.0, default=0.5, grid=GRID, min_support=3) == {
        "a": 0.9,  # cost 3 against 4 at 0.0 and 0.5
        "b": 0.0,  # never wrong: escalating any of it only costs
    }
    # With misroutes as cheap as escalations, 3 escalations cost more than 2 misroutes: a's threshold
    # drops to the tie between 0.0 and 0.5, broken towards the default.
    assert calibration.calibrate(GOLD, TOP, misroute_cost=1.0, default=0.5, grid=GRID, min_support=3)["a"] == 0.5


def test_intents_with_too_few_predictions_keep_the_default():
    assert calibration.calibrate(GOLD, TOP, 2.0, default=0.5, grid=GRID, min_support=4) == {"a": 0.9}


def test_outcome_counts():
    # b's 0.3 and 0.45 escalate
    assert calibration.outcome_counts(GOLD, TOP, {"a": 0.9}, default=0.5) == (3 + 2, 0)
    assert calibration.outcome_counts(GOLD, TOP, {}, default=0.0) == (0, 2)


def test_cross_fitting_scores_every_message_once():
    gold, top = GOLD * 4, TOP * 4
    for per_intent in (True, False):
        rates = calibration.cross_fitted(gold, top, 2.0, default=0.5, per_intent=per_intent)
        assert 0.0 <= rates["escalation_rate"] <= 1.0 and 0.0 <= rates["misroute_rate"] <= 1.0
        escalated, misrouted = rates["escalation_rate"] * len(gold), rates["misroute_rate"] * len(gold)
        assert abs(escalated - round(escalated)) < 1e-9 and abs(misrouted - round(misrouted)) < 1e-9
    curve = calibration.calibrated_curve(gold, top, default=0.5)
    assert [p["misroute_cost"] for p in curve["per_intent"]] == list(calibration.COSTS)
    for mine, single, difference in zip(curve["per_intent"], curve["global"], curve["difference"]):
        cost = mine["misroute_cost"]
        # the difference is that of the two cross-fitted costs, and lies inside its own interval
        expected = (mine["escalation_rate"] + cost * mine["misroute_rate"]
                    - single["escalation_rate"] - cost * single["misroute_rate"])
        assert abs(difference["mean"] - expected) < 1e-9
        assert difference["low"] <= difference["mean"] <= difference["high"]
    assert calibration.calibrated_curve(GOLD, TOP, default=0.5) is None  # too little data to fold


def test_command_prints_a_config_entry(tmp_path, capsys):
    path = tmp_path / "predictions.jsonl"
    rows = [{"gold": g, "intent": n, "ranking": [[n, c], ["other", 0.01]]} for g, (n, c) in zip(GOLD * 4, TOP * 4)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["thresholds", str(path), "--min-support", "3", "--default", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "supportbot.nlu.thresholds.PerIntentFallbackClassifier" in out and "intent_thresholds:" in out
    assert "per-intent thresholds, cross-fitted" in out
    assert "per-intent minus single, cost per message" in out and "95% paired bootstrap interval" in out
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["thresholds", str(empty)]) == 2


def test_paired_difference_interval():
    # Always one escalation (cost 1) cheaper: the difference is exactly -1 whatever the resample.
    assert calibration.paired_difference([0.0] * 50, [1.0] * 50) == {"mean": -1.0, "low": -1.0, "high": -1.0}
    # Half the messages one cheaper, half one dearer: mean 0, and an interval on both sides of it.
    mixed = calibration.paired_difference([0.0, 2.0] * 100, [1.0, 1.0] * 100)
    assert mixed["mean"] == 0.0 and mixed["low"] < 0.0 < mixed["high"]
    # The same data and seed give the same interval.
    assert calibration.paired_difference([0.0, 2.0] * 100, [1.0, 1.0] * 100) == mixed
    assert calibration.paired_difference([], []) == {"mean": 0.0, "low": 0.0, "high": 0.0}


def test_costly_intents_get_the_cheapest_threshold_from_the_default_up():
    # a: at 0.5, 2 wrong x 3 = 6; at 0.9, 3 clarifications = 3. b: never wrong, so the default.
    chosen = calibration.calibrate_costs(GOLD, TOP, {"a": 3.0, "b": 5.0, "c": 9.0}, clarification_cost=1.0,
                                         default=0.5, min_support=3, grid=GRID)
    assert {name: row["threshold"] for name, row in chosen.items()} == {"a": 0.9, "b": 0.5}
    assert (chosen["a"]["support"], chosen["a"]["wrong"], chosen["a"]["cost_at_default"], chosen["a"]["cost"]) == (
        4, 2, 6.0, 3.0)
    # A cheaper mistake is not worth three clarifications: a stays at the default.
    cheap = calibration.calibrate_costs(GOLD, TOP, {"a": 1.2}, 1.0, default=0.5, min_support=3, grid=GRID)
    assert cheap["a"]["threshold"] == 0.5


def test_thresholds_are_written_between_the_markers_only(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("pipeline:\n  - name: X\n    threshold: 0.4\n    # calibrated thresholds: begin\n"
                      "    intent_thresholds: {}\n    # calibrated thresholds: end\npolicies: []\n")
    calibration.write_thresholds(config, {"legal_request": 0.65, "cancel_order": 0.5})
    assert config.read_text() == (
        "pipeline:\n  - name: X\n    threshold: 0.4\n    # calibrated thresholds: begin\n"
        "    intent_thresholds:\n      cancel_order: 0.5\n      legal_request: 0.65\n"
        "    # calibrated thresholds: end\npolicies: []\n")
    calibration.write_thresholds(config, {})
    assert "    intent_thresholds: {}\n" in config.read_text()


def test_the_classifier_config_stops_after_the_intent_classifier():
    config = {"language": "en", "pipeline": [{"name": "SpacyTokenizer"},
                                             {"name": "supportbot.nlu.classifier.LinearIntentClassifier"},
                                             {"name": "DIETEntityExtractor"}], "policies": [{"name": "TEDPolicy"}]}
    reduced = calibration.classifier_config(config)
    assert [c["name"] for c in reduced["pipeline"]] == ["SpacyTokenizer",
                                                        "supportbot.nlu.classifier.LinearIntentClassifier"]
    assert reduced["policies"] == [] and reduced["language"] == "en"
