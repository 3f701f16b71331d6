"""The retrain report: what was learned, candidate against served model per test set (summary,
per-intent F1 with a PNG plot, confusions that changed), and the verdict with its reasons."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from supportbot import nlu_gate

REPORT = "report.md"


def _plot(name: str, current: nlu_gate.Scores, candidate: nlu_gate.Scores, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(set(current["intents"]) | set(candidate["intents"]))
    before = [current["intents"].get(label, {}).get("f1", 0) for label in labels]
    after = [candidate["intents"].get(label, {}).get("f1", 0) for label in labels]
    figure, axes = plt.subplots(figsize=(8, 0.28 * len(labels) + 1.5))
    positions = range(len(labels))
    axes.barh([p + 0.2 for p in positions], before, height=0.4, label="served")
    axes.barh([p - 0.2 for p in positions], after, height=0.4, label="candidate")
    axes.set_yticks(list(positions), labels, fontsize=7)
    axes.set_xlim(0, 1)
    axes.set_xlabel("intent F1")
    axes.set_title(f"Intent F1 on {name}")
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _confusion_rows(current_out: Path, candidate_out: Path) -> List[str]:
    from supportbot.learning.retrain import confusions

    before, after = confusions(current_out), confusions(candidate_out)
    rows = []
    for pair in sorted(set(before) | set(after), key=lambda p: -abs(after.get(p, 0) - before.get(p, 0))):
        if before.get(pair, 0) != after.get(pair, 0):
            rows.append(f"| {pair[0]} | {pair[1]} | {before.get(pair, 0)} | {after.get(pair, 0)} |")
    return rows


def write_report(work: Path, learned, results: Dict[str, Tuple], verdict) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    lines = [f"# Retrain report, {work.name}", "",
             f"**{'Promoted' if verdict.promoted else 'Rejected'}.**", ""]
    lines += [f"- {reason}" for reason in verdict.reasons] or ["- every check passed"]
    lines += ["", "## What was learned", "",
              f"{learned.training} accepted examples in training data, {learned.heldout} held out, "
              f"{learned.already_in_data} already in data/nlu.", ""]
    lines += [f"- {note}" for note in verdict.notes] + ([""] if verdict.notes else [])
    for name, (current, candidate, current_out, candidate_out) in results.items():
        slug = name.replace("/", "_").replace(" ", "_")
        plot = work / f"intent_f1_{slug}.png"
        _plot(name, current, candidate, plot)
        lines += [f"## {name}", "", "| | served | candidate |", "| --- | --- | --- |"]
        for key, value in candidate["summary"].items():
            lines.append(f"| {key} | {current['summary'].get(key, 0):.4f} | {value:.4f} |")
        lines += ["", f"![intent F1]({plot.name})", "", "| intent | served F1 | candidate F1 | n |",
                  "| --- | --- | --- | --- |"]
        for delta in nlu_gate.compare(candidate, current):
            if delta.change:
                before, after = delta.reference_f1 or 0, delta.f1 or 0
                lines.append(f"| {delta.label} | {before:.3f} | {after:.3f} | {delta.support} |")
        changed = _confusion_rows(current_out, candidate_out)
        if changed:
            lines += ["", "Confusions that changed:", "", "| intent | taken as | served | candidate |",
                      "| --- | --- | --- | --- |", *changed]
        lines.append("")
    if verdict.swaps:
        lines += ["## Model swap", "", *[f"- {url}: {outcome}" for url, outcome in verdict.swaps.items()], ""]
    path = work / REPORT
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
