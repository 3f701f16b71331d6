"""Write a benchmark result as JSON, a Markdown report and PNG plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

CITATIONS = {
    "banking77": "BANKING77: I. Casanueva, T. Temčinas, D. Gerz, M. Henderson, I. Vulić. "
                 "*Efficient Intent Detection with Dual Sentence Encoders.* NLP4ConvAI 2020, "
                 "arXiv:2003.04807. PolyAI, CC BY 4.0.",
    "nlupp": "NLU++: I. Casanueva, I. Vulić, G. Spithourakis, P. Budzianowski. *NLU++: A Multi-Label, "
             "Slot-Rich, Generalisable Dataset for Natural Language Understanding in Task-Oriented "
             "Dialogue.* Findings of NAACL 2022, arXiv:2204.13021. PolyAI, CC BY 4.0.",
}

# (key, label, format, higher is better)
FIGURES = [
    ("accuracy", "accuracy (fallback counts as wrong)", "{:.3f}", True),
    ("accuracy_without_fallback", "accuracy, top intent ignoring fallback", "{:.3f}", True),
    ("macro_f1", "macro-F1 (fallback counts as wrong)", "{:.3f}", True),
    ("macro_f1_without_fallback", "macro-F1, ignoring fallback", "{:.3f}", True),
    ("intent_micro_f1", "intent micro-F1 over individual labels", "{:.3f}", True),
    ("intent_micro_f1_without_fallback", "intent micro-F1, ignoring fallback", "{:.3f}", True),
    ("entity_micro_f1", "entity/slot micro-F1 (exact spans)", "{:.3f}", True),
    ("fallback_rate", "share sent to nlu_fallback", "{:.3f}", False),
    ("ece", "expected calibration error (10 bins)", "{:.3f}", False),
    ("train_seconds", "training wall time (s)", "{:.1f}", False),
    ("train_cpu_seconds", "training CPU time, user + system (s)", "{:.1f}", False),
    ("model_size_mb", "model size (MB, .tar.gz)", "{:.1f}", False),
    ("peak_rss_train_mb", "peak memory after training (MB)", "{:.0f}", False),
    ("peak_rss_parse_mb", "peak memory, loading and parsing (MB)", "{:.0f}", False),
    ("model_load_seconds", "model load time (s)", "{:.1f}", False),
    ("parse_p50_ms", "parse latency p50, in process (ms)", "{:.1f}", False),
    ("parse_p95_ms", "parse latency p95, in process (ms)", "{:.1f}", False),
    ("http_p50_ms", "parse latency p50, HTTP /model/parse (ms)", "{:.1f}", False),
    ("http_p95_ms", "parse latency p95, HTTP /model/parse (ms)", "{:.1f}", False),
]

MULTI_LABEL_NOTE = (
    "**How multi-label intents are handled.** Rasa predicts one intent per message. Each NLU++ "
    "label set becomes one Rasa intent made of the sorted labels joined by `+` (an example with no "
    "label gets `no_label`), and every tokenizer is set to `intent_tokenization_flag: true` with "
    "`intent_split_symbol: '+'`. A single-label classifier such as DIET then picks one of the label "
    "*combinations seen in training*: a combination that only occurs in the test folds cannot be "
    "predicted exactly, which caps recall, most of all in the \"low\" protocol. LinearIntentClassifier "
    "with `multi_label: true` (supportbot/benchmark/nlupp_config.yml) instead decides each label with its "
    "own binary model and threshold, as the NLU++ paper does, and can output any combination. Scores "
    "split the predicted `a+b` back into labels and count micro-F1 over individual labels "
    "(`nlu_fallback` and `no_label` are the empty set); \"accuracy\" is exact match of the whole set. "
    "Slots are Rasa entities; slot micro-F1 counts exact (start, end, slot) spans, ignoring predicted "
    "entity types the data set does not define."
)

METHOD_NOTE = (
    "How the figures are measured: \"fallback counts as wrong\" scores the intent the assistant acts on "
    "(`nlu_fallback` included); \"ignoring fallback\" scores the classifier's top-ranked intent. Macro-F1 "
    "averages over the intents of the test set. Calibration compares the top-ranked intent's confidence "
    "with its correctness. Training time is the wall time of Rasa's `train_nlu` (imports excluded, training "
    "cache off); its CPU time (user + system, from `getrusage`) depends much less on other load on the "
    "machine. Peak memory is the peak resident set (`VmHWM`, imports included) of the worker process that "
    "trains, right after training, and of a fresh process that loads the trained model "
    "and parses the test set, as a server would. In-process latency times `Agent.parse_message` per test "
    "message in that fresh process (the training process parses slower: it keeps the training state); HTTP "
    "latency times sequential `POST /model/parse` requests to `rasa run --enable-api` on localhost with the "
    "first run's models (both servers start together, then each is timed alone); both after 3 warm-up parses."
)


def fmt(value: Optional[float], pattern: str = "{:.3f}") -> str:
    return "–" if value is None else pattern.format(value)


def write_json(result: Dict[str, Any], path: Path) -> None:
    def strip(node: Any) -> Any:  # raw latency lists stay out of the JSON: summaries only
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "latency_ms"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    path.write_text(json.dumps(strip(result), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def publish(result: Dict[str, Any], markdown: str, out: Path, name: str = "report") -> Path:
    """A benchmark's result as `<name>.json` and `<name>.md` in `out`; prints the Markdown and
    where it is. The Markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
    print(f"Report: {out / f'{name}.md'}")
    return out / f"{name}.md"


