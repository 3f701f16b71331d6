"""LinearIntentClassifier: a regularised linear model over every featurizer's sentence features.

With a good sentence encoder in the pipeline (supportbot/nlu/encoder.py), most of the work of
telling intents apart is already done by the encoder; what is left is close to linear. A
multinomial logistic regression over the encoder's sentence vector and the word/character n-gram
counts trains in seconds instead of DIET's minutes, and is far better with few examples per intent
(docs/nlu-pipeline.md, "LinearIntentClassifier").

Features: the TEXT sentence features of every featurizer (or of those named in `featurizers`),
one block per featurizer, each brought to unit length so that no block drowns the others:
- sparse blocks (n-gram counts, regex matches) are weighted like TF-IDF: log(1 + count) times an
  inverse document frequency learned in training;
- dense blocks (the sentence encoder, spaCy vectors) are scaled by `dense_weight` after
  normalisation.

`multi_label: true` reads each intent as a set of labels joined by `label_split_symbol` (NLU++'s
`how_long+new+pin`), fits one binary logistic regression per label, and predicts the set of labels
whose probability reaches `label_threshold`, again as one `a+b` intent. An intent named
`empty_intent` means "no label"; it is predicted when no label reaches the threshold.

The model is stored as plain arrays (`.npz`) and JSON: no pickle in the model archive. Training
builds one sparse matrix from every message's block entries; a parse scores its message from the
same entries directly, which spares it the sparse-matrix assembly (dearer than the scoring).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import (
    FEATURE_TYPE_SENTENCE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.base import StoredArraysComponent

logger = logging.getLogger(__name__)


def _blocks(message: Message, featurizers: Sequence[str]) -> Dict[str, Tuple[bool, Any]]:
    """origin -> (is_sparse, 1×d sentence features) of the message's TEXT."""
    found = {}
    for feature in message.features:
        if feature.attribute != TEXT or feature.type != FEATURE_TYPE_SENTENCE:
            continue
        origin = feature.origin if isinstance(feature.origin, str) else "+".join(feature.origin)
        if featurizers and origin not in featurizers:
            continue
        found[origin] = (feature.is_sparse(), feature.features)
    return found


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def _sigmoid(scores: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(scores, -50, 50)))


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(StoredArraysComponent, IntentClassifier):
    ARRAYS_FILE = "weights.npz"
    UNTRAINED = "it will predict no intent"
    # meta: classes, blocks [{origin, sparse, dim}]; arrays: W [d, k], b [k], idf_<i> per sparse block

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            # Inverse regularisation strength of the logistic regression (larger: less regularised).
            "C": 10.0,
            "max_iter": 2000,
            # None or "balanced": weight examples inversely to their class's frequency. With few
            # examples per label, "balanced" keeps rare labels from being predicted "off" always.
            "class_weight": None,
            "random_seed": 42,
            # Names (or aliases) of the featurizers whose sentence features are used; [] = all.
            "featurizers": [],
            # Scale of each dense block after it is brought to unit length (sparse blocks: 1).
            "dense_weight": 1.0,
            # How many intents `intent_ranking` lists.
            "ranking_length": 10,
            "multi_label": False,
            "label_split_symbol": "+",
            "label_threshold": 0.5,
            # multi_label only: the intent that means "no label" (e.g. NLU++'s `no_label`).
            "empty_intent": None,
        }

    @classmethod
    def validate_config(cls, config: Dict[str, Any]) -> None:
        for key in ("C", "dense_weight"):
            if not isinstance(config.get(key), (int, float)) or config[key] <= 0:
                raise InvalidConfigException(f"LinearIntentClassifier: {key} must be a number above 0.")
        for key in ("max_iter", "ranking_length"):
            if not isinstance(config.get(key), int) or config[key] < 1:
                raise InvalidConfigException(f"LinearIntentClassifier: {key} must be an integer >= 1.")
        threshold = config.get("label_threshold")
        if not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
            raise InvalidConfigException("LinearIntentClassifier: label_threshold must be between 0 and 1.")
        if config.get("class_weight") not in (None, "balanced"):
            raise InvalidConfigException("LinearIntentClassifier: class_weight must be null or 'balanced'.")
        if not isinstance(config.get("featurizers"), list):
            raise InvalidConfigException("LinearIntentClassifier: featurizers must be a list of names.")

    # --- features -------------------------------------------------------------------------

    def _found(self, messages: Sequence[Message]) -> List[Dict[str, Tuple[bool, Any]]]:
        return [_blocks(m, self._config["featurizers"]) for m in messages]

    def _block_entries(self, index: int,
                       found: Dict[str, Tuple[bool, Any]]) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Block `index` of one message as (columns, values), weighted and brought to unit length
        (times `dense_weight` for a dense block); None when the message lacks it (a zero block)."""
        block = self._meta["blocks"][index]
        kind, value = found.get(block["origin"], (block["sparse"], None))
        if value is None or kind != block["sparse"] or value.shape[-1] != block["dim"]:
            return None
        if block["sparse"]:
            counts = scipy.sparse.csr_matrix(value)  # repeated entries summed
            columns, scale = counts.indices, 1.0
            values = np.log1p(np.abs(counts.data.astype(np.float64))) * self._arrays[f"idf_{index}"][columns]
        else:
            values = np.asarray(value, dtype=np.float64).reshape(block["dim"])
            columns, scale = np.arange(block["dim"]), self._config["dense_weight"]
        return columns, values * (scale / max(float(np.linalg.norm(values)), 1e-12))

    def _rows(self, per_message: Sequence[Dict[str, Tuple[bool, Any]]]):
        """(message, columns, values) of every block present, columns in the learned layout."""
        offsets = np.cumsum([0] + [block["dim"] for block in self._meta["blocks"]])
        for row, found in enumerate(per_message):
            for index in range(len(self._meta["blocks"])):
                entries = self._block_entries(index, found)
                if entries is not None:
                    yield row, entries[0] + offsets[index], entries[1]

    def _matrix(self, per_message: Sequence[Dict[str, Tuple[bool, Any]]]):
        """The training feature matrix, one row per message, in the layout learned in training."""
        width = sum(block["dim"] for block in self._meta["blocks"])
        rows, columns, values = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
        for row, block_columns, block_values in self._rows(per_message):
            rows.append(np.full(len(block_columns), row))
            columns.append(block_columns)
            values.append(block_values)
        return scipy.sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
                                       shape=(len(per_message), width))

    def _scores(self, per_message: Sequence[Dict[str, Tuple[bool, Any]]]) -> np.ndarray:
        """W·x + b per message, from each block's entries: the same numbers as
        `_matrix(...) @ W + b` without assembling a sparse matrix, which costs more than the multiplication."""
        weights = self._arrays["W"]
        scores = np.tile(np.asarray(self._arrays["b"], dtype=np.float64), (len(per_message), 1))
        for row, columns, values in self._rows(per_message):
            scores[row] += values @ weights[columns]
        return scores

    def _learn_blocks(self, per_message: Sequence[Dict[str, Tuple[bool, Any]]]) -> None:
        """The block layout (origin, kind, width) and each sparse block's IDF, from training data."""
        layout: Dict[str, Tuple[bool, int]] = {}
        for found in per_message:
            for origin, (sparse, value) in found.items():
                layout.setdefault(origin, (sparse, value.shape[-1]))
        if not layout:
            raise InvalidConfigException(
                "LinearIntentClassifier found no sentence features for TEXT: put a featurizer that "
                "adds sentence features (e.g. CountVectorsFeaturizer, SentenceEncoderFeaturizer) before it"
                + (f", and check the names in `featurizers` ({self._config['featurizers']})."
                   if self._config["featurizers"] else ".")
            )
        self._meta = {"blocks": [{"origin": o, "sparse": s, "dim": d} for o, (s, d) in sorted(layout.items())]}
        n = len(per_message)
        for index, block in enumerate(self._meta["blocks"]):
            if not block["sparse"]:
                continue
            document_frequency = np.zeros(block["dim"])
            for found in per_message:
                sparse, value = found.get(block["origin"], (False, None))
                if sparse:
                    document_frequency[value.nonzero()[1]] += 1
            self._arrays[f"idf_{index}"] = np.log((1.0 + n) / (1.0 + document_frequency)) + 1.0

    # --- training -------------------------------------------------------------------------

    def _label_sets(self, intents: Sequence[str]) -> List[List[str]]:
        empty, symbol = self._config["empty_intent"], self._config["label_split_symbol"]
        return [[] if intent == empty else sorted(set(intent.split(symbol))) for intent in intents]

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.linear_model import LogisticRegression

        examples = [m for m in training_data.intent_examples if m.get(TEXT) and m.get(INTENT)]
        intents = [m.get(INTENT) for m in examples]
        if len(set(intents)) < 2:
            logger.warning("LinearIntentClassifier needs at least two intents to train; it will predict none.")
            return self._resource
        self._arrays = {}
        per_message = self._found(examples)
        self._learn_blocks(per_message)
        features = self._matrix(per_message)

        def fit(targets):
            model = LogisticRegression(C=self._config["C"], max_iter=self._config["max_iter"],
                                       class_weight=self._config["class_weight"],
                                       random_state=self._config["random_seed"])
            return model.fit(features, targets)

        if self._config["multi_label"]:
            sets = self._label_sets(intents)
            labels = sorted({label for labels in sets for label in labels})
            weights, biases = [], []
            for label in labels:
                targets = np.array([label in labels_ for labels_ in sets], dtype=int)
                if targets.all():  # every example has it: a constant "yes"
                    weights.append(np.zeros(features.shape[1]))
                    biases.append(50.0)
                    continue
                model = fit(targets)
                weights.append(model.coef_[0])
                biases.append(model.intercept_[0])
            self._meta["classes"] = labels
            self._arrays["W"] = np.array(weights).T
            self._arrays["b"] = np.array(biases)
        else:
            model = fit(np.array(intents))
            weights, biases = model.coef_, model.intercept_
            if weights.shape[0] == 1:  # two classes: sklearn keeps one row, softmax([-z, z]) = its proba
                weights, biases = np.vstack([-weights, weights]), np.array([-biases[0], biases[0]])
            self._meta["classes"] = [str(c) for c in model.classes_]
            self._arrays["W"], self._arrays["b"] = weights.T, biases
        self.persist()
        return self._resource

    # --- prediction -----------------------------------------------------------------------

    def predict(self, messages: Sequence[Message]) -> List[Tuple[Optional[Dict], List[Dict]]]:
        """(intent, ranking) per message, as Rasa's other intent classifiers set them."""
        if not self._meta or "W" not in self._arrays:
            return [(None, []) for _ in messages]
        scores = self._scores(self._found(messages))
        classes = self._meta["classes"]
        results = []
        if self._config["multi_label"]:
            for row in _sigmoid(scores):
                results.append(self._decode_labels(row, classes))
            return results
        top = self._config["ranking_length"]
        for row in _softmax(scores):
            order = np.argsort(-row, kind="stable")[:top]
            ranking = [{INTENT_NAME_KEY: classes[i], PREDICTED_CONFIDENCE_KEY: float(row[i])} for i in order]
            results.append((dict(ranking[0]), ranking))
        return results

    def _decode_labels(self, probabilities: np.ndarray, labels: List[str]) -> Tuple[Dict, List[Dict]]:
        threshold = self._config["label_threshold"]
        chosen = [i for i in np.argsort(-probabilities, kind="stable") if probabilities[i] >= threshold]
        if chosen:
            name = self._config["label_split_symbol"].join(sorted(labels[i] for i in chosen))
            # The set is right only if each chosen label is: its weakest label bounds its confidence.
            confidence = float(min(probabilities[i] for i in chosen))
        elif self._config["empty_intent"]:
            name, confidence = self._config["empty_intent"], float(1.0 - probabilities.max())
        else:
            best = int(np.argmax(probabilities))
            name, confidence = labels[best], float(probabilities[best])
        intent = {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: confidence}
        order = np.argsort(-probabilities, kind="stable")[: self._config["ranking_length"]]
        ranking = [dict(intent)] + [{INTENT_NAME_KEY: labels[i], PREDICTED_CONFIDENCE_KEY: float(probabilities[i])}
                                    for i in order if labels[i] != name]
        return intent, ranking

    def process(self, messages: List[Message]) -> List[Message]:
        with_text = [m for m in messages if m.get(TEXT)]
        predictions = dict(zip(map(id, with_text), self.predict(with_text))) if with_text else {}
        for message in messages:
            # No text or no model: no intent, at confidence 0, as DIET reports it, so that a
            # FallbackClassifier after this one turns the message into nlu_fallback.
            intent, ranking = predictions.get(id(message), (None, []))
            intent = intent or {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking[: self._config["ranking_length"]], add_to_output=True)
        return messages
