"""Data sets of the NLU benchmark, read from paths given on the command line (never copied).

- banking77: the CSV files of BANKING77 (`text,category`); one split, either a stratified
  validation split carved from train.csv or a separate test file.
- nlupp: the NLU++ fold files (`fold<i>.json`), multi-label intents and slots; one run per
  train/test pair of the chosen protocol. A label set becomes one Rasa intent `a+b` (labels
  sorted), and an example without labels gets the intent `no_label`.
- project: the assistant's own training data directory and held-out test file; or, with
  `folds`, K-fold cross-validation over the training data alone (each message predicted by the
  model trained without its fold), which gives every training message an out-of-sample
  prediction to calibrate fallback thresholds on, without touching the held-out file.

All sampling uses `random.Random(seed)`, so the same options give the same split.
"""
from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from supportbot.benchmark.metrics import NO_LABEL

if TYPE_CHECKING:
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

PROTOCOLS = ("low", "mid", "large")


@dataclass
class Example:
    text: str
    intent: str
    entities: List[Dict] = field(default_factory=list)  # {start, end, entity, value}


@dataclass
class Run:
    """One train/test pair. `train` is examples, a path to Rasa NLU data (project data set), or
    Rasa `TrainingData` (a project fold: its regexes, lookups, synonyms and responses kept)."""
    name: str
    train: Union[List[Example], Path, TrainingData]
    test: List[Example]

    def train_examples(self) -> Optional[List[Example]]:
        """The training examples, or None when `train` is a path that Rasa reads itself."""
        if isinstance(self.train, Path):
            return None
        if isinstance(self.train, list):
            return self.train
        return [project_example(m) for m in self.train.intent_examples]


@dataclass
class Benchmark:
    name: str
    runs: List[Run]
    info: Dict
    multi_label: bool = False
    domain: Optional[Path] = None


def _sample(items: Sequence, limit: Optional[int], rng: random.Random) -> List:
    """At most `limit` items, drawn with `rng`, in their original order."""
    if limit is None or limit >= len(items):
        return list(items)
    keep = set(rng.sample(range(len(items)), limit))
    return [item for index, item in enumerate(items) if index in keep]


def read_banking77_csv(path: Path) -> List[Example]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [Example(row["text"].strip(), row["category"].strip()) for row in csv.DictReader(handle)]


def grouped(items: Sequence, key: Callable[[Any], str]) -> List[List]:
    """The items in groups of equal `key` (new lists, original order), groups sorted by key."""
    groups: Dict[str, List] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [groups[name] for name in sorted(groups)]


def stratified_split(examples: Sequence[Example], fraction: float,
                     rng: random.Random) -> Tuple[List[Example], List[Example]]:
    """(train, validation): per intent, a shuffled `fraction` (at least one) goes to validation."""
    train, validation = [], []
    for group in grouped(examples, lambda e: e.intent):
        rng.shuffle(group)
        n_val = min(max(1, round(len(group) * fraction)), len(group) - 1)
        validation.extend(group[:n_val])
        train.extend(group[n_val:])
    return train, validation


def take_shots(examples: Sequence[Example], shots: int, rng: random.Random) -> List[Example]:
    """`shots` examples per intent, drawn with `rng` (all of them if an intent has fewer)."""
    chosen = []
    for group in grouped(examples, lambda e: e.intent):
        chosen.extend(rng.sample(group, min(shots, len(group))))
    return chosen


def load_banking77(train_path: Path, test_path: Optional[Path] = None, val_fraction: float = 0.1,
                   shots: Optional[int] = None, subset_intents: Optional[int] = None,
                   max_examples: Optional[int] = None, max_test: Optional[int] = None,
                   seed: int = 42) -> Benchmark:
    rng = random.Random(seed)
    examples = read_banking77_csv(train_path)
    intents = sorted({e.intent for e in examples})
    if subset_intents is not None and subset_intents < len(intents):
        intents = sorted(rng.sample(intents, subset_intents))
        examples = [e for e in examples if e.intent in set(intents)]
    if test_path is not None:
        train = examples
        test = [e for e in read_banking77_csv(test_path) if e.intent in set(intents)]
        evaluation = f"the test file {test_path}"
    else:
        train, test = stratified_split(examples, val_fraction, rng)
        evaluation = (f"a stratified validation split of {val_fraction:.0%} per intent carved from "
                      f"{train_path} (seed {seed}); those examples are never trained on")
    if shots is not None:
        train = take_shots(train, shots, rng)
    train = _sample(train, max_examples, rng)
    test = _sample(test, max_test, rng)
    info = {
        "train_path": str(train_path), "test_path": str(test_path) if test_path else None,
        "evaluation": evaluation, "val_fraction": None if test_path else val_fraction,
        "shots": shots, "subset_intents": subset_intents, "intents": intents,
        "max_examples": max_examples, "max_test": max_test, "seed": seed,
        "n_train": len(train), "n_test": len(test),
    }
    return Benchmark("banking77", [Run("split", train, test)], info)


def nlupp_example(raw: Dict) -> Example:
    labels = sorted(set(raw.get("intents") or []))
    entities = []
    for slot, value in sorted((raw.get("slots") or {}).items()):
        start, end = value["span"]
        entities.append({"start": start, "end": end, "entity": slot, "value": raw["text"][start:end]})
    entities.sort(key=lambda e: (e["start"], e["end"]))
    return Example(raw["text"], "+".join(labels) if labels else NO_LABEL, entities)