def headline_table(result: Dict) -> List[str]:
    cand, base = result["results"]["candidate"]["summary"], result["results"]["baseline"]["summary"]
    single_label = result["dataset"]["name"] == "banking77"  # label micro-F1 would repeat accuracy
    lines = ["| figure | candidate | baseline | ratio (candidate / baseline) |", "| --- | ---: | ---: | ---: |"]
    for key, label, pattern, higher in FIGURES:
        if (cand.get(key) is None and base.get(key) is None) or (single_label and "micro_f1" in key):
            continue
        better = "higher is better" if higher else "lower is better"
        lines.append(f"| {label} ({better}) | {fmt(cand.get(key), pattern)} | {fmt(base.get(key), pattern)} "
                     f"| {fmt(result['ratios'].get(key), '{:.2f}')} |")
    return lines


def per_intent_table(result: Dict) -> List[str]:
    cand = result["results"]["candidate"]["per_intent"]
    base = result["results"]["baseline"]["per_intent"]
    lines = ["| intent | support | candidate P | candidate R | candidate F1 | baseline F1 |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label in sorted(cand, key=lambda name: (cand[name]["f1"], name)):
        c = cand[label]
        b = base.get(label, {}).get("f1")
        lines.append(f"| {label} | {c['support']} | {c['precision']:.2f} | {c['recall']:.2f} | {c['f1']:.2f} "
                     f"| {fmt(b, '{:.2f}')} |")
    return lines


def threshold_lines(result: Dict) -> List[str]:
    """Escalation against misroute rate per global threshold (single-label data only)."""
    curves = {tag: result["results"][tag].get("threshold_curve") for tag in ("candidate", "baseline")}
    if not curves["candidate"]:
        return []
    lines = ["A message whose top intent's confidence is below the threshold is escalated (asked to rephrase, "
             "then handed off); one above it with the wrong intent is misrouted. The ambiguity margin is "
             "ignored here.", "",
             "| threshold | candidate escalated | candidate misrouted | baseline escalated | baseline misrouted |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    baseline = {row["threshold"]: row for row in curves["baseline"] or []}
    for row in curves["candidate"]:
        base = baseline.get(row["threshold"], {})
        lines.append(f"| {row['threshold']:.2f} | {fmt(row['escalation_rate'])} | {fmt(row['misroute_rate'])} "
                     f"| {fmt(base.get('escalation_rate'))} | {fmt(base.get('misroute_rate'))} |")
    calibrated = result["results"]["candidate"].get("calibrated_thresholds")
    if calibrated:
        lines += ["", "Candidate, thresholds calibrated for a misroute cost (in escalations), scored out of "
                  "sample (5-fold cross-fitting: each message is scored by thresholds fitted without it): "
                  "per-intent thresholds (`supportbot thresholds`) against the best single threshold fitted "
                  "the same way. The last column is the per-message cost difference (per-intent minus single) "
                  "with its 95% paired bootstrap interval: one that contains 0 cannot tell the two apart.", "",
                  "| misroute cost | per-intent escalated | per-intent misrouted | per-intent cost "
                  "| single escalated | single misrouted | single cost | difference (95% interval) |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        rows = zip(calibrated["per_intent"], calibrated["global"], calibrated["difference"])
        for mine, single, difference in rows:
            cost = mine["misroute_cost"]
            interval = f"{difference['mean']:+.3f} ({difference['low']:+.3f} to {difference['high']:+.3f})"
            lines.append(f"| {cost:g} | {fmt(mine['escalation_rate'])} | {fmt(mine['misroute_rate'])} "
                         f"| {fmt(mine['cost'])} "
                         f"| {fmt(single['escalation_rate'])} | {fmt(single['misroute_rate'])} "
                         f"| {fmt(single['cost'])} | {interval} |")
    return lines


def confusion_lines(result: Dict) -> List[str]:
    lines = []
    for tag in ("candidate", "baseline"):
        pairs = result["results"][tag]["confused_pairs"]
        lines.append(f"**{tag}**: " + ("none" if not pairs else ""))
        lines.extend(f"- {p['gold']} → {p['predicted']}: {p['count']}" for p in pairs)
        lines.append("")
    return lines


def dataset_lines(result: Dict) -> List[str]:
    dataset = result["dataset"]
    info = dataset["info"]
    lines = [f"- data set: **{dataset['name']}**"]
    if dataset["name"] == "nlupp":
        lines.append(f"- protocol \"{info['protocol']}\": {info['runs']} of {info['runs_in_protocol']} runs "
                     f"(folds in {info['folds_dir']}); train sizes {info['n_train']}, test sizes {info['n_test']}")
        lines.append("- headline figures are means over runs; per-label tables, confusions and calibration "
                     "pool the predictions of all runs")
    elif info.get("folds"):
        lines.append(f"- {info['evaluation']}")
        lines.append(f"- train sizes {info['n_train']}, test sizes {info['n_test']}; headline figures are means "
                     "over folds; per-intent tables, confusions, calibration and thresholds pool the folds' "
                     "out-of-sample predictions")
    else:
        lines.append(f"- evaluated on {info['evaluation']}")
        if info.get("n_train") is not None:
            lines.append(f"- {info['n_train']} training examples, {info['n_test']} test examples")
        else:
            lines.append(f"- trained on {info['train_path']}, {info['n_test']} test examples")
    for key in ("shots", "subset_intents", "max_examples", "max_test"):
        if info.get(key) is not None:
            lines.append(f"- `{key}` = {info[key]}" + (" (intents drawn with the seed; see the JSON)"
                                                        if key == "subset_intents" else ""))
    lines.append(f"- seed {result['seed']} for every sample and every component's `random_seed`")
    return lines


def component_lines(result: Dict, top: int = 10) -> List[str]:
    """The slowest graph components of each config, per in-process parse."""
    lines = []
    for tag in ("candidate", "baseline"):
        rows = result["results"][tag]["latency"].get("components") or []
        if not rows:
            continue
        lines += [f"**{tag}** (slowest {min(top, len(rows))} of {len(rows)} graph nodes)", "",
                  "| component | p50 ms | p95 ms |", "| --- | ---: | ---: |"]
        lines += [f"| {row['component']} | {fmt(row['p50_ms'], '{:.2f}')} | {fmt(row['p95_ms'], '{:.2f}')} |"
                  for row in rows[:top]]
        lines.append("")
    return lines


def config_lines(result: Dict) -> List[str]:
    lines = []
    for tag in ("candidate", "baseline"):
        config = result["configs"][tag]
        lines.append(f"- **{tag}**: `{config['path']}` — " + " → ".join(config["pipeline"]))
        lines.extend(f"  - changed for this run: {change}" for change in config["changes"])
    base_epochs = result["configs"]["baseline"]["epochs_override"]
    if base_epochs is not None:
        lines.append(f"- **The baseline was shortened to {base_epochs} epochs** (`--baseline-epochs`; "
                     "`rasa init` uses 100): its figures, and every ratio, are not those of the real default.")
    if result["configs"]["candidate"]["epochs_override"] is not None:
        lines.append(f"- **The candidate was shortened to {result['configs']['candidate']['epochs_override']} "
                     "epochs** (`--epochs`).")
    return lines


def write_markdown(result: Dict, path: Path, plots: Dict[str, str]) -> None:
    machine = result["machine"]
    lines = [
        f"# NLU benchmark: {result['dataset']['name']}", "",
        f"Run {result['started']} in {result['duration_seconds']:.0f} s. Command:", "",
        "```", result["command"], "```", "",
        f"Machine: {machine['cpus']} CPU cores, {machine['gpu']}, {machine['platform']}, Python "
        f"{machine['python']}, Rasa {machine['rasa']}; niceness {machine['niceness']}; load average (1, 5, 15 "
        f"min) {machine['load_average']} at the start and {machine.get('load_average_end')} at the end: "
        "wall times and latencies rise with other load, CPU times much less.", "",
        "## Data", "", *dataset_lines(result), "",
        "## Configs", "",
        "Each figure of the candidate is also given as a ratio to the baseline, Rasa's default "
        "(`rasa init`) pipeline trained and scored on the same split in the same run.", "",
        *config_lines(result), "",
    ]
    if result["dataset"]["name"] == "nlupp":
        lines += [MULTI_LABEL_NOTE, ""]
    lines += ["## Results", "", *headline_table(result), "",
              METHOD_NOTE,
              ""]
    for name, title in (("ratios", "Ratios to the baseline"), ("reliability", "Reliability diagram"),
                        ("per_intent_f1", "Per-intent F1"), ("latency", "Parse latency")):
        if name in plots:
            lines += [f"![{title}]({plots[name]})", ""]
    components = component_lines(result)
    if components:
        lines += ["## Parse time by component", "",
                  "Time per in-process parse spent in each graph component (the rest of a parse is Rasa's "
                  "own message handling).", "", *components]
    lines += ["## Calibration", "",
              f"ECE candidate {fmt(result['results']['candidate']['summary']['ece'])}, "
              f"baseline {fmt(result['results']['baseline']['summary']['ece'])} (10 equal-width bins).", "",
              *(["## Fallback threshold: escalation against misrouting", "", *threshold_lines(result), "",
                 f"![Escalation against misrouting]({plots['thresholds']})", ""] if "thresholds" in plots else []),
              "## Most confused pairs (gold → predicted)", "", *confusion_lines(result),
              "## Per intent (candidate, worst first)", "", *per_intent_table(result), ""]
    if len(result["results"]["candidate"]["runs"]) > 1:
        lines += ["## Runs", "", "| run | config | accuracy | intent micro-F1 | slot micro-F1 | train s |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for tag in ("candidate", "baseline"):
            for run in result["results"][tag]["runs"]:
                lines.append(f"| {run['name']} | {tag} | {fmt(run['accuracy'])} | {fmt(run['intent_micro_f1'])} "
                             f"| {fmt(run['entity_micro_f1'])} | {run['train_seconds']:.1f} |")
        lines.append("")
    citation = CITATIONS.get(result["dataset"]["name"])
    lines += ["## Data citation", "", citation or "The project's own data (data/nlu, tests/nlu).", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_plots(result: Dict, out: Path) -> Dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    tags = ("candidate", "baseline")
    colors = {"candidate": "tab:blue", "baseline": "tab:gray"}

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ":", color="black", label="perfect calibration")
    for offset, tag in ((-0.02, "candidate"), (0.02, "baseline")):
        calibration = result["results"][tag]["calibration"]
        bins = [b for b in calibration["bins"] if b["count"]]
        ax.bar([(b["lower"] + b["upper"]) / 2 + offset for b in bins], [b["accuracy"] for b in bins],
               width=0.04, color=colors[tag], label=f"{tag} (ECE {fmt(calibration['ece'])})")
    ax.set(xlabel="confidence of the top intent", ylabel="accuracy in bin", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    files["reliability"] = _save(fig, out / "reliability.png")

    cand = result["results"]["candidate"]["per_intent"]
    base = result["results"]["baseline"]["per_intent"]
    labels = sorted(cand, key=lambda name: (cand[name]["f1"], name))
    fig, ax = plt.subplots(figsize=(7, max(3, 0.22 * len(labels) + 1)))
    positions = range(len(labels))
    ax.barh([p + 0.2 for p in positions], [cand[k]["f1"] for k in labels], height=0.4,
            color=colors["candidate"], label="candidate")
    ax.barh([p - 0.2 for p in positions], [base.get(k, {}).get("f1", 0) for k in labels], height=0.4,
            color=colors["baseline"], label="baseline")
    ax.set_yticks(list(positions))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set(xlabel="F1", xlim=(0, 1))
    ax.legend(loc="lower right")
    files["per_intent_f1"] = _save(fig, out / "per_intent_f1.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    series, names = [], []
    for tag in tags:
        for kind in ("in_process", "http"):
            latency = result["results"][tag]["latency"].get(kind)
            if latency and latency.get("latency_ms"):
                series.append(latency["latency_ms"])
                names.append(f"{tag}\n{kind.replace('_', ' ')}")
    if series:
        ax.boxplot(series, showfliers=False)
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(names, fontsize=8)
    ax.set(ylabel="parse latency (ms)")
    files["latency"] = _save(fig, out / "latency.png")

    if result["results"]["candidate"].get("threshold_curve"):
        fig, ax = plt.subplots(figsize=(5, 4))
        for tag in tags:
            curve = result["results"][tag].get("threshold_curve") or []
            ax.plot([r["escalation_rate"] for r in curve], [r["misroute_rate"] for r in curve], "o-",
                    markersize=3, color=colors[tag], label=tag)
            for row in curve[::4]:
                ax.annotate(f"{row['threshold']:.2f}", (row["escalation_rate"], row["misroute_rate"]),
                            fontsize=7, color=colors[tag])
        calibrated = result["results"]["candidate"].get("calibrated_thresholds") or {}
        for kind, marker in (("per_intent", "x"), ("global", "+")):
            points = calibrated.get(kind) or []
            ax.plot([p["escalation_rate"] for p in points], [p["misroute_rate"] for p in points], marker,
                    markersize=8, linestyle="none", color="tab:red" if kind == "per_intent" else "tab:green",
                    label=f"candidate, {kind.replace('_', '-')} thresholds (cross-fitted)")
        ax.set(xlabel="escalation rate (below the threshold)", ylabel="misroute rate (wrong intent answered)")
        ax.legend(loc="upper right")
        files["thresholds"] = _save(fig, out / "thresholds.png")

    ratios = [(label.split(" (")[0], result["ratios"][key]) for key, label, _, _ in FIGURES
              if result["ratios"].get(key) is not None]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(ratios) + 1)))
    ax.barh(range(len(ratios)), [value for _, value in ratios], color=colors["candidate"])
    ax.axvline(1.0, color="black", linestyle=":")
    ax.set_yticks(range(len(ratios)))
    ax.set_yticklabels([name for name, _ in ratios], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="candidate / baseline")
    files["ratios"] = _save(fig, out / "ratios.png")
    return files


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
