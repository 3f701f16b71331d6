"""Per-intent fallback thresholds, calibrated on validation predictions for a cost of misrouting.

For the messages whose top intent is X, a threshold t escalates those with confidence below t
(cost 1 each: the customer is asked to pick or rephrase) and lets the others through, of which the
ones whose true intent is not X are misrouted (cost `misroute_cost` each). Each intent with enough
predictions gets the t of the grid with the lowest total cost; the others keep the global default.

Thresholds fitted and scored on the same messages look better than they are, so `cross_fitted`
scores them out of sample: calibrate on all folds but one, score that one, and pool the folds.
Both calibrations are scored on the same messages, so `paired_difference` bootstraps their
per-message cost difference: an interval that contains 0 means the data cannot tell them apart.
"""
from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from supportbot.benchmark.metrics import THRESHOLDS, top_non_fallback

Top = Tuple[str, float]  # the top-ranked non-fallback intent and its confidence
COSTS = (1.0, 1.5, 2.0, 3.0, 5.0, 8.0)


RIGHT, ESCALATED, MISROUTED = "right", "escalated", "misrouted"


def outcome(truth: str, top: Top, thresholds: Dict[str, float], default: float) -> str:
    name, confidence = top
    if confidence < thresholds.get(name, default):
        return ESCALATED
    return MISROUTED if name != truth else RIGHT


def outcome_counts(gold: Sequence[str], top: Sequence[Top], thresholds: Dict[str, float],
                   default: float) -> Tuple[int, int]:
    """(escalated, misrouted) messages under these thresholds."""
    outcomes = [outcome(truth, t, thresholds, default) for truth, t in zip(gold, top)]
    return outcomes.count(ESCALATED), outcomes.count(MISROUTED)


def costs(outcomes: Sequence[str], misroute_cost: float) -> List[float]:
    """Each outcome's cost in escalations: nothing when right, 1 escalated, `misroute_cost` misrouted."""
    return [{RIGHT: 0.0, ESCALATED: 1.0, MISROUTED: misroute_cost}[o] for o in outcomes]


def total_cost(gold: Sequence[str], top: Sequence[Top], thresholds: Dict[str, float], default: float,
               misroute_cost: float) -> float:
    return sum(costs([outcome(truth, t, thresholds, default) for truth, t in zip(gold, top)], misroute_cost))


def calibrate(gold: Sequence[str], top: Sequence[Top], misroute_cost: float, default: float,
              grid: Sequence[float] = THRESHOLDS, min_support: int = 5) -> Dict[str, float]:
    """The cheapest threshold per predicted intent with at least `min_support` predictions.
    Ties go to the threshold nearest the default, so sparse evidence moves it least."""
    by_intent: Dict[str, List[int]] = defaultdict(list)
    for index, (name, _) in enumerate(top):
        by_intent[name].append(index)
    chosen = {}
    for name, members in sorted(by_intent.items()):
        if len(members) >= min_support:
            member_gold, member_top = [gold[i] for i in members], [top[i] for i in members]
            cost = {t: total_cost(member_gold, member_top, {}, t, misroute_cost) for t in grid}
            chosen[name] = min(grid, key=lambda t: (cost[t], abs(t - default)))
    return chosen


def cross_fitted_outcomes(gold: Sequence[str], top: Sequence[Top], misroute_cost: float, default: float,
                          per_intent: bool = True, folds: int = 5, seed: int = 42,
                          min_support: int = 5) -> List[str]:
    """Each message's outcome under per-intent thresholds (or the best single threshold)
    calibrated on the other folds."""
    order = list(range(len(gold)))
    random.Random(seed).shuffle(order)
    outcomes = [RIGHT] * len(gold)
    for fold in range(folds):
        held = order[fold::folds]
        fit = sorted(set(order) - set(held))
        fit_gold, fit_top = [gold[i] for i in fit], [top[i] for i in fit]
        if per_intent:
            thresholds = calibrate(fit_gold, fit_top, misroute_cost, default, min_support=min_support)
            fallback = default
        else:
            thresholds, fallback = {}, best_global(fit_gold, fit_top, misroute_cost)
        for i in held:
            outcomes[i] = outcome(gold[i], top[i], thresholds, fallback)
    return outcomes


