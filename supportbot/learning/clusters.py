"""`supportbot learn clusters`: fallback messages no intent explains, grouped into suggested new
intents.

The candidates are pending turns the model was unsure of (`fallback`, `low_confidence`) and that
nobody labelled. One whose sentence vector lies close to a training example (data/nlu or an
accepted item) is explained by that example's intent and stays in the ordinary queue; the rest
are grouped by average-linkage hierarchical clustering on cosine distance, which needs no number
of clusters and gives the same groups for the same store. Each group of at least `min_size`
messages is a suggested new intent, named after the content words most of its messages share.
`supportbot learn accept <ids> --label <name> --new-intent` then labels them with it.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, FrozenSet, List, Optional, Tuple

import numpy as np
from sqlalchemy import select

from supportbot.learning import noise
from supportbot.learning.review import NEW, ReviewError
from supportbot.learning.store import LearningStore, Turn, TurnRow

UNSURE = frozenset({"fallback", "low_confidence"})
# A candidate at least this similar (cosine) to a training example is that example's intent.
EXPLAINED_AT = 0.7
# Messages join one cluster while their mean cosine distance stays below this (similarity 0.4):
# paraphrases of one goal score 0.4-0.8 with this encoder, unrelated messages below 0.3.
LINK_DISTANCE = 0.6
MIN_SIZE = 3
NAME_WORDS = 3
INTENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
PLACEHOLDER = re.compile(r"\[[^\]]*\]")  # masked values: "[email]", "[card number ending 1111]"
# Words of any request, on top of spaCy's English stop words.
CHAT_WORDS = frozenset({"hi", "hello", "hey", "thanks", "thank", "pls", "plz", "want", "like", "need",
                        "help", "know", "tell", "possible", "way", "get", "hii", "ok", "okay"})


class ClusterError(ValueError):
    """Clustering cannot run; the message says why."""


@dataclass(frozen=True)
class Cluster:
    name: str
    turns: List[Turn]

    @property
    def ids(self) -> List[int]:
        return [t.id for t in self.turns]


def unsure_candidates(store: LearningStore) -> List[Turn]:
    """Pending, unlabelled turns the model fell back on or was unsure of."""
    return [t for t in store.turns(candidates_only=True)
            if t.status == NEW and not t.label and UNSURE.intersection(t.reasons)]


def unexplained(turns: List[Turn], vectors: np.ndarray, training: np.ndarray,
                explained_at: float = EXPLAINED_AT) -> List[int]:
    """Indexes of the turns no training example is similar to."""
    if not len(training):
        return list(range(len(turns)))
    nearest = (vectors @ training.T).max(axis=1)
    return [i for i in range(len(turns)) if nearest[i] < explained_at]


def group(vectors: np.ndarray, distance: float = LINK_DISTANCE) -> List[List[int]]:
    """Indexes of similar vectors, each group in input order, larger groups first."""
    if len(vectors) < 2:
        return [[i] for i in range(len(vectors))]
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(vectors, method="average", metric="cosine")
    assignment = fcluster(tree, t=distance, criterion="distance")
    groups: dict = {}
    for index, cluster in enumerate(assignment):
        groups.setdefault(cluster, []).append(index)
    return sorted(groups.values(), key=lambda members: (-len(members), members[0]))


@lru_cache(maxsize=1)
def _lemmas() -> Any:
    from spacy.lookups import load_lookups

    return load_lookups("en", ["lemma_lookup"]).get_table("lemma_lookup")


def words(text: str) -> List[str]:
    """Content words as lemmas ("engraving" and "engrave" are one word), masked values left out."""
    from spacy.lang.en.stop_words import STOP_WORDS

    plain = PLACEHOLDER.sub(" ", text.lower())
    found = [w for w in re.findall(r"[a-z][a-z']+", plain) if w not in STOP_WORDS and "'" not in w]
    return [lemma for lemma in (_lemmas().get(w, w) for w in found) if lemma not in CHAT_WORDS]


def suggest_name(texts: List[str]) -> str:
    """The content words (up to three) that at least half of the texts contain, the most shared
    first; else the single most shared one."""
    shared: Counter = Counter()
    first_seen: dict = {}
    for text in texts:
        for word in dict.fromkeys(words(text)):
            shared[word] += 1
            first_seen.setdefault(word, len(first_seen))
    ranked = sorted(shared, key=lambda w: (-shared[w], first_seen[w]))
    common = [w for w in ranked if shared[w] * 2 >= len(texts)][:NAME_WORDS]
    return "_".join(common or ranked[:1]) or "new_intent"


def find_clusters(store: LearningStore, training: Optional[List[noise.Example]] = None,
                  min_size: int = MIN_SIZE, explained_at: float = EXPLAINED_AT,
                  distance: float = LINK_DISTANCE) -> List[Cluster]:
    """Suggested new intents: groups of at least `min_size` unexplained unsure messages.
    `training` defaults to data/nlu plus the store's accepted items."""
    if min_size < 2:
        raise ClusterError(f"--min-size must be at least 2, not {min_size}")
    with store.session() as session:
        empty = session.scalars(select(TurnRow.id).limit(1)).first() is None
    if empty:
        raise ClusterError("the learning store has no turns at all: check --db, or run "
                           "`supportbot learn collect` first")
    turns = unsure_candidates(store)
    if not turns:
        return []
    training = noise.training_examples(store) if training is None else training
    vectors = noise.embed([t.text for t in turns])
    left = unexplained(turns, vectors, noise.embed([e.text for e in training]), explained_at)
    clusters, names = [], Counter()
    for members in group(vectors[left], distance):
        if len(members) < min_size:
            continue
        chosen = [turns[left[i]] for i in members]
        name = suggest_name([t.text for t in chosen])
        names[name] += 1
        clusters.append(Cluster(name if names[name] == 1 else f"{name}_{names[name]}", chosen))
    return clusters