def nlupp_runs(n_folds: int, protocol: str) -> List[Tuple[List[int], List[int]]]:
    """(train folds, test folds) per run, as defined in the NLU++ paper."""
    folds = list(range(n_folds))
    pairs = [folds[i:i + 2] for i in range(0, n_folds, 2)]
    if protocol == "low":
        return [([i], [j for j in folds if j != i]) for i in folds]
    if protocol == "mid":
        return [(pair, [j for j in folds if j not in pair]) for pair in pairs]
    if protocol == "large":
        return [([j for j in folds if j not in pair], pair) for pair in pairs]
    raise ValueError(f"unknown protocol {protocol!r}; one of {PROTOCOLS}")


def load_nlupp(folds_dir: Path, protocol: str = "mid", max_runs: Optional[int] = None,
               max_examples: Optional[int] = None, max_test: Optional[int] = None,
               seed: int = 42) -> Benchmark:
    fold_files = sorted(folds_dir.glob("fold*.json"), key=lambda p: int(p.stem[4:]))
    if not fold_files:
        raise FileNotFoundError(f"no fold<i>.json files in {folds_dir}")
    folds = [[nlupp_example(raw) for raw in json.loads(p.read_text(encoding="utf-8"))] for p in fold_files]
    plan = nlupp_runs(len(folds), protocol)
    if max_runs is not None:
        plan = plan[:max_runs]
    runs = []
    for index, (train_folds, test_folds) in enumerate(plan):
        rng = random.Random(seed + index)
        train = _sample([e for i in train_folds for e in folds[i]], max_examples, rng)
        test = _sample([e for i in test_folds for e in folds[i]], max_test, rng)
        runs.append(Run(f"run {index}: train folds {train_folds}, test folds {test_folds}", train, test))
    info = {
        "folds_dir": str(folds_dir), "protocol": protocol, "n_folds": len(folds),
        "runs": len(runs), "runs_in_protocol": len(nlupp_runs(len(folds), protocol)),
        "max_examples": max_examples, "max_test": max_test, "seed": seed,
        "n_train": [len(r.train) for r in runs], "n_test": [len(r.test) for r in runs],
        "labels": sorted({label for fold in folds for e in fold for label in e.intent.split("+")} - {NO_LABEL}),
    }
    return Benchmark("nlupp", runs, info, multi_label=True)


def project_example(message: Message) -> Example:
    """A Rasa NLU message as a test example: `faq/<key>` scores as its intent `faq`."""
    entities = [{k: e[k] for k in ("start", "end", "entity", "value")} for e in message.get("entities") or []]
    return Example(message.get("text"), message.get("intent"), entities)


def load_project(train_path: Path, test_path: Path, domain: Optional[Path]) -> Benchmark:
    from rasa.shared.nlu.training_data.loading import load_data

    test = [project_example(message) for message in load_data(str(test_path)).intent_examples]
    info = {"train_path": str(train_path), "test_path": str(test_path),
            "domain": str(domain) if domain else None, "n_test": len(test),
            "evaluation": f"the held-out test file {test_path}"}
    return Benchmark("project", [Run("held-out", train_path, test)], info, domain=domain)


def stratified_folds(items: Sequence, key: Callable[[Any], str], folds: int, rng: random.Random) -> List[List]:
    """`folds` lists: each group of equal `key` shuffled with `rng` and dealt out in turn,
    continuing where the previous group stopped, so fold sizes differ by at most one."""
    dealt: List[List] = [[] for _ in range(folds)]
    position = 0
    for group in grouped(items, key):
        rng.shuffle(group)
        for item in group:
            dealt[position % folds].append(item)
            position += 1
    return dealt


def load_project_folds(train_path: Path, domain: Optional[Path], folds: int, seed: int = 42) -> Benchmark:
    """K-fold cross-validation over the project's training data, stratified by full intent
    (`faq/<key>` included); the held-out test file is not read."""
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData

    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    data = load_data(str(train_path))
    labelled = data.intent_examples
    others = [m for m in data.training_examples if not m.get("intent")]
    dealt = stratified_folds(labelled, lambda m: m.get_full_intent(), folds, random.Random(seed))
    runs = []
    for index, held_out in enumerate(dealt):
        held = {id(m) for m in held_out}
        train = TrainingData(training_examples=[m for m in labelled if id(m) not in held] + others,
                             entity_synonyms=data.entity_synonyms, regex_features=data.regex_features,
                             lookup_tables=data.lookup_tables, responses=data.responses)
        runs.append(Run(f"fold {index + 1} of {folds}", train, [project_example(m) for m in held_out]))
    info = {"train_path": str(train_path), "test_path": None, "domain": str(domain) if domain else None,
            "folds": folds, "seed": seed, "n_train": [len(r.train.intent_examples) for r in runs],
            "n_test": [len(r.test) for r in runs],
            "evaluation": (f"{folds}-fold cross-validation over {train_path}, stratified by intent (seed {seed}): "
                           "each message is predicted by the model trained without its fold; the held-out "
                           "test set is not read")}
    return Benchmark("project", runs, info, domain=domain)


def write_training_yaml(examples: Union[Sequence[Example], TrainingData], path: Path) -> Path:
    """Rasa YAML NLU data, written by Rasa's own writer (it escapes and annotates entities)."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    if not isinstance(examples, TrainingData):
        examples = TrainingData([Message.build(text=e.text, intent=e.intent,
                                               entities=[dict(x) for x in e.entities] or None)
                                 for e in examples])
    path.write_text(RasaYAMLWriter().dumps(examples), encoding="utf-8")
    return path