def rates(outcomes: Sequence[str], misroute_cost: float) -> Dict[str, float]:
    """Escalation and misroute rates, and the mean cost per message in escalations."""
    total = len(outcomes) or 1
    return {"misroute_cost": misroute_cost, "escalation_rate": outcomes.count(ESCALATED) / total,
            "misroute_rate": outcomes.count(MISROUTED) / total,
            "cost": sum(costs(outcomes, misroute_cost)) / total}


def cross_fitted(gold: Sequence[str], top: Sequence[Top], misroute_cost: float, default: float,
                 per_intent: bool = True, folds: int = 5, seed: int = 42) -> Dict[str, float]:
    """Escalation and misroute rates of per-intent thresholds (or of the best single threshold),
    each message scored by thresholds calibrated without it."""
    return rates(cross_fitted_outcomes(gold, top, misroute_cost, default, per_intent, folds, seed), misroute_cost)


def paired_difference(first: Sequence[float], second: Sequence[float], seed: int = 42,
                      resamples: int = 2000) -> Dict[str, float]:
    """Mean per-message difference first - second, with a 95% paired bootstrap interval."""
    differences = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    if not len(differences):
        return {"mean": 0.0, "low": 0.0, "high": 0.0}
    draws = np.random.default_rng(seed).integers(0, len(differences), (resamples, len(differences)))
    means = differences[draws].mean(axis=1)
    return {"mean": float(differences.mean()), "low": float(np.percentile(means, 2.5)),
            "high": float(np.percentile(means, 97.5))}


def compare(gold: Sequence[str], top: Sequence[Top], misroute_cost: float, default: float,
            min_support: int = 5) -> Dict[str, Dict]:
    """Per-intent against single threshold at one misroute cost: both cross-fitted, and the
    per-message cost difference (per-intent minus single) with its bootstrap interval."""
    mine = cross_fitted_outcomes(gold, top, misroute_cost, default, per_intent=True, min_support=min_support)
    single = cross_fitted_outcomes(gold, top, misroute_cost, default, per_intent=False)
    return {"per_intent": rates(mine, misroute_cost), "global": rates(single, misroute_cost),
            "difference": {"misroute_cost": misroute_cost,
                           **paired_difference(costs(mine, misroute_cost), costs(single, misroute_cost))}}


def best_global(gold: Sequence[str], top: Sequence[Top], misroute_cost: float,
                grid: Sequence[float] = THRESHOLDS) -> float:
    """The single threshold with the lowest cost on these messages (for comparison)."""
    cost = {t: total_cost(gold, top, {}, t, misroute_cost) for t in grid}
    return min(grid, key=lambda t: (cost[t], t))


def calibrated_curve(gold: Sequence[str], top: Sequence[Top], default: float,
                     misroute_costs: Sequence[float] = COSTS) -> Optional[Dict[str, List[Dict[str, float]]]]:
    """Cross-fitted (escalation, misroute) points, one per misroute cost, of per-intent thresholds
    and of the best single threshold fitted the same way, and their paired cost difference."""
    if len(gold) < 20:
        return None
    compared = [compare(gold, top, cost, default) for cost in misroute_costs]
    return {kind: [c[kind] for c in compared] for kind in ("per_intent", "global", "difference")}


def command(predictions: Path, misroute_cost: float, default: float, min_support: int) -> int:
    """`supportbot thresholds`: per-intent thresholds from a benchmark's predictions file, printed as
    the config.yml entry, with their cross-fitted rates next to the best single threshold's."""
    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        print(f"No predictions in {predictions}.", file=sys.stderr)
        return 2
    gold, top = [r["gold"] for r in rows], [top_non_fallback(r) for r in rows]
    chosen = calibrate(gold, top, misroute_cost, default, min_support=min_support)
    compared = compare(gold, top, misroute_cost, default, min_support)
    print(f"# {len(rows)} messages from {predictions}; misroute cost {misroute_cost:g} escalations.")
    for label, kind in (("per-intent thresholds", "per_intent"), ("best single threshold", "global")):
        rate = compared[kind]
        print(f"# {label}, cross-fitted: escalated {rate['escalation_rate']:.3f}, "
              f"misrouted {rate['misroute_rate']:.3f}, cost {rate['cost']:.3f}")
    difference = compared["difference"]
    verdict = ("cannot be told apart on these messages" if difference["low"] <= 0 <= difference["high"]
               else "per-intent is cheaper" if difference["high"] < 0 else "the single threshold is cheaper")
    print(f"# per-intent minus single, cost per message: {difference['mean']:+.3f} (95% paired bootstrap "
          f"interval {difference['low']:+.3f} to {difference['high']:+.3f}): {verdict}")
    print(yaml.safe_dump({"pipeline": [{
        "name": "supportbot.nlu.thresholds.PerIntentFallbackClassifier",
        "threshold": default, "ambiguity_threshold": 0.05, "intent_thresholds": chosen}]}, sort_keys=False))
    return 0


