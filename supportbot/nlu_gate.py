"""The NLU quality gate: score a trained model on the held-out test set, compare it with the
reference scores of the model on main, and fail below the floors or on a drop.

Runs Rasa's own `rasa test nlu`, then reads its reports:
- intents: every intent of the test set (multi-intents included); the floor is on macro-F1;
- FAQ topics: every `faq/<topic>`, from Rasa's response-selection report. EncoderFAQSelector only
  answers messages classified `faq`, so a topic question counts as right only when the intent
  came out `faq` *and* the topic's answer was picked: a new intent that takes a topic's
  questions lowers that topic's recall even while every intent looks fine;
- entities: what actions actually receive, i.e. the merged, normalised entities of
  supportbot.nlu.entities.EntityNormalizer; the floor is on micro-F1.

The scores are written to `<out>/scores.json`. The reference is a file of the same shape,
committed as tests/nlu/reference_scores.json and written by `--write-reference` from the model
trained on main, so the comparison needs no second model, no training and no network. Any
earlier run's scores.json can serve as `--reference` to compare two local models.
The gate fails when a floor is missed, or when an intent or topic with at least `min_support`
test examples loses more than `max_drop` F1 against the reference (docs/designer-guide.md,
"Reading make test-nlu").
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

INTENT_REPORT = "intent_report.json"
ENTITY_REPORT = "EntityNormalizer_report.json"
RESPONSE_REPORT = "response_selection_report.json"
SCORES = "scores.json"
REFERENCE = Path("tests/nlu/reference_scores.json")
SUMMARY_KEYS = {"accuracy", "macro avg", "micro avg", "weighted avg"}
# The kinds of labels the comparison gates, as keys of a scores file. Keep every key clear of the
# ones Rasa uses to guess a JSON file's NLU format ("responses", "version", "utterances", …):
# the reference lives in tests/nlu/, which `rasa test nlu --nlu tests/nlu` reads.
GATED = ("intents", "faq_topics")

Row = Dict[str, float]  # precision, recall, f1, support
Scores = Dict  # {"intents": {label: Row}, "faq_topics": …, "entities": …, "summary": {…}, …}


@dataclass(frozen=True)
class Thresholds:
    min_intent_f1: float = 0.90
    min_entity_f1: float = 0.85
    max_drop: float = 0.05  # the most F1 a label may lose against the reference
    min_support: int = 5  # labels with fewer test examples are shown but not gated on drops


@dataclass(frozen=True)
class Delta:
    label: str
    f1: Optional[float]  # None: no longer in the test set
    reference_f1: Optional[float]  # None: new since the reference
    support: int
    reference_support: int

    @property
    def change(self) -> Optional[float]:
        if self.f1 is None or self.reference_f1 is None:
            return None
        return round(self.f1 - self.reference_f1, 4)

    def dropped(self, limits: Thresholds) -> bool:
        return self.change is not None and self.change < -limits.max_drop

    def fails(self, limits: Thresholds) -> bool:
        return self.dropped(limits) and self.support >= limits.min_support


def run_rasa_test(model: Path, nlu: Path, out: Path) -> None:
    for path in (model, nlu):
        if not path.exists():  # Rasa would quietly score the newest model in models/ instead
            raise SystemExit(f"{path} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    for name in (INTENT_REPORT, ENTITY_REPORT, RESPONSE_REPORT, SCORES):  # never read a stale one
        (out / name).unlink(missing_ok=True)
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


def label_rows(report: Dict) -> Dict[str, Row]:
    """The per-label rows of a Rasa (sklearn) report, rounded so that files diff readably."""
    rows = {}
    for label, scores in sorted(report.items()):
        if label in SUMMARY_KEYS or not isinstance(scores, dict):
            continue
        rows[label] = {"precision": round(scores["precision"], 4), "recall": round(scores["recall"], 4),
                       "f1": round(scores["f1-score"], 4), "support": int(scores["support"])}
    return rows


def read_report(path: Path) -> Dict:
    return json.loads(path.read_text()) if path.exists() else {}


def collect_scores(out: Path) -> Scores:
    intents = read_report(out / INTENT_REPORT)
    entities = read_report(out / ENTITY_REPORT)
    responses = read_report(out / RESPONSE_REPORT)
    summary = {
        "intent_macro_f1": round(float(intents["macro avg"]["f1-score"]), 4),
        "entity_micro_f1": round(micro_f1(entities), 4) if entities else 0.0,
    }
    if responses:
        summary["faq_accuracy"] = round(float(responses.get("accuracy", micro_f1(responses))), 4)
    return {"summary": summary, "intents": label_rows(intents), "faq_topics": label_rows(responses),
            "entities": label_rows(entities)}


def fingerprint_test_set(nlu: Path) -> str:
    """sha256 of the NLU files `rasa test nlu` reads from `nlu`, to tell when the test set changed."""
    from rasa.shared.data import get_data_files, is_nlu_file

    digest = hashlib.sha256()
    for name in sorted(get_data_files([str(nlu)], is_nlu_file)):
        digest.update(Path(name).relative_to(nlu if nlu.is_dir() else nlu.parent).as_posix().encode())
        digest.update(Path(name).read_bytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compare(current: Scores, reference: Scores) -> List[Delta]:
    """Intent and FAQ-topic F1 against the reference, worst change first; labels new since the
    reference, then labels gone from the test set, come last."""
    deltas = []
    for kind in GATED:
        now, before = current.get(kind, {}), reference.get(kind, {})
        for label in sorted(set(now) | set(before)):
            row, old = now.get(label), before.get(label)
            deltas.append(Delta(label, row["f1"] if row else None, old["f1"] if old else None,
                                int(row["support"]) if row else 0, int(old["support"]) if old else 0))

    def order(delta: Delta) -> Tuple[int, float, str]:
        if delta.change is not None:
            return 0, delta.change, delta.label
        return (1 if delta.f1 is not None else 2), 0.0, delta.label

    return sorted(deltas, key=order)


def failures(current: Scores, reference: Optional[Scores], limits: Thresholds) -> List[str]:
    """Why the gate fails, one line per reason; empty when it passes."""
    reasons = []
    summary = current["summary"]
    if summary["intent_macro_f1"] < limits.min_intent_f1:
        reasons.append(f"intent macro-F1 {summary['intent_macro_f1']:.3f} is below {limits.min_intent_f1}")
    if summary["entity_micro_f1"] < limits.min_entity_f1:
        reasons.append(f"entity micro-F1 {summary['entity_micro_f1']:.3f} is below {limits.min_entity_f1}")
    for delta in compare(current, reference) if reference else []:
        if delta.fails(limits):
            reasons.append(f"{delta.label} F1 fell {-delta.change:.2f} (from {delta.reference_f1:.2f} "
                           f"to {delta.f1:.2f}, n={delta.support})")
    return reasons


def format_table(title: str, rows: Dict[str, Row]) -> str:
    lines = [title, f"{'label':42} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>4}"]
    for label, row in rows.items():
        flag = "  <" if row["f1"] < 0.8 else ""
        lines.append(f"{label:42} {row['precision']:9.2f} {row['recall']:7.2f} {row['f1']:6.2f} "
                     f"{row['support']:4d}{flag}")
    return "\n".join(lines)


def format_deltas(deltas: List[Delta], limits: Thresholds, gated: bool = True) -> str:
    """The labels whose F1 changed, worst first, then new and gone ones; the rest are counted."""
    changed = [delta for delta in deltas if delta.change != 0]
    if not changed:
        return f"All {len(deltas)} intents and FAQ topics score as in the reference."
    lines = [f"{'label':42} {'ref f1':>6} {'f1':>6} {'change':>7} {'n':>4}"]
    for delta in changed:
        old = "-" if delta.reference_f1 is None else f"{delta.reference_f1:.2f}"
        now = "-" if delta.f1 is None else f"{delta.f1:.2f}"
        if delta.change is not None:
            change = f"{delta.change:+.2f}"
        else:
            change = "new" if delta.f1 is not None else "gone"
        support = delta.support if delta.f1 is not None else delta.reference_support
        note = ""
        if delta.fails(limits):
            note = "  FAIL" if gated else "  dropped"
        elif delta.dropped(limits):
            note = f"  (dropped, but n < {limits.min_support}: not gated)"
        if delta.change is not None and delta.support != delta.reference_support:
            note += f"  (n was {delta.reference_support})"
        lines.append(f"{delta.label:42} {old:>6} {now:>6} {change:>7} {support:4d}{note}")
    if len(changed) < len(deltas):
        lines.append(f"(the other {len(deltas) - len(changed)} intents and FAQ topics: no change)")
    return "\n".join(lines)


def summary_line(name: str, key: str, current: Scores, reference: Optional[Scores], floor: str) -> str:
    value = current["summary"].get(key)
    if value is None:
        return ""
    line = f"{name} {value:.3f}{floor}"
    old = (reference or {}).get("summary", {}).get(key)
    if old is not None:
        line += f"; reference {old:.3f} ({value - old:+.3f})"
    return line


def report(current: Scores, reference: Optional[Scores], reference_name: str, limits: Thresholds,
           gated: bool = True) -> str:
    text = [
        format_table("Intents (held-out test set)", current["intents"]),
        "",
        format_table("FAQ topics (right when the intent is faq and the topic's answer is picked)",
                     current["faq_topics"]),
        "",
        format_table("Entities (EntityNormalizer output)", current["entities"]),
        "",
    ]
    if reference is None:
        text += [f"No reference scores at {reference_name}: no comparison (floors only).", ""]
    else:
        rule = (f"FAIL: an intent or FAQ topic with n >= {limits.min_support} lost more than {limits.max_drop} F1."
                if gated else "Not gated: --write-reference replaces the reference.")
        text.append(f"Change against the reference {reference_name}, worst first. {rule}")
        if reference.get("test_set_sha256") != current.get("test_set_sha256"):
            text.append("Note: the held-out test set changed since the reference was written.")
        text += [format_deltas(compare(current, reference), limits, gated), ""]
    text += [line for line in (
        summary_line("intent macro-F1", "intent_macro_f1", current, reference, f" (min {limits.min_intent_f1})"),
        summary_line("entity micro-F1", "entity_micro_f1", current, reference, f" (min {limits.min_entity_f1})"),
        summary_line("FAQ answer accuracy", "faq_accuracy", current, reference, ""),
    ) if line]
    return "\n".join(text)


def write_json(path: Path, scores: Scores) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n")


def main(model: str, nlu: str, out: str, min_intent_f1: float, min_entity_f1: float,
         reference: str = str(REFERENCE), write_reference: bool = False,
         max_drop: float = Thresholds.max_drop, min_support: int = Thresholds.min_support) -> int:
    limits = Thresholds(min_intent_f1, min_entity_f1, max_drop, min_support)
    out_path, reference_path = Path(out), Path(reference)
    run_rasa_test(Path(model), Path(nlu), out_path)
    current = collect_scores(out_path)
    current["test_set_sha256"] = fingerprint_test_set(Path(nlu))
    current["model_sha256"] = file_sha256(Path(model))
    write_json(out_path / SCORES, current)
    previous = json.loads(reference_path.read_text()) if reference_path.exists() else None
    print(report(current, previous, reference, limits, gated=not write_reference))
    if write_reference:
        # An intended change: the old reference's drops are shown above, not gated; floors still are.
        reasons = failures(current, None, limits)
        if not reasons:
            write_json(reference_path, current)
            print(f"Reference scores written to {reference_path}: commit it with the change.")
    else:
        reasons = failures(current, previous, limits)
    for reason in reasons:
        print(f"  - {reason}")
    print("NLU gate: " + ("FAILED" if reasons else "PASSED"))
    return 1 if reasons else 0
