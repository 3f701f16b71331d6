"""The NLU gate (supportbot/nlu_gate.py): floors, and drops against the reference scores, on small
synthetic score dicts; `rasa test nlu` itself is replaced by the reports it would write."""
from __future__ import annotations

import json

import pytest

from supportbot import nlu_gate
from supportbot.nlu_gate import Thresholds

LIMITS = Thresholds(min_intent_f1=0.90, min_entity_f1=0.85, max_drop=0.05, min_support=5)


def row(f1: float, support: int = 14, precision: float = None, recall: float = None) -> dict:
    return {"precision": f1 if precision is None else precision, "recall": f1 if recall is None else recall,
            "f1": f1, "support": support}


def scores(**changes) -> dict:
    base = {
        "summary": {"intent_macro_f1": 0.96, "entity_micro_f1": 0.94, "faq_accuracy": 0.90},
        "intents": {"faq": row(0.95, 63), "greet": row(1.0), "order_status": row(0.93),
                    "thank+goodbye": row(0.9, 4)},
        "faq_topics": {"faq/gift_cards": row(1.0, 6), "faq/pricing": row(0.89, 5)},
        "entities": {"order_id": row(1.0, 31)},
    }
    for kind, rows in changes.items():
        base[kind].update(rows)
    return base


def reasons(current: dict, reference: dict = None) -> list:
    return nlu_gate.failures(current, reference if reference is not None else scores(), LIMITS)


def test_same_scores_pass():
    assert reasons(scores()) == []
    assert "All 6 intents and FAQ topics score as in the reference." in nlu_gate.report(
        scores(), scores(), "ref.json", LIMITS)


def test_a_new_intent_that_takes_a_topics_questions_fails():
    """The case the old gate passed: a new intent scores well enough and intents' macro-F1 stays
    above the floor, but the gift-card questions now go to it, so their topic loses recall."""
    current = scores(intents={"redeem_voucher": row(0.7, 14, precision=0.55, recall=1.0), "faq": row(0.9, 63)},
                     faq_topics={"faq/gift_cards": row(0.29, 6, precision=1.0, recall=0.17)})
    assert current["summary"]["intent_macro_f1"] >= LIMITS.min_intent_f1
    assert reasons(current) == ["faq/gift_cards F1 fell 0.71 (from 1.00 to 0.29, n=6)"]
    text = nlu_gate.report(current, scores(), "ref.json", LIMITS)
    lines = text.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("Change against"))) + 1:]
    assert table[1].startswith("faq/gift_cards") and table[1].endswith("FAIL")  # worst first
    assert any(line.startswith("redeem_voucher") and " new " in line for line in table)
    assert "n >= 5 lost more than 0.05 F1" in text  # the margin and support are in the report


def test_a_drop_within_the_margin_or_on_few_examples_passes():
    assert reasons(scores(intents={"order_status": row(0.88)})) == []  # exactly the margin
    assert reasons(scores(intents={"thank+goodbye": row(0.5, 4)})) == []  # n < min support
    text = nlu_gate.report(scores(intents={"thank+goodbye": row(0.5, 4)}), scores(), "ref.json", LIMITS)
    assert "not gated" in text
    fell = "order_status F1 fell 0.06 (from 0.93 to 0.87, n=14)"
    assert reasons(scores(intents={"order_status": row(0.87)})) == [fell]


def test_improvements_new_and_gone_labels_do_not_fail():
    current = scores(intents={"greet": row(1.0), "order_status": row(1.0), "new_intent": row(0.5)})
    del current["faq_topics"]["faq/pricing"]
    assert reasons(current) == []
    order = [delta.label for delta in nlu_gate.compare(current, scores())]
    assert order[-2:] == ["new_intent", "faq/pricing"]  # new, then gone, after every change
    assert order.index("order_status") > order.index("greet")  # +0.07 after +0.00


def test_floors_fail_without_a_reference():
    low = scores()
    low["summary"].update(intent_macro_f1=0.85, entity_micro_f1=0.80)
    assert nlu_gate.failures(low, None, LIMITS) == ["intent macro-F1 0.850 is below 0.9",
                                                    "entity micro-F1 0.800 is below 0.85"]
    assert "no comparison" in nlu_gate.report(scores(), None, "missing.json", LIMITS)


