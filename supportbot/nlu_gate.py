"""The NLU quality gate: score a trained model on the held-out test set and fail below the
thresholds. Runs Rasa's own `rasa test nlu`, then reads its reports.

Intents are scored by macro-F1 over every intent in the test set (multi-intents included);
entities by micro-F1 of what actions actually receive, i.e. the merged, normalised entities
of supportbot.nlu.entities.EntityNormalizer.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

ENTITY_REPORT = "EntityNormalizer_report.json"
SUMMARY_KEYS = {"accuracy", "macro avg", "micro avg", "weighted avg"}


def run_rasa_test(model: Path, nlu: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("rasa")), "test", "nlu", "--model", str(model),
        "--nlu", str(nlu), "--out", str(out), "--no-plot", "--quiet",
    ]
    log = out / "rasa-test-nlu.log"
    with open(log, "w") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise SystemExit(f"rasa test nlu failed (exit {result.returncode}); log: {log}")


def micro_f1(report: Dict) -> float:
    """sklearn writes 'micro avg' when some labels are missing, else 'accuracy' (the same)."""
    if "micro avg" in report:
        return float(report["micro avg"]["f1-score"])
    return float(report["accuracy"])


def per_label_rows(report: Dict) -> List[Tuple[str, float, float, float, int]]:
    rows = []
    for label, scores in sorted(report.items()):
        if label in SUMMARY_KEYS or not isinstance(scores, dict):
            continue
        rows.append((label, scores["precision"], scores["recall"], scores["f1-score"], int(scores["support"])))
    return rows


def format_table(title: str, rows: List[Tuple[str, float, float, float, int]]) -> str:
    lines = [title, f"{'label':42} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>4}"]
    for label, precision, recall, f1, support in rows:
        flag = "  <" if f1 < 0.8 else ""
        lines.append(f"{label:42} {precision:9.2f} {recall:7.2f} {f1:6.2f} {support:4d}{flag}")
    return "\n".join(lines)


def gate(out: Path, min_intent_f1: float, min_entity_f1: float) -> Tuple[bool, str]:
    intent_report = json.loads((out / "intent_report.json").read_text())
    entity_path = out / ENTITY_REPORT
    entity_report = json.loads(entity_path.read_text()) if entity_path.exists() else {}
    intent_f1 = float(intent_report["macro avg"]["f1-score"])
    entity_f1 = micro_f1(entity_report) if entity_report else 0.0
    text = [
        format_table("Intents (held-out test set)", per_label_rows(intent_report)),
        "",
        format_table("Entities (EntityNormalizer output)", per_label_rows(entity_report)),
        "",
    ]
    response_path = out / "response_selection_report.json"
    if response_path.exists():
        responses = json.loads(response_path.read_text())
        text.append(f"FAQ response selection accuracy: {responses.get('accuracy', micro_f1(responses)):.3f}")
    passed = intent_f1 >= min_intent_f1 and entity_f1 >= min_entity_f1
    text.append(f"intent macro-F1 {intent_f1:.3f} (min {min_intent_f1})")
    text.append(f"entity micro-F1 {entity_f1:.3f} (min {min_entity_f1})")
    text.append("NLU gate: " + ("PASSED" if passed else "FAILED"))
    return passed, "\n".join(text)


def main(model: str, nlu: str, out: str, min_intent_f1: float, min_entity_f1: float) -> int:
    out_path = Path(out)
    run_rasa_test(Path(model), Path(nlu), out_path)
    passed, text = gate(out_path, min_intent_f1, min_entity_f1)
    print(text)
    return 0 if passed else 1
