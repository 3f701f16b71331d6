"""Per-intent fallback thresholds, calibrated on validation predictions for a cost of misrouting.

For the messages whose top intent is X, a threshold t escalates those with confidence below t
(cost 1 each: the customer is asked to pick or rephrase) and lets the others through, of which the
ones whose true intent is not X are misrouted (cost `misroute_cost` each). Each intent with enough
predictions gets the t of the grid with the lowest total cost; the others keep the global default.

Thresholds fitted and scored on the same messages look better than they are, so `cross_fitted`
scores them out of sample: calibrate on all folds but one, score that one, and pool the folds.
"""
from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from supportbot.benchmark.metrics import THRESHOLDS

Top = Tuple[str, float]  # the top-ranked non-fallback intent and its confidence
COSTS = (1.0, 1.5, 2.0, 3.0, 5.0, 8.0)


def outcome_counts(gold: Sequence[str], top: Sequence[Top], thresholds: Dict[str, float],
                   default: float) -> Tuple[int, int]:
    """(escalated, misrouted) messages under these thresholds."""
    escalated = misrouted = 0
    for truth, (name, confidence) in zip(gold, top):
        if confidence < thresholds.get(name, default):
            escalated += 1
        elif name != truth:
            misrouted += 1
    return escalated, misrouted


def calibrate(gold: Sequence[str], top: Sequence[Top], misroute_cost: float, default: float,
              grid: Sequence[float] = THRESHOLDS, min_support: int = 5) -> Dict[str, float]:
    """The cheapest threshold per predicted intent with at least `min_support` predictions.
    Ties go to the threshold nearest the default, so sparse evidence moves it least."""
    by_intent: Dict[str, List[Tuple[str, float]]] = defaultdict(list)
    for truth, (name, confidence) in zip(gold, top):
        by_intent[name].append((truth, confidence))
    chosen = {}
    for name, members in sorted(by_intent.items()):
        if len(members) >= min_support:
            costs = {t: _cost(members, name, t, misroute_cost) for t in grid}
            chosen[name] = min(grid, key=lambda t: (costs[t], abs(t - default)))
    return chosen


def _cost(members: List[Tuple[str, float]], name: str, threshold: float, misroute_cost: float) -> float:
    escalated = sum(confidence < threshold for _, confidence in members)
    misrouted = sum(confidence >= threshold and truth != name for truth, confidence in members)
    return escalated + misroute_cost * misrouted


def cross_fitted(gold: Sequence[str], top: Sequence[Top], misroute_cost: float, default: float,
                 per_intent: bool = True, folds: int = 5, seed: int = 42) -> Dict[str, float]:
    """Escalation and misroute rates of per-intent thresholds (or of the best single threshold),
    each message scored by thresholds calibrated without it."""
    order = list(range(len(gold)))
    random.Random(seed).shuffle(order)
    escalated = misrouted = 0
    for fold in range(folds):
        held = set(order[fold::folds])
        fit = [i for i in order if i not in held]
        fit_gold, fit_top = [gold[i] for i in fit], [top[i] for i in fit]
        if per_intent:
            thresholds, fallback = calibrate(fit_gold, fit_top, misroute_cost, default), default
        else:
            thresholds, fallback = {}, best_global(fit_gold, fit_top, misroute_cost)
        e, m = outcome_counts([gold[i] for i in held], [top[i] for i in held], thresholds, fallback)
        escalated, misrouted = escalated + e, misrouted + m
    total = len(gold) or 1
    return {"misroute_cost": misroute_cost, "escalation_rate": escalated / total,
            "misroute_rate": misrouted / total}


def best_global(gold: Sequence[str], top: Sequence[Top], misroute_cost: float,
                grid: Sequence[float] = THRESHOLDS) -> float:
    """The single threshold with the lowest cost on these messages (for comparison)."""
    def cost(threshold: float) -> float:
        escalated, misrouted = outcome_counts(gold, top, {}, threshold)
        return escalated + misroute_cost * misrouted

    return min(grid, key=lambda t: (cost(t), t))


def calibrated_curve(gold: Sequence[str], top: Sequence[Top], default: float,
                     costs: Sequence[float] = COSTS) -> Optional[Dict[str, List[Dict[str, float]]]]:
    """Cross-fitted (escalation, misroute) points, one per misroute cost, of per-intent thresholds
    and of the best single threshold fitted the same way."""
    if len(gold) < 20:
        return None
    return {kind: [cross_fitted(gold, top, cost, default, per_intent=kind == "per_intent") for cost in costs]
            for kind in ("per_intent", "global")}


def command(predictions: Path, misroute_cost: float, default: float, min_support: int) -> int:
    """`supportbot thresholds`: per-intent thresholds from a benchmark's predictions file, printed as
    the config.yml entry, with their cross-fitted rates next to the best single threshold's."""
    from supportbot.benchmark.runner import _top_non_fallback

    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        print(f"No predictions in {predictions}.", file=sys.stderr)
        return 2
    gold, top = [r["gold"] for r in rows], [_top_non_fallback(r) for r in rows]
    chosen = calibrate(gold, top, misroute_cost, default, min_support=min_support)
    mine = cross_fitted(gold, top, misroute_cost, default)
    single = cross_fitted(gold, top, misroute_cost, default, per_intent=False)
    print(f"# {len(rows)} messages from {predictions}; misroute cost {misroute_cost:g} escalations.")
    for label, rates in (("per-intent thresholds", mine), ("best single threshold", single)):
        cost = rates["escalation_rate"] + misroute_cost * rates["misroute_rate"]
        print(f"# {label}, cross-fitted: escalated {rates['escalation_rate']:.3f}, "
              f"misrouted {rates['misroute_rate']:.3f}, cost {cost:.3f}")
    print(yaml.safe_dump({"pipeline": [{
        "name": "supportbot.nlu.thresholds.PerIntentFallbackClassifier",
        "threshold": default, "ambiguity_threshold": 0.05, "intent_thresholds": chosen}]}, sort_keys=False))
    return 0
