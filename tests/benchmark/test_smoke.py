"""The benchmark end to end: `supportbot bench` on a tiny synthetic BANKING77-format data set,
training the project's config.yml and the baseline for 2 epochs each, with a real `rasa run`
server for the HTTP latency. About a minute on 2 cores."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from supportbot.benchmark.report import FIGURES

INTENTS = {
    "card_arrival": ["where is my new card", "my card has not arrived yet", "when will my card come",
                     "card still not delivered", "is my card on its way", "how long until my card arrives",
                     "track my card delivery", "card not here after a week", "has my card been sent",
                     "still waiting for my card"],
    "exchange_rate": ["what is the exchange rate", "how much is a euro in dollars", "which rate do you use",
                      "exchange rate for pounds", "currency conversion rate today", "what rate will I get abroad",
                      "is your exchange rate fair", "rate for converting money", "euro to pound rate",
                      "how are exchange rates set"],
    "lost_or_stolen_card": ["I lost my card", "my card was stolen", "someone took my wallet with my card",
                            "cannot find my card anywhere", "block my stolen card", "my card is missing",
                            "I think I lost my card yesterday", "card got stolen on the train",
                            "freeze my lost card", "report a stolen card"],
    "top_up_failed": ["my top up failed", "top up did not work", "why was my top-up declined",
                      "could not add money", "adding funds failed", "top up keeps failing",
                      "error when topping up", "money not added to my account", "top up rejected",
                      "failed to top up with my card"],
}
SUMMARY_KEYS = [key for key, *_ in FIGURES]


def write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    return path


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_end_to_end(tmp_path, repo):
    train = write_csv(tmp_path / "train.csv", [(t, i) for i, texts in INTENTS.items() for t in texts[:8]])
    test = write_csv(tmp_path / "test.csv", [(t, i) for i, texts in INTENTS.items() for t in texts[8:]])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "supportbot.cli", "bench", "--dataset", "banking77",
               "--train", str(train), "--test", str(test), "--config", str(repo / "config.yml"),
               "--epochs", "2", "--baseline-epochs", "2", "--http-requests", "5", "--out", str(out)]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=280,
                            env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[bench" in result.stderr  # progress lines

    report = json.loads((out / "benchmark.json").read_text())
    for key in ("schema_version", "started", "command", "seed", "machine", "dataset", "configs",
                "results", "ratios", "duration_seconds", "files"):
        assert key in report, key
    assert report["dataset"]["info"]["n_train"] == 32 and report["dataset"]["info"]["n_test"] == 8
    assert report["configs"]["baseline"]["epochs_override"] == 2
    for tag in ("candidate", "baseline"):
        outcome = report["results"][tag]
        summary = outcome["summary"]
        for key in SUMMARY_KEYS:
            assert key in summary, (tag, key)
            if key != "entity_micro_f1":  # no entities in BANKING77
                assert summary[key] is not None, (tag, key)
        assert 0.0 <= summary["accuracy"] <= 1.0 and 0.0 <= summary["ece"] <= 1.0
        assert summary["train_seconds"] > 0 and summary["model_size_mb"] > 0
        assert summary["peak_rss_train_mb"] > 100 and summary["peak_rss_parse_mb"] > 100  # Rasa and TF take more
        assert sorted(outcome["per_intent"]) == sorted(INTENTS)
        assert isinstance(outcome["confused_pairs"], list)
        assert len(outcome["calibration"]["bins"]) == 10
        curve = outcome["threshold_curve"]
        assert curve[0]["threshold"] == 0.0 and curve[0]["escalation_rate"] == 0.0
        rates = [row["escalation_rate"] for row in curve]
        assert rates == sorted(rates)  # a higher threshold never escalates less
        assert outcome["latency"]["in_process"]["n"] == 8 and outcome["latency"]["http"]["n"] == 5
        components = {row["component"]: row for row in outcome["latency"]["components"]}
        classifier = "supportbot.nlu.classifier.LinearIntentClassifier" if tag == "candidate" else "DIETClassifier"
        assert any(name.startswith(classifier) for name in components), sorted(components)
        assert all(row["n"] == 8 for row in components.values())  # every timed parse, no warm-up
        assert sum(row["mean_ms"] for row in components.values()) <= outcome["latency"]["in_process"]["mean_ms"]
    assert set(report["ratios"]) == set(report["results"]["candidate"]["summary"])

    markdown = (out / "benchmark.md").read_text()
    assert "ratio (candidate / baseline)" in markdown
    assert "The baseline was shortened to 2 epochs" in markdown
    assert "## Parse time by component" in markdown and "| DIETClassifier" in markdown
    for plot in ("reliability.png", "per_intent_f1.png", "latency.png", "ratios.png", "thresholds.png"):
        assert (out / plot).stat().st_size > 1000, plot
        assert f"]({plot})" in markdown
    predictions = (out / "predictions-candidate.jsonl").read_text().splitlines()
    assert len(predictions) == 8


# Label words: each NLU++-style example carries the labels whose words it contains.
LABEL_PHRASES = {"card": ["my card", "the card", "a card"], "new": ["a new one", "a replacement", "a fresh one"],
                 "pin": ["my pin", "the pin code", "my pin number"]}


def nlupp_fold(index: int) -> list:
    examples = []
    combos = [("card",), ("pin",), ("card", "new")] if index < 2 else [("card",), ("pin",), ("new", "pin")]
    for combo in combos:  # folds 0-1 (training) never combine "new" with "pin"; folds 2-3 (test) do
        for variant in range(3):
            phrases = [LABEL_PHRASES[label][(variant + index) % 3] for label in combo]
            text = "I need help with " + " and ".join(phrases)
            examples.append({"text": text, "intents": list(combo)})
    examples.append({"text": f"hello there number {index}"})  # no label
    return examples


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_multi_label_bench_decodes_unseen_label_sets(tmp_path, repo):
    folds = tmp_path / "folds"
    folds.mkdir()
    for index in range(4):
        (folds / f"fold{index}.json").write_text(json.dumps(nlupp_fold(index)))
    out = tmp_path / "out"
    config = repo / "supportbot/benchmark/nlupp_config.yml"
    command = [sys.executable, "-m", "supportbot.cli", "bench", "--dataset", "nlupp", "--folds-dir", str(folds),
               "--protocol", "mid", "--max-runs", "1", "--config", str(config),
               "--epochs", "2", "--baseline-epochs", "2", "--http-requests", "0", "--out", str(out)]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=280,
                            env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "benchmark.json").read_text())
    candidate = report["results"]["candidate"]["summary"]
    assert candidate["intent_micro_f1"] >= 0.8, candidate
    predictions = [json.loads(line) for line in (out / "predictions-candidate.jsonl").read_text().splitlines()]
    unseen = [p for p in predictions if p["gold"] == "new+pin"]
    assert len(unseen) == 6
    # The label-set classifier can never output "new+pin" (not in training); per-label decoding can.
    assert sum(p["intent"] == "new+pin" for p in unseen) >= 4, unseen
    assert "LinearIntentClassifier" in (out / "benchmark.md").read_text()
