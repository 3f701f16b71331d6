"""The external validation report: a trained model scored on the public validation slice.

Figures (docs/data-sources.md explains each):
- per in-scope intent: recall; balanced accuracy is their mean; fallback rate is the share of
  in-scope messages that came out `nlu_fallback`;
- out of scope (CLINC150 `oos_val`, and its `val` rows from unrelated domains): rejected when the
  intent is `out_of_scope` or `nlu_fallback`; the share answered by an FAQ (intent `faq`) and
  the share sent into a costly intent (COSTLY_INTENTS);
- chit-chat recall over greet, goodbye, thank, affirm, deny and bot_challenge together.
A multi-intent prediction (`thank+goodbye`) counts for each of its parts. No gate: it informs.
"""
from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from supportbot.public_data.mapping import OUT_OF_SCOPE, Mapping
from supportbot.public_data.split import PublicRow, validation_slice

FALLBACK = "nlu_fallback"
FAQ = "faq"
# Intents whose rules hand off or start something hard to undo (data/rules/handoff.yml,
# subscriptions.yml, orders.yml): a wrong guess here costs more than a clarification.
COSTLY_INTENTS = frozenset({"request_human", "legal_request", "delete_account", "change_plan",
                            "cancel_subscription", "cancel_order"})
CHITCHAT = frozenset({"greet", "goodbye", "thank", "affirm", "deny", "bot_challenge"})
REJECTED = frozenset({OUT_OF_SCOPE, FALLBACK})


def parts(intent: str) -> List[str]:
    return intent.split("+") if intent else [""]


def _ratio(numerator: int, denominator: int) -> float:
    return round(numerator / denominator, 4) if denominator else 0.0


def _ratio_sum(values: Sequence[float]) -> float:
    """The mean, rounded; 0 for none."""
    return round(sum(values) / len(values), 4) if values else 0.0


def score(rows: Sequence[PublicRow], predicted: Sequence[str]) -> Dict:
    """The report's figures from the validation rows and the intent predicted for each."""
    per_intent: Dict[str, Counter] = defaultdict(Counter)
    confusions: Dict[str, Counter] = defaultdict(Counter)
    oos: Dict[str, Counter] = defaultdict(Counter)
    for row, intent in zip(rows, predicted, strict=True):
        got = parts(intent)
        if row.target == OUT_OF_SCOPE:
            group = "clinc150 oos_val" if row.split == "oos_val" else "clinc150 unrelated-domain val"
            for name in (group, "all"):
                oos[name]["n"] += 1
                oos[name]["rejected"] += bool(REJECTED & set(got))
                oos[name]["faq"] += FAQ in got
                oos[name]["costly"] += bool(COSTLY_INTENTS & set(got))
            continue
        counts = per_intent[row.target]
        counts["n"] += 1
        counts["correct"] += row.target in got
        counts["fallback"] += FALLBACK in got
        if row.target not in got:
            confusions[row.target][intent] += 1
    intents = {
        name: {"n": c["n"], "recall": _ratio(c["correct"], c["n"]), "fallback": _ratio(c["fallback"], c["n"]),
               "top_confusions": dict(confusions[name].most_common(3))}
        for name, c in sorted(per_intent.items())}
    in_scope = sum(c["n"] for c in per_intent.values())
    chit = [per_intent[name] for name in CHITCHAT if name in per_intent]
    return {
        "intents": intents,
        "summary": {
            "balanced_accuracy": _ratio_sum([i["recall"] for i in intents.values()]),
            "fallback_rate": _ratio(sum(c["fallback"] for c in per_intent.values()), in_scope),
            "in_scope_messages": in_scope,
            "chitchat_recall": _ratio(sum(c["correct"] for c in chit), sum(c["n"] for c in chit)),
        },
        "out_of_scope": {name: {"n": c["n"], "rejected": _ratio(c["rejected"], c["n"]),
                                "faq_answer": _ratio(c["faq"], c["n"]),
                                "costly_intent": _ratio(c["costly"], c["n"])}
                         for name, c in sorted(oos.items())},
    }


async def _parse_all(model: Path, texts: Sequence[str]) -> List[Tuple[str, float]]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))  # once: loading takes longer than parsing everything
    results = []
    for text in texts:
        intent = (await agent.parse_message(text)).get("intent") or {}
        results.append((intent.get("name") or "", float(intent.get("confidence") or 0.0)))
    return results


def predict(model: Path, texts: Sequence[str]) -> List[str]:
    return [name for name, _ in asyncio.run(_parse_all(model, texts))]


def to_markdown(result: Dict, model: Path) -> str:
    s = result["summary"]
    lines = [f"# External validation ({date.today().isoformat()}, model {model})", "",
             f"In-scope messages: {s['in_scope_messages']}; balanced accuracy **{s['balanced_accuracy']:.3f}**; "
             f"fallback {s['fallback_rate']:.1%}; chit-chat recall {s['chitchat_recall']:.3f}", "",
             "| intent | n | recall | fallback | most often taken for |", "|---|---:|---:|---:|---|"]
    for name, row in result["intents"].items():
        confused = ", ".join(f"{k or '(none)'} {v}" for k, v in row["top_confusions"].items())
        lines.append(f"| {name} | {row['n']} | {row['recall']:.2f} | {row['fallback']:.2f} | {confused} |")
    lines += ["", "| out of scope | n | rejected | FAQ answer | costly intent |", "|---|---:|---:|---:|---:|"]
    for name, row in result["out_of_scope"].items():
        lines.append(f"| {name} | {row['n']} | {row['rejected']:.1%} | {row['faq_answer']:.1%} | "
                     f"{row['costly_intent']:.1%} |")
    lines += ["", f"Rejected = {' or '.join(sorted(REJECTED))}; costly = {', '.join(sorted(COSTLY_INTENTS))}."]
    return "\n".join(lines) + "\n"


def run_report(model: Path, datasets: Path, mapping: Mapping, out: Path) -> Dict:
    if not Path(model).exists():
        raise SystemExit(f"{model} does not exist")
    rows = validation_slice(datasets, mapping)
    result = score(rows, predict(model, [row.text for row in rows]))
    result["validation_rows"] = {source: sum(r.source == source for r in rows) for source in mapping.sources}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "external.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = to_markdown(result, model)
    (out / "external.md").write_text(markdown)
    print(markdown)
    return result
