"""Metric code of the NLU benchmark: plain functions over gold and predicted labels.

No Rasa and no sklearn here, so each definition can be read (and unit-tested) on its own:
- per-label scores follow sklearn's `zero_division=0`: a label never predicted has precision 0;
- macro-F1 averages over the labels present in the gold data only, so a prediction outside them
  (`nlu_fallback`, a label the test set lacks) counts as a miss for the gold label, not as a class;
- expected calibration error uses equal-width bins over [0, 1]; confidence 1.0 falls in the last;
- percentiles interpolate linearly between closest ranks (numpy's default).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

FALLBACK = "nlu_fallback"
NO_LABEL = "no_label"  # Rasa needs an intent: NLU++ examples without any label get this one


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> Optional[float]:
    if not gold:
        return None
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def _prf(tp: int, fp: int, fn: int) -> Tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def per_label_scores(gold: Sequence[str], predicted: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Precision, recall, F1 and support for every label in `gold`."""
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for g, p in zip(gold, predicted):
        if g == p:
            tp[g] += 1
        else:
            fn[g] += 1
            fp[p] += 1
    scores = {}
    for label in sorted(set(gold)):
        precision, recall, f1 = _prf(tp[label], fp[label], fn[label])
        scores[label] = {"precision": precision, "recall": recall, "f1": f1,
                         "support": tp[label] + fn[label]}
    return scores


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> Optional[float]:
    scores = per_label_scores(gold, predicted)
    if not scores:
        return None
    return sum(s["f1"] for s in scores.values()) / len(scores)


def confused_pairs(gold: Sequence[str], predicted: Sequence[str], top: int = 10) -> List[Dict]:
    """The most frequent (gold, predicted) mistakes, most frequent first, ties by name."""
    counts = Counter((g, p) for g, p in zip(gold, predicted) if g != p)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"gold": g, "predicted": p, "count": n} for (g, p), n in ranked[:top]]


def calibration(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> Dict:
    """Expected calibration error and the reliability-diagram bins.

    ECE = sum over bins of |bin| / n * |accuracy(bin) - mean confidence(bin)|.
    """
    bins: List[List[Tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for confidence, ok in zip(confidences, correct):
        index = min(max(int(confidence * n_bins), 0), n_bins - 1)
        bins[index].append((confidence, bool(ok)))
    total = len(confidences)
    ece = 0.0
    rows = []
    for index, members in enumerate(bins):
        row = {"lower": index / n_bins, "upper": (index + 1) / n_bins, "count": len(members),
               "accuracy": None, "confidence": None}
        if members:
            row["accuracy"] = sum(ok for _, ok in members) / len(members)
            row["confidence"] = sum(c for c, _ in members) / len(members)
            ece += len(members) / total * abs(row["accuracy"] - row["confidence"])
        rows.append(row)
    return {"ece": ece if total else None, "n_bins": n_bins, "bins": rows}


THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(0, 20))


def threshold_curve(gold: Sequence[str], top: Sequence[Tuple[str, float]],
                    thresholds: Sequence[float] = THRESHOLDS) -> List[Dict]:
    """For each global fallback threshold: the share of messages escalated (top confidence below it)
    and the share misrouted (answered with the wrong intent). Ignores the ambiguity margin."""
    total = len(gold)
    rows = []
    for threshold in thresholds:
        answered = [(g, name) for g, (name, confidence) in zip(gold, top) if confidence >= threshold]
        wrong = sum(g != name for g, name in answered)
        rows.append({"threshold": threshold,
                     "escalation_rate": (total - len(answered)) / total if total else None,
                     "misroute_rate": wrong / total if total else None})
    return rows


def split_labels(token: str, separator: str = "+") -> Set[str]:
    """`a+b` -> {a, b}; the fallback and the no-label placeholder are the empty set."""
    if token in (FALLBACK, NO_LABEL, ""):
        return set()
    return {part for part in token.split(separator) if part}


def set_micro_scores(gold: Sequence[Iterable], predicted: Sequence[Iterable]) -> Dict[str, float]:
    """Micro precision/recall/F1 over set items: labels of a multi-label intent, or slot spans."""
    tp = fp = fn = 0
    for g, p in zip(gold, predicted):
        g, p = set(g), set(p)
        tp += len(g & p)
        fp += len(p - g)
        fn += len(g - p)
    precision, recall, f1 = _prf(tp, fp, fn)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def set_per_label_scores(gold: Sequence[Iterable[str]], predicted: Sequence[Iterable[str]]) -> Dict:
    """Per individual label of multi-label data: precision, recall, F1, support."""
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for g, p in zip(gold, predicted):
        g, p = set(g), set(p)
        tp.update(g & p)
        fp.update(p - g)
        fn.update(g - p)
    scores = {}
    for label in sorted(set(tp) | set(fn)):
        precision, recall, f1 = _prf(tp[label], fp[label], fn[label])
        scores[label] = {"precision": precision, "recall": recall, "f1": f1,
                         "support": tp[label] + fn[label]}
    return scores


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """The q-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(milliseconds: Sequence[float]) -> Dict:
    return {
        "p50_ms": percentile(milliseconds, 50),
        "p95_ms": percentile(milliseconds, 95),
        "mean_ms": sum(milliseconds) / len(milliseconds) if milliseconds else None,
        "n": len(milliseconds),
    }


def ratio(value: Optional[float], baseline: Optional[float]) -> Optional[float]:
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def top_non_fallback(prediction: Dict) -> Tuple[str, float]:
    """The likeliest intent that is not the fallback, with its confidence, from a prediction's
    ranking (the fallback classifier puts itself first when it fires)."""
    for name, confidence in prediction.get("ranking") or []:
        if name != FALLBACK:
            return name, confidence
    return FALLBACK, 0.0
