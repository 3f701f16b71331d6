"""`supportbot learn noise`: training examples whose label the rest of the data disagrees with.

Every example of data/nlu (intents, and FAQ topics as `faq/<topic>`) and every accepted item of
the learning store is embedded with the project's sentence encoder (all-MiniLM-L6-v2 in ONNX
Runtime, supportbot/nlu/encoder.py). A logistic regression predicts each example's label while
never having seen it (stratified k-fold, fixed seed), and cleanlab's `find_label_issues` picks
the examples whose given label those out-of-sample probabilities make unlikely. They are ranked
by self-confidence (the probability of the given label), lowest first: a designer checks the
top of the list, fixes a wrong label in data/nlu, or leaves a deliberate hard example alone.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from sqlalchemy import select

from supportbot.learning.labels import NOT_LABELS
from supportbot.learning.review import ACCEPTED
from supportbot.learning.store import LearningStore, TurnRow, normalise

DATA = Path("data/nlu")
OUT = Path("results/learn/label-noise.csv")
FOLDS = 5
SEED = 0
# The sentence vectors have unit length: with sklearn's default C=1 the regression underfits and
# every probability is flat.
INVERSE_REGULARISATION = 10.0
BATCH = 64
MAX_PIECES = 128  # word pieces per text, as the featurizer's default max_length
STORE_ORIGIN = "learning store #"


class NoiseError(ValueError):
    """The check cannot run; the message says why."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    origin: str  # the data file, or "learning store #<id>"


@dataclass(frozen=True)
class Issue:
    example: Example
    suggested: str
    self_confidence: float


@dataclass(frozen=True)
class NoiseReport:
    issues: List[Issue]
    checked: int
    labels: int
    too_few: Dict[str, int]  # labels left out: fewer examples than folds


def data_examples(data: Path = DATA) -> List[Example]:
    """The NLU examples under `data` with one label each (multi-intent combinations left out)."""
    from rasa.shared.nlu.training_data.loading import load_data

    examples = []
    for path in sorted(Path(data).rglob("*.yml")):
        try:
            messages = load_data(str(path)).intent_examples
        except Exception as error:  # Rasa raises several YAML and schema errors
            raise NoiseError(f"cannot read {path}: {error}") from error
        for message in messages:
            label = message.get("intent_response_key") or message.get("intent")
            if label and "+" not in label and label not in NOT_LABELS and message.get("text"):
                examples.append(Example(message.get("text"), label, str(path)))
    return examples


def store_examples(store: LearningStore) -> List[Example]:
    """Accepted items of the learning store: what `learn export` makes training data."""
    with store.session() as session:
        rows = session.execute(select(TurnRow.id, TurnRow.text, TurnRow.label)
                               .where(TurnRow.status == ACCEPTED, TurnRow.label.isnot(None))
                               .order_by(TurnRow.id)).all()
    return [Example(text, label, f"{STORE_ORIGIN}{turn_id}") for turn_id, text, label in rows]


def training_examples(store: Optional[LearningStore], data: Path = DATA) -> List[Example]:
    """Store items first (their label is fixed in the store, not in data/nlu/learned), then data
    files; a text seen again under the same label is kept once, under another label twice."""
    seen, examples = set(), []
    for example in (store_examples(store) if store else []) + data_examples(data):
        key = (normalise(example.text), example.label)
        if key not in seen:
            seen.add(key)
            examples.append(example)
    return examples


def embed(texts: List[str]) -> np.ndarray:
    """Unit-length sentence vectors [len(texts), 384] from the installed all-MiniLM-L6-v2."""
    from supportbot.nlu.encoder import default_model_dir, load_encoder, sentence_embeddings

    encoder = load_encoder(default_model_dir())
    vectors = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths: less padding
    for start in range(0, len(order), BATCH):
        rows = order[start:start + BATCH]
        hidden, mask, _ = encoder.encode([texts[i] for i in rows], MAX_PIECES)
        vectors[rows] = sentence_embeddings(hidden, mask)
    return vectors


def out_of_sample_probabilities(vectors: np.ndarray, labels: np.ndarray, folds: int = FOLDS,
                                seed: int = SEED) -> np.ndarray:
    """[examples, labels] probabilities, each row from a model trained on the other folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    model = LogisticRegression(C=INVERSE_REGULARISATION, max_iter=2000)
    return cross_val_predict(model, vectors, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                             method="predict_proba")


def find_issues(examples: List[Example], vectors: Optional[np.ndarray] = None, folds: int = FOLDS,
                seed: int = SEED) -> NoiseReport:
    """The examples cleanlab finds mislabelled, lowest self-confidence first. Labels with fewer
    examples than `folds` cannot be cross-validated and are left out (named in `too_few`)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_self_confidence_for_each_label

    if folds < 2:
        raise NoiseError(f"--folds must be at least 2, not {folds}")
    counts = Counter(e.label for e in examples)
    too_few = {label: n for label, n in sorted(counts.items()) if n < folds}
    kept = [i for i, e in enumerate(examples) if e.label not in too_few]
    names = sorted({examples[i].label for i in kept})
    if len(names) < 2:
        raise NoiseError(f"nothing to check: {len(names)} label(s) with at least {folds} examples "
                         f"({len(examples)} examples in all); the check compares two labels or more")
    vectors = embed([examples[i].text for i in kept]) if vectors is None else vectors[kept]
    index = {name: number for number, name in enumerate(names)}
    labels = np.array([index[examples[i].label] for i in kept])
    probabilities = out_of_sample_probabilities(vectors, labels, folds, seed)
    ranked = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence", n_jobs=1)
    confidence = get_self_confidence_for_each_label(labels, probabilities)
    issues = [Issue(examples[kept[i]], names[int(probabilities[i].argmax())], round(float(confidence[i]), 4))
              for i in ranked]
    return NoiseReport(issues, len(kept), len(names), too_few)


def write_csv(issues: List[Issue], path: Path) -> None:
    """The ranked issues as CSV, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "given_label", "suggested_label", "self_confidence", "source"])
        for issue in issues:
            example = issue.example
            writer.writerow([example.text, example.label, issue.suggested, f"{issue.self_confidence:.4f}",
                             example.origin])
    temporary.replace(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")
    parser.add_argument("--out", type=Path, default=OUT, help="the CSV of every issue (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=DATA, help="the NLU training data (default: %(default)s)")
    parser.add_argument("--folds", type=int, default=FOLDS, help="cross-validation folds (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=30, help="issues printed (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    try:
        examples = training_examples(LearningStore(args.db), args.data)
        report = find_issues(examples, folds=args.folds)
        write_csv(report.issues, args.out)
    except (NoiseError, OSError) as error:
        print(f"No label-noise check: {error}", file=sys.stderr)
        return 2
    stored = sum(e.origin.startswith(STORE_ORIGIN) for e in examples)
    print(f"{len(report.issues)} suspicious of {report.checked} examples ({report.labels} labels, "
          f"{stored} from the learning store); all in {args.out}")
    if report.too_few:
        print("Not checked, fewer examples than folds: "
              + ", ".join(f"{label} ({n})" for label, n in report.too_few.items()))
    for issue in report.issues[: args.limit]:
        print(f"  {issue.self_confidence:.3f} {issue.example.label} -> {issue.suggested}: "
              f"{issue.example.text[:100]!r} ({issue.example.origin})")
    return 0
