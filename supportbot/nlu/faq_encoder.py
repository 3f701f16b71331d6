"""EncoderFAQSelector: picks the FAQ topic by sentence-encoder similarity, and answers only when sure.

For a message the intent classifier labelled `retrieval_intent` (`faq`), each topic's score is the
mean cosine similarity of the message's encoder sentence vector to its `neighbours` nearest
examples of that topic (data/nlu/faq.yml). The best topic is answered only if its score reaches
`floor` and beats the same score over the `out_of_scope_intent` examples; otherwise the message
becomes `out_of_scope_intent` (the out-of-scope reply), and no FAQ answer is set.

The output is Rasa's ResponseSelector's (`response_selector.faq.response.intent_response_key`
`faq/<topic>`, `utter_action` `utter_faq/<topic>`, a ranking), so `utter_faq`, the stories and
`rasa test nlu` read it unchanged. Training stores the normalised example vectors: no epochs
(docs/nlu-pipeline.md, "EncoderFAQSelector").
"""
from __future__ import annotations

import logging
import warnings
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import (
    FEATURE_TYPE_SENTENCE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    INTENT_RESPONSE_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.base import StoredArraysComponent

logger = logging.getLogger(__name__)

# A false alarm at `rasa train`: Rasa's recipe validator looks for ResponseSelector itself in the
# pipeline, so it says the faq/<key> examples train nothing, while this selector uses them.
warnings.filterwarnings(
    "ignore", category=UserWarning,
    message="You have defined training data with examples for training a response selector, but your NLU "
            "configuration does not include a response selector component",
)


SELECTOR = "response_selector"


def sentence_vector(message: Message, featurizer: str) -> Optional[np.ndarray]:
    """The message's TEXT sentence vector from `featurizer` (name or alias), unit length."""
    for feature in message.features:
        if (feature.attribute == TEXT and feature.type == FEATURE_TYPE_SENTENCE and not feature.is_sparse()
                and feature.origin == featurizer):
            vector = np.asarray(feature.features, dtype=np.float32).reshape(-1)
            return vector / max(float(np.linalg.norm(vector)), 1e-12)
    return None


def neighbour_scores(similarities: np.ndarray, labels: np.ndarray, n_labels: int, k: int) -> np.ndarray:
    """Per label, the mean of its `k` highest similarities (fewer if it has fewer examples);
    -1 for a label without examples."""
    scores = np.full(n_labels, -1.0)
    for label in range(n_labels):
        mine = similarities[labels == label]
        if len(mine):
            scores[label] = float(np.sort(mine)[-k:].mean())
    return scores


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class EncoderFAQSelector(StoredArraysComponent):
    ARRAYS_FILE = "vectors.npz"
    UNTRAINED = "it will answer nothing"
    # meta: topics ["faq/<key>", ...], responses {utter_faq/<key>: [...]}; arrays: vectors, labels
    # (index into topics, -1 for an out-of-scope example)

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            "retrieval_intent": "faq",
            # The alias (or name) of the SentenceEncoderFeaturizer whose sentence vectors are compared.
            "featurizer": "encoder",
            # How many nearest examples of a topic its score averages: 1 trusts a single lookalike.
            "neighbours": 3,
            # Below this score (a cosine similarity) the message is out of scope, never an FAQ answer.
            "floor": 0.55,
            "out_of_scope_intent": "out_of_scope",
            "ranking_length": 10,
        }

    @classmethod
    def validate_config(cls, config: Dict[str, Any]) -> None:
        if not isinstance(config.get("retrieval_intent"), str) or not config["retrieval_intent"]:
            raise InvalidConfigException("EncoderFAQSelector: retrieval_intent must name the retrieval intent.")
        floor = config.get("floor")
        if not isinstance(floor, (int, float)) or not -1.0 <= floor <= 1.0:
            raise InvalidConfigException("EncoderFAQSelector: floor must be a cosine similarity from -1 to 1.")
        for key in ("neighbours", "ranking_length"):
            if not isinstance(config.get(key), int) or config[key] < 1:
                raise InvalidConfigException(f"EncoderFAQSelector: {key} must be an integer >= 1.")

    def train(self, training_data: TrainingData) -> Resource:
        retrieval, out_of_scope = self._config["retrieval_intent"], self._config["out_of_scope_intent"]
        vectors, keys = [], []
        for message in training_data.intent_examples:
            intent, key = message.get(INTENT), message.get(INTENT_RESPONSE_KEY)
            if (intent == retrieval and key) or intent == out_of_scope:
                vector = sentence_vector(message, self._config["featurizer"])
                if vector is None:
                    raise InvalidConfigException(
                        f"EncoderFAQSelector found no sentence vector from '{self._config['featurizer']}': put "
                        "that SentenceEncoderFeaturizer (name or alias) before it.")
                vectors.append(vector)
                keys.append(key if intent == retrieval else None)
        topics = sorted({k for k in keys if k})
        if not topics:
            logger.warning("EncoderFAQSelector: no %s/<topic> examples; it will answer nothing.", retrieval)
            return self._resource
        index = {topic: i for i, topic in enumerate(topics)}
        self._meta = {"topics": topics,
                      "responses": {f"utter_{t}": training_data.responses.get(f"utter_{t}", []) for t in topics}}
        self._arrays = {"vectors": np.vstack(vectors),
                        "labels": np.array([index[k] if k else -1 for k in keys], dtype=np.int64)}
        self.persist()
        return self._resource

    def score(self, vector: np.ndarray) -> Tuple[np.ndarray, float]:
        """(each topic's score, the out-of-scope examples' score) for a unit sentence vector."""
        similarities = self._arrays["vectors"] @ vector
        labels, k = self._arrays["labels"], self._config["neighbours"]
        topics = neighbour_scores(similarities, labels, len(self._meta["topics"]), k)
        outside = neighbour_scores(similarities, labels + 1, 1, k)[0]  # label -1 -> 0
        return topics, outside

    def process(self, messages: List[Message]) -> List[Message]:
        if not self._meta:
            return messages
        for message in messages:
            if (message.get(INTENT) or {}).get(INTENT_NAME_KEY) != self._config["retrieval_intent"]:
                continue
            vector = sentence_vector(message, self._config["featurizer"])
            if vector is None:
                continue
            topics, outside = self.score(vector)
            best = int(np.argmax(topics))
            if topics[best] >= self._config["floor"] and topics[best] > outside:
                self._answer(message, topics)
            else:
                self._reject(message, self._meta["topics"][best], float(topics[best]))
        return messages

    def _answer(self, message: Message, scores: np.ndarray) -> None:
        topics = self._meta["topics"]
        order = np.argsort(-scores, kind="stable")[: self._config["ranking_length"]]
        confidence = lambda i: float(np.clip(scores[i], 0.0, 1.0))  # noqa: E731 - a cosine, as a confidence
        key = topics[order[0]]
        retrieval = self._config["retrieval_intent"]
        properties = message.get(SELECTOR) or {}
        properties["all_retrieval_intents"] = [retrieval]
        properties[retrieval] = {
            "response": {"responses": self._meta["responses"].get(f"utter_{key}") or [{TEXT: key}],
                         PREDICTED_CONFIDENCE_KEY: confidence(order[0]), INTENT_RESPONSE_KEY: key,
                         "utter_action": f"utter_{key}"},
            "ranking": [{"id": None, PREDICTED_CONFIDENCE_KEY: confidence(i), INTENT_RESPONSE_KEY: topics[i]}
                        for i in order],
        }
        message.set(SELECTOR, properties, add_to_output=True)

    def _reject(self, message: Message, topic: str, score: float) -> None:
        """The message becomes out of scope, at the confidence its `faq` intent had; `faq` leaves the
        ranking so that the fallback's ambiguity check does not see two equal intents."""
        out_of_scope, retrieval = self._config["out_of_scope_intent"], self._config["retrieval_intent"]
        logger.debug("EncoderFAQSelector: nearest topic %s at %.3f: %s.", topic, score, out_of_scope)
        intent = {INTENT_NAME_KEY: out_of_scope,
                  PREDICTED_CONFIDENCE_KEY: message.get(INTENT).get(PREDICTED_CONFIDENCE_KEY, 0.0)}
        ranking = [r for r in message.get(INTENT_RANKING_KEY) or []
                   if r.get(INTENT_NAME_KEY) not in (out_of_scope, retrieval)]
        message.set(INTENT, intent, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [dict(intent)] + ranking, add_to_output=True)