def accept_labels(labels: FrozenSet[str], label: Optional[str], new_intent: bool) -> Tuple[FrozenSet[str], str]:
    """The labels `learn accept` may give, and what to tell the reviewer. A label outside the
    domain is refused unless the reviewer says it is a new intent (`--new-intent`)."""
    if not new_intent:
        if label is not None and label not in labels:
            raise ReviewError(f"unknown intent {label!r} (intents as in domain/, FAQ topics as faq/<topic>); "
                              "for a new intent, add --new-intent")
        return labels, ""
    if label is None:
        raise ReviewError("--new-intent needs --label <new_intent>")
    if label in labels:
        return labels, f"{label} is already an intent: --new-intent changed nothing."
    if not INTENT_NAME.fullmatch(label):
        raise ReviewError(f"{label!r} cannot be an intent name: lower-case letters, digits and _, "
                          "starting with a letter (a new FAQ topic needs its utter_faq/<topic> answer first)")
    return labels | {label}, (f"{label} is a new intent: add it to a file in domain/ (intents:), with a rule or "
                              "story that answers it, before `supportbot learn retrain`.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-size", type=int, default=MIN_SIZE,
                        help="messages a cluster needs to be shown (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=noise.DATA,
                        help="the NLU training data (default: %(default)s)")
    parser.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")


def run(args: argparse.Namespace) -> int:
    try:
        store = LearningStore(args.db)
        clusters = find_clusters(store, noise.training_examples(store, args.data), args.min_size)
    except (ClusterError, noise.NoiseError) as error:
        print(f"No clusters: {error}", file=sys.stderr)
        return 2
    if not clusters:
        print(f"No group of {args.min_size} or more fallback messages that no intent explains.")
    for cluster in clusters:
        ids = " ".join(map(str, cluster.ids))
        print(f"== {cluster.name}: {len(cluster.turns)} messages [{ids}]")
        for turn in cluster.turns[:5]:
            print(f"  {turn.text[:100]}")
        print(f"  a new intent? supportbot learn accept {ids} --label {cluster.name} --new-intent")
    return 0
