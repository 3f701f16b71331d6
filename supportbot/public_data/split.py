"""Every mapped row of the public data sets, on one side of a deterministic split.

The side depends on the text alone (a stable hash of its normalised form), so the same message
is always on the same side, whatever else the files contain and whichever program asks:
- BANKING77 (one file): rows whose hash falls in the lowest `validation_fraction` are validation;
- CLINC150 (fixed splits): all of `val` and `oos_val` is validation, and a training row whose
  text also appears there is dropped.
Validation rows must never be written to training data; anything that needs messages disjoint
from training (the external report, a learning loop's hold-out) reads `validation_slice`.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Tuple

from supportbot.public_data.mapping import Mapping, Source

VALIDATION, TRAINING = "validation", "training"
_SPACE = re.compile(r"\s+")
_EDGE_PUNCTUATION = " .,!?;:'\""


def normalise(text: str) -> str:
    """The form used for hashing and de-duplication: NFKC, lower case, single spaces, no
    punctuation at either end ("Where is my order?" and "where is my order" are one message)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", text).strip(_EDGE_PUNCTUATION)


def bucket(text: str) -> float:
    """A number in [0, 1) fixed by the normalised text (sha256, so stable across runs and machines)."""
    digest = hashlib.sha256(normalise(text).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def is_validation(text: str, fraction: float = 0.2) -> bool:
    return bucket(text) < fraction


@dataclass(frozen=True)
class PublicRow:
    text: str
    source: str  # banking77, clinc150
    source_intent: str
    split: str  # the source's own split name: train, val, oos_val...
    target: str  # our intent or out_of_scope
    side: str  # validation or training


def _banking77(folder: Path, source: Source) -> Iterator[Tuple[str, str, str, str]]:
    with open(folder / source.file, newline="") as handle:
        for row in csv.DictReader(handle):
            text = row["text"]
            side = VALIDATION if is_validation(text, source.validation_fraction) else TRAINING
            yield text, row["category"], "train", side


def _clinc150(folder: Path, source: Source) -> Iterator[Tuple[str, str, str, str]]:
    data = json.loads((folder / source.file).read_text())
    held_out = {normalise(text) for split in source.validation_splits for text, _ in data[split]}
    for split in source.validation_splits:
        for text, intent in data[split]:
            yield text, intent, split, VALIDATION
    for split in source.training_splits:
        for text, intent in data[split]:
            if normalise(text) not in held_out:
                yield text, intent, split, TRAINING


_READERS = {"banking77": _banking77, "clinc150": _clinc150}


def public_rows(datasets: Path, mapping: Mapping) -> List[PublicRow]:
    """Every row whose source intent is mapped (not `skip`), in file order. A source whose file
    is missing raises FileNotFoundError: a partial data set would silently change the figures."""
    rows = []
    for name, source in mapping.sources.items():
        for text, source_intent, split, side in _READERS[name](Path(datasets), source):
            target = source.target(source_intent)
            if target is not None:
                rows.append(PublicRow(text, name, source_intent, split, target, side))
    return rows


def validation_slice(datasets: Path, mapping: Mapping) -> List[PublicRow]:
    return [row for row in public_rows(datasets, mapping) if row.side == VALIDATION]


def training_pool(datasets: Path, mapping: Mapping) -> List[PublicRow]:
    return [row for row in public_rows(datasets, mapping) if row.side == TRAINING]