# --- Per-intent thresholds from written-down costs (`python -m supportbot.benchmark.calibration`) -----

FALLBACK_COMPONENT = "supportbot.nlu.thresholds.PerIntentFallbackClassifier"
CLASSIFIER_SUFFIX = "LinearIntentClassifier"
BEGIN = "# calibrated thresholds: begin"
END = "# calibrated thresholds: end"


def cost_table(component: Dict) -> Tuple[float, Dict[str, float]]:
    """(cost of a clarification, cost of acting on each costly intent wrongly) from the
    PerIntentFallbackClassifier's config entry."""
    return float(component.get("clarification_cost", 1.0)), {
        name: float(value) for name, value in (component.get("wrong_costs") or {}).items()}


def intent_cost(gold: Sequence[str], top: Sequence[Top], threshold: float, wrong_cost: float,
                clarification_cost: float) -> float:
    """Cost of one threshold over the messages whose top intent is one intent: each message below it
    gets a clarification, each one at or above it whose true intent is another costs `wrong_cost`."""
    return sum(clarification_cost if confidence < threshold else (wrong_cost if truth != name else 0.0)
               for truth, (name, confidence) in zip(gold, top))


def calibrate_costs(gold: Sequence[str], top: Sequence[Top], wrong_costs: Dict[str, float],
                    clarification_cost: float, default: float, min_support: int = 5,
                    grid: Sequence[float] = THRESHOLDS) -> Dict[str, Dict[str, float]]:
    """Per costly intent with at least `min_support` predictions, the threshold (from the default up)
    with the lowest cost, ties to the lowest; with its support and costs at the default and at it."""
    candidates = [t for t in grid if t >= default] or [default]
    chosen = {}
    for name, wrong_cost in sorted(wrong_costs.items()):
        members = [i for i, (predicted, _) in enumerate(top) if predicted == name]
        if len(members) < min_support:
            continue
        member_gold, member_top = [gold[i] for i in members], [top[i] for i in members]
        cost = {t: intent_cost(member_gold, member_top, t, wrong_cost, clarification_cost) for t in candidates}
        best = min(candidates, key=lambda t: (cost[t], t))
        at_default = intent_cost(member_gold, member_top, default, wrong_cost, clarification_cost)
        chosen[name] = {"threshold": best, "support": len(members),
                        "wrong": sum(truth != name for truth in member_gold),
                        "cost_at_default": at_default, "cost": cost[best]}
    return chosen


def classifier_config(config: Dict) -> Dict:
    """The config with its pipeline cut after the intent classifier and no policies: what the
    out-of-sample intent predictions need, without training DIET or the selectors."""
    pipeline = config.get("pipeline") or []
    cut = next(i for i, c in enumerate(pipeline) if str(c.get("name", "")).endswith(CLASSIFIER_SUFFIX))
    return {**{k: v for k, v in config.items() if k not in ("pipeline", "policies")},
            "pipeline": pipeline[: cut + 1], "policies": []}


def fallback_component(config: Dict) -> Dict:
    for component in config.get("pipeline") or []:
        if component.get("name") == FALLBACK_COMPONENT:
            return component
    raise SystemExit(f"config has no {FALLBACK_COMPONENT} to calibrate")