def rasa_reports(gift_cards_recall: float):
    """What `rasa test nlu` writes, in the shape sklearn gives it."""
    def report(labels: dict, **summary) -> dict:
        body = {label: {"precision": p, "recall": r, "f1-score": 2 * p * r / (p + r) if p + r else 0.0,
                        "support": n, "confused_with": {}} for label, (p, r, n) in labels.items()}
        return {**body, **summary}

    intents = report({"faq": (1.0, 0.95, 63), "greet": (1.0, 1.0, 14)},
                     **{"macro avg": {"f1-score": 0.97}, "accuracy": 0.98})
    responses = report({"faq/gift_cards": (1.0, gift_cards_recall, 6), "faq/pricing": (1.0, 1.0, 5)},
                       accuracy=0.9)
    entities = report({"order_id": (1.0, 1.0, 31)}, **{"micro avg": {"f1-score": 0.95}})
    return {nlu_gate.INTENT_REPORT: intents, nlu_gate.RESPONSE_REPORT: responses, nlu_gate.ENTITY_REPORT: entities}


@pytest.fixture
def gate(tmp_path, monkeypatch):
    """main() with `rasa test nlu` replaced by writing the given reports."""
    model, nlu = tmp_path / "model.tar.gz", tmp_path / "nlu"
    model.write_bytes(b"model")
    nlu.mkdir()
    (nlu / "test_nlu.yml").write_text('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n')
    reference, out = tmp_path / "reference.json", tmp_path / "out"
    written = {}

    def fake_rasa(model_path, nlu_path, out_path):
        out_path.mkdir(parents=True, exist_ok=True)
        for name, body in written["reports"].items():
            (out_path / name).write_text(json.dumps(body))

    monkeypatch.setattr(nlu_gate, "run_rasa_test", fake_rasa)

    def run(gift_cards_recall: float, write_reference: bool = False) -> int:
        written["reports"] = rasa_reports(gift_cards_recall)
        return nlu_gate.main(str(model), str(nlu), str(out), 0.90, 0.85, reference=str(reference),
                             write_reference=write_reference)

    run.reference, run.out = reference, out
    return run


def test_write_reference_then_compare(gate, capsys):
    assert gate(1.0) == 0 and not gate.reference.exists()  # no reference: floors only
    assert gate(1.0, write_reference=True) == 0
    reference = json.loads(gate.reference.read_text())
    assert reference["faq_topics"]["faq/gift_cards"] == {"f1": 1.0, "precision": 1.0, "recall": 1.0, "support": 6}
    assert json.loads((gate.out / nlu_gate.SCORES).read_text()) == reference
    capsys.readouterr()
    assert gate(0.5) == 1  # gift cards fall
    assert "faq/gift_cards F1 fell 0.33" in capsys.readouterr().out
    assert gate(0.5, write_reference=True) == 0  # an intended change: accepted, reference refreshed
    assert json.loads(gate.reference.read_text())["faq_topics"]["faq/gift_cards"]["recall"] == 0.5
    assert gate(0.5) == 0


def test_the_committed_reference_is_not_read_as_nlu_data(repo):
    """It lives in tests/nlu/, which `rasa test nlu --nlu tests/nlu` reads."""
    from rasa.shared.data import is_nlu_file

    path = repo / nlu_gate.REFERENCE
    assert not is_nlu_file(str(path))
    reference = json.loads(path.read_text())
    assert reference["intents"] and reference["faq_topics"] and reference["summary"]["intent_macro_f1"] >= 0.90


def test_labels_from_a_rasa_report():
    report = {"greet": {"precision": 1.0, "recall": 0.5, "f1-score": 0.666666, "support": 4, "confused_with": {}},
              "accuracy": 0.9, "macro avg": {"f1-score": 0.6}, "micro avg": {"f1-score": 0.7}}
    assert nlu_gate.label_rows(report) == {"greet": {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 4}}
