"""The learning-lift benchmark's slicing and report (supportbot/benchmark/learning_lift.py): the
corrections and evaluation slices are deterministic, disjoint, free of the project's own texts and
of near-duplicates of each other; the CSV is one `learn import` accepts; the figures and the
tests/nlu drop check come out right. The run itself trains a model: docs/benchmarks.md."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from supportbot.benchmark import learning_lift as lift
from supportbot.learning import imports
from supportbot.public_data.split import PublicRow


def row(text, target, source_intent="x"):
    return PublicRow(text, "clinc150", source_intent, "train", target, "training")


def pool(intent, n):
    return [row(f"{intent} message number {i}", intent) for i in range(n)]


def test_slices_are_disjoint_capped_and_fewer_where_the_pool_is_small():
    rows = pool("order_status", 100) + pool("thank", 20) + pool("out_of_scope", 1000)
    slices = lift.split_pool(rows, set(), per_intent=30, eval_per_intent=300, seed=0)
    assert slices.pool == {"order_status": 100, "thank": 20, "out_of_scope": 1000}
    counts = {i: (len(slices.corrections[i]), len(slices.evaluation[i])) for i in slices.pool}
    assert counts == {"order_status": (30, 70), "thank": (10, 10), "out_of_scope": (30, 300)}
    for intent in slices.pool:
        corrections = {r.text for r in slices.corrections[intent]}
        assert corrections.isdisjoint(r.text for r in slices.evaluation[intent])
        assert all(r.target == intent for r in slices.corrections[intent] + slices.evaluation[intent])


def test_the_split_depends_on_the_seed_and_the_texts_not_their_order():
    rows = pool("order_status", 100)
    first = lift.split_pool(rows, set(), seed=0)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    again = lift.split_pool(shuffled, set(), seed=0)
    assert first.corrections == again.corrections and first.evaluation == again.evaluation
    other = lift.split_pool(rows, set(), seed=1)
    assert set(other.corrections["order_status"]) != set(first.corrections["order_status"])


def test_project_texts_near_duplicates_and_conflicting_labels_are_left_out():
    rows = [row("Where is my order?", "order_status"),  # the project has "where is my order"
            row("hello there", "greet"), row("Hello, there!", "greet"),  # one message twice
            row("no", "deny"), row("No.", "affirm"),  # mapped to two intents
            row("bye now", "goodbye"), row("see you", "goodbye")]
    slices = lift.split_pool(rows, {"where is my order"}, per_intent=30, seed=0)
    assert slices.pool == {"greet": 1, "goodbye": 2}
    assert slices.corrections["greet"] == [] and len(slices.evaluation["greet"]) == 1
    assert len(slices.corrections["goodbye"]) == 1 and len(slices.evaluation["goodbye"]) == 1


def test_the_corrections_file_is_one_learn_import_accepts(tmp_path):
    corrections = {"order_status": [row('where is "it", my parcel', "order_status", "order_status")],
                   "payment_problem": [PublicRow("card declined, 4111 1111 1111 1111", "banking77",
                                                 "declined_card_payment", "train", "payment_problem", "training")]}
    path = tmp_path / "corrections.csv"
    assert lift.write_corrections(path, corrections) == 2
    rows = imports.read_rows(path, frozenset({"order_status", "payment_problem"}), "corrections")
    assert [(r.text, r.intent, r.source) for r in rows] == [
        ('where is "it", my parcel', "order_status", "corrections"),
        ("card declined, 4111 1111 1111 1111", "payment_problem", "corrections")]


def scores(f1s, macro):
    return {"summary": {"intent_macro_f1": macro, "entity_micro_f1": 0.9},
            "intents": {k: {"precision": v, "recall": v, "f1": v, "support": n} for k, (v, n) in f1s.items()},
            "faq_topics": {}}


def external(recalls, oos_rejected):
    intents = {k: {"n": 10, "recall": v, "fallback": 0.1, "top_confusions": {"cancel_order": round(10 - 10 * v)}
                   if v < 0.9 else {}} for k, v in recalls.items()}
    return {"intents": intents,
            "summary": {"balanced_accuracy": round(sum(recalls.values()) / len(recalls), 4), "fallback_rate": 0.1,
                        "in_scope_messages": 10 * len(recalls), "chitchat_recall": 0.0},
            "out_of_scope": {"all": {"n": 50, "rejected": oos_rejected, "faq_answer": 0.0, "costly_intent": 0.0}}}


def test_the_figures_lift_per_intent_and_the_tests_nlu_drop_check():
    slices = lift.split_pool(pool("order_status", 10) + pool("thank", 10), set(), per_intent=3, seed=0)
    before = external({"order_status": 0.8, "thank": 0.6}, 0.9)
    after = external({"order_status": 0.9, "thank": 0.9}, 0.92)
    tests = {"tests/nlu": (scores({"greet": (0.95, 20), "thank": (0.90, 3), "deny": (0.9, 10)}, 0.92),
                           scores({"greet": (0.92, 20), "thank": (0.80, 3), "deny": (0.89, 10)}, 0.91))}
    learned = Counter({"order_status": 2, "thank": 3})
    result = lift.summarise(slices, before, after, learned, Counter({"order_status": 1}),
                            Counter({"order_status": 120}), tests)
    assert result["balanced_accuracy"] == {"before": 0.7, "after": 0.9, "lift_points": 20.0, "intents": 2,
                                           "messages": 20}
    assert result["intents"]["order_status"] == {
        "pool": 10, "corrections": 3, "learned": 2, "learned_heldout": 1, "examples_before": 120, "evaluation": 7,
        "recall_before": 0.8, "recall_after": 0.9, "fallback_before": 0.1, "fallback_after": 0.1,
        "taken_for_before": {"cancel_order": 2}, "taken_for_after": {}}
    check = result["test_sets"]["tests/nlu"]
    # greet fell 3 points with 20 messages: gated; thank fell 10 with 3: shown, not gated; deny 1: fine.
    assert [(d["label"], d["gated"]) for d in check["drops"]] == [("thank", False), ("greet", True)]
    assert check["passed"] is False
    result.update(started="2026-12-05 21:00 UTC", command="python -m x", model="m.tar.gz", model_sha256="ab" * 32,
                  promoted=False, retrain_reasons=["tests/nlu: greet F1 fell 0.030"],
                  commands=[{"command": "supportbot learn retrain", "exit": 1, "seconds": 1.0,
                             "output": "Not promoted:"}])
    markdown = lift.to_markdown(result)
    assert "| 0.700 | 0.900 | **+20.0 points** |" in markdown
    assert ": met here (headroom was 30.0 points)" in markdown
    assert "| order_status | 10 | 3 | 2 | 120 | 7 | 0.80 | 0.90 | +10.0 |" in markdown
    assert "- greet: 0.950 → 0.920 (n=20, gated)" in markdown and "**fail**" in markdown
    assert "- order_status: cancel_order 2 → none" in markdown and "- thank: cancel_order 4 → none" in markdown


def test_a_small_lift_is_reported_as_below_the_target():
    slices = lift.split_pool(pool("thank", 10), set(), per_intent=3, seed=0)
    result = lift.summarise(slices, external({"thank": 0.9}, 0.9), external({"thank": 0.92}, 0.9),
                            Counter(), Counter(), Counter(), {})
    result.update(started="t", command="c", model="m", model_sha256="0" * 64, promoted=True, retrain_reasons=[],
                  commands=[])
    assert result["balanced_accuracy"]["lift_points"] == 2.0
    assert "not met here" in lift.to_markdown(result)


def test_the_project_copy_leaves_the_repository_alone(tmp_path):
    repo, work = tmp_path / "repo", tmp_path / "work"
    for name in ("config.yml", "domain/a.yml", "data/nlu/a.yml", "tests/nlu/t.yml", "tests/stories/s.yml"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(name)
    model = repo / "models" / "supportbot.tar.gz"
    model.parent.mkdir()
    model.write_bytes(b"model")
    base = lift.copy_project(repo, model, work)
    (work / "data" / "nlu" / "learned").mkdir()
    (work / "models" / "supportbot.tar.gz").write_bytes(b"candidate")  # a promotion
    assert base.read_bytes() == b"model" and model.read_bytes() == b"model"
    assert not (repo / "data" / "nlu" / "learned").exists() and (work / "tests/stories/s.yml").exists()


@pytest.mark.parametrize("args, message", [
    (["--datasets", "/nonexistent"], "is not a folder"),
    (["--model", "/nonexistent.tar.gz"], "does not exist: run `make train`"),
    (["--per-intent", "0"], "must be at least 1"),
])
def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys, args, message):
    defaults = ["--datasets", str(tmp_path), "--model", __file__, "--mapping", __file__,
                "--out", str(tmp_path / "out")]
    assert lift.main(defaults + args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_tests_nlu_scores_are_read_from_retrains_own_run(tmp_path):
    import json

    run = tmp_path / "results" / "learn" / "20261205T210000Z"
    for model, f1 in (("current", 0.9), ("candidate", 0.8)):
        out = run / model / "tests_nlu"
        out.mkdir(parents=True)
        report = {"greet": {"precision": f1, "recall": f1, "f1-score": f1, "support": 9},
                  "macro avg": {"precision": f1, "recall": f1, "f1-score": f1, "support": 9}}
        (out / "intent_report.json").write_text(json.dumps(report))
    found, tests = lift.retrain_scores(tmp_path)
    assert found == run and list(tests) == ["tests/nlu"]
    current, candidate = tests["tests/nlu"]
    assert (current["intents"]["greet"]["f1"], candidate["intents"]["greet"]["f1"]) == (0.9, 0.8)
    with pytest.raises(lift.BenchmarkError, match="no results/learn"):
        lift.retrain_scores(tmp_path / "elsewhere")


# The collector throughput benchmark (supportbot/benchmark/collector_throughput.py): its workload
# is what the collector must store, and the Postgres schema it uses is gone afterwards.

def test_the_collector_workload_is_drained_whole_and_checked(tmp_path):
    from supportbot.benchmark import collector_throughput as bench

    events, feedback = f"sqlite:///{tmp_path / 'events.db'}", f"sqlite:///{tmp_path / 'feedback.db'}"
    workload = bench.write_events(events, feedback, messages=60, seed=0)
    assert workload["messages"] >= 60 and workload["turns"] < workload["messages"]  # some are buttons
    assert workload["events"] > 5 * workload["turns"]
    bench.drain(f"sqlite:///{tmp_path / 'learning.db'}", events, feedback, workload)
    with pytest.raises(RuntimeError, match="stored"):  # a store that already has the turns stores none
        bench.drain(f"sqlite:///{tmp_path / 'learning.db'}", events, feedback, workload)
    row = bench.summary({"messages": 300, "events": 1500}, [2.0, 1.0, 3.0])
    assert (row["messages_per_second"], row["events_per_second"], row["ratio_to_target"]) == (150.0, 750.0, 1.5)


def test_the_collector_benchmark_refuses_bad_arguments(capsys):
    from supportbot.benchmark import collector_throughput as bench

    assert bench.main(["--runs", "0", "--postgres", "postgresql://127.0.0.1:1/none"]) == 2
    err = capsys.readouterr().err
    assert "--runs must be at least 1" in err and "cannot connect" in err


@pytest.mark.slow
def test_the_postgres_schema_is_dropped_afterwards(tmp_path):
    import sqlalchemy
    from postgres_url import POSTGRES_URL

    from supportbot.benchmark import collector_throughput as bench

    events, feedback = f"sqlite:///{tmp_path / 'events.db'}", f"sqlite:///{tmp_path / 'feedback.db'}"
    workload = bench.write_events(events, feedback, messages=20, seed=1)
    with bench.postgres_schema(POSTGRES_URL) as url:
        bench.drain(url, events, feedback, workload)
        schema = sqlalchemy.engine.make_url(url).query["options"].split("=", 1)[1]
    with sqlalchemy.create_engine(POSTGRES_URL).connect() as db:
        names = db.execute(sqlalchemy.text("SELECT nspname FROM pg_namespace")).scalars().all()
    assert schema.startswith("bench_collector_") and schema not in names