def out_of_sample(config_path: Path, data: Path, domain: Optional[Path], folds: int, seed: int,
                  workdir: Path) -> Tuple[List[str], List[Top]]:
    """(true intent, top predicted intent) of every training message, each predicted by the
    classifier trained on the other folds (stratified by intent, fixed seed)."""
    from supportbot.benchmark.datasets import load_project_folds, write_training_yaml
    from supportbot.benchmark.runner import run_worker

    workdir.mkdir(parents=True, exist_ok=True)
    reduced = workdir / "config.yml"
    reduced.write_text(yaml.safe_dump(classifier_config(yaml.safe_load(config_path.read_text(encoding="utf-8"))),
                                      sort_keys=False), encoding="utf-8")
    benchmark = load_project_folds(data, domain, folds, seed)
    gold: List[str] = []
    top: List[Top] = []
    for index, run in enumerate(benchmark.runs):
        rundir = workdir / f"fold-{index}"
        rundir.mkdir(parents=True, exist_ok=True)
        print(f"# {run.name}: training on {len(run.train.intent_examples)}, predicting {len(run.test)}",
              file=sys.stderr, flush=True)
        result = run_worker(reduced, write_training_yaml(run.train, rundir / "train.yml"), domain,
                            [e.text for e in run.test], rundir)
        gold += [e.intent for e in run.test]
        top += [top_non_fallback(p) for p in result["predictions"]]
    return gold, top


def write_thresholds(config_path: Path, thresholds: Dict[str, float]) -> None:
    """Replace the lines between the BEGIN and END markers of config.yml (nothing else) with
    `intent_thresholds`, indented like the BEGIN marker."""
    lines = config_path.read_text(encoding="utf-8").splitlines(keepends=True)
    begin = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
    end = next(i for i, line in enumerate(lines) if line.strip() == END and i > begin)
    indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
    body = [f"{indent}intent_thresholds:" + (" {}\n" if not thresholds else "\n")]
    body += [f"{indent}  {name}: {value:g}\n" for name, value in sorted(thresholds.items())]
    config_path.write_text("".join(lines[: begin + 1] + body + lines[end:]), encoding="utf-8")


def main(argv: Optional[List[str]] = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(
        prog="python -m supportbot.benchmark.calibration",
        description="Calibrate the per-intent fallback thresholds of config.yml from its written-down costs, "
                    "on out-of-sample (cross-validated) predictions over the training data, and write them "
                    "between config.yml's calibrated-thresholds markers.")
    parser.add_argument("--config", type=Path, default=Path("config.yml"))
    parser.add_argument("--data", type=Path, default=Path("data/nlu"))
    parser.add_argument("--domain", type=Path, default=Path("domain"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--min-support", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the fold models go (default: a temp dir)")
    parser.add_argument("--dry-run", action="store_true", help="print the thresholds, leave config.yml alone")
    args = parser.parse_args(argv)
    component = fallback_component(yaml.safe_load(args.config.read_text(encoding="utf-8")))
    clarification, wrong_costs = cost_table(component)
    default = float(component.get("threshold", 0.4))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="calibration-"))
    gold, top = out_of_sample(args.config.resolve(), args.data.resolve(),
                              args.domain.resolve() if args.domain else None, args.folds, args.seed, workdir)
    chosen = calibrate_costs(gold, top, wrong_costs, clarification, default, args.min_support)
    print(f"# {len(gold)} out-of-sample predictions ({args.folds} folds, seed {args.seed}); default threshold "
          f"{default:g}; clarification costs {clarification:g}")
    print("# intent: threshold (predicted n, of which wrong w; cost at default -> at threshold)")
    for name, row in chosen.items():
        print(f"#   {name}: {row['threshold']:g} (n {row['support']}, wrong {row['wrong']}; "
              f"cost {row['cost_at_default']:g} -> {row['cost']:g})")
    for name in sorted(set(wrong_costs) - set(chosen)):
        print(f"#   {name}: fewer than {args.min_support} predictions, keeps {default:g}")
    thresholds = {name: row["threshold"] for name, row in chosen.items() if row["threshold"] != default}
    if args.dry_run:
        print(yaml.safe_dump({"intent_thresholds": thresholds}, sort_keys=True))
    else:
        write_thresholds(args.config, thresholds)
        print(f"# wrote {len(thresholds)} thresholds into {args.config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
