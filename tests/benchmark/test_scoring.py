"""How the runner turns parse results into figures: fallback, multi-label splitting, slot spans."""
from __future__ import annotations

import subprocess
import sys

import pytest

from supportbot.benchmark.datasets import Example
from supportbot.benchmark.runner import assemble, score
from supportbot.benchmark.worker import peak_rss_mb


def parse(intent, ranking, entities=()):
    return {"intent": intent, "confidence": ranking[0][1], "ranking": ranking, "entities": list(entities)}


def test_multi_label_scoring_splits_combined_intents():
    tests = [Example("new pin", "new+pin", [{"start": 0, "end": 3, "entity": "number", "value": "x"}]),
             Example("thanks", "thank"),
             Example("hm", "no_label")]
    predictions = [
        parse("new+pin", [["new+pin", 0.9]], [{"start": 0, "end": 3, "entity": "number"},
                                              {"start": 4, "end": 7, "entity": "amount"}]),  # type not in data
        parse("nlu_fallback", [["nlu_fallback", 0.4], ["thank", 0.35]]),
        parse("greet", [["greet", 0.8]]),
    ]
    scored = score(tests, predictions, multi_label=True, entity_types={"number"})
    summary = scored["summary"]
    assert summary["accuracy"] == pytest.approx(1 / 3)
    assert summary["accuracy_without_fallback"] == pytest.approx(2 / 3)
    assert summary["fallback_rate"] == pytest.approx(1 / 3)
    # labels: gold {new, pin}, {thank}, {}; predicted {new, pin}, {} (fallback), {greet} -> tp 2, fp 1, fn 1
    assert summary["intent_micro_f1"] == pytest.approx(2 / 3)
    # ignoring fallback the second is `thank`: tp 3, fp 1, fn 0
    assert summary["intent_micro_f1_without_fallback"] == pytest.approx(6 / 7)
    assert summary["entity_micro_f1"] == 1.0
    assert set(scored["per_intent"]) == {"new", "pin", "thank"}
    assert scored["per_intent"]["thank"]["recall"] == 0.0
    # calibration uses the top non-fallback intent: 0.9 right, 0.35 right, 0.8 wrong
    bins = scored["calibration"]["bins"]
    assert (bins[9]["count"], bins[3]["count"], bins[8]["count"]) == (1, 1, 1)


def test_assemble_means_over_runs_and_pools_latency():
    run_scores = [{"name": "r0", "accuracy": 0.5, "train_seconds": 10.0, "train_cpu_seconds": 8.0},
                  {"name": "r1", "accuracy": 1.0, "train_seconds": 20.0, "train_cpu_seconds": 12.0}]
    pooled = {"summary": {"accuracy": 0.7}, "per_intent": {}, "confused_pairs": [],
              "calibration": {"ece": 0.1, "bins": []}}
    workers = [{"latency_ms": [1.0, 3.0], "component_ms": {"run_A0": [0.5, 1.5], "run_B1": [0.1, 0.1]},
                "model_size_bytes": 2_000_000, "peak_rss_after_train_mb": 500.0,
                "peak_rss_parse_mb": 600.0, "load_seconds": 1.0, "train_seconds": 10.0, "worker_cpu_seconds": 9.0,
                "import_seconds": 5.0, "worker_seconds": 30.0},
               {"latency_ms": [2.0], "model_size_bytes": 4_000_000, "peak_rss_after_train_mb": 700.0,
                "peak_rss_parse_mb": 650.0, "load_seconds": 3.0, "train_seconds": 20.0, "worker_cpu_seconds": 9.0,
                "import_seconds": 5.0, "worker_seconds": 40.0}]
    result = assemble({"runs": run_scores, "pooled": pooled, "workers": workers}, None)
    summary = result["summary"]
    assert summary["accuracy"] == 0.75  # mean over runs, not the pooled 0.7
    assert summary["train_seconds"] == 15.0 and summary["train_cpu_seconds"] == 10.0
    assert summary["model_size_mb"] == 3.0
    assert summary["peak_rss_train_mb"] == 700.0 and summary["peak_rss_parse_mb"] == 650.0
    assert summary["parse_p50_ms"] == 2.0
    assert summary["http_p95_ms"] is None
    components = result["latency"]["components"]  # pooled over workers, slowest first, "run_" dropped
    assert [(row["component"], row["n"], row["p50_ms"]) for row in components] == [("A0", 2, 1.0), ("B1", 2, 0.1)]


def test_peak_memory_is_the_programs_own_not_its_parents():
    # ru_maxrss survives fork + exec: a parse process started by a big training process would
    # report the trainer's memory. The child here must report its own, well under the parent's.
    ballast = b"\x01" * (400 * 1024 * 1024)  # 400 MB of touched pages in this (parent) process
    child = subprocess.run([sys.executable, "-c",
                            "from supportbot.benchmark.worker import peak_rss_mb; print(peak_rss_mb())"],
                           capture_output=True, text=True, check=True)
    assert 5 < float(child.stdout) < 200, child.stdout
    assert peak_rss_mb() > 400
    del ballast
