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
