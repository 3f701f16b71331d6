"""Rasa's DIET prediction for one message, without two of its Python overheads.

Rasa's DIETClassifier (and ResponseSelector, which is one) predicts a message in three steps: it
gathers the message's features into model data, batches them, and calls its TensorFlow graph.
Measured per parse on the product model (docs/nlu-pipeline.md, "Parse latency"), two of those
steps spend most of their time in Python rather than in the model:

- gathering: `Message.get_sparse_features` combines the featurizers' sparse matrices pairwise,
  one `scipy.sparse.hstack` per featurizer after the first, each building a new COO matrix and
  checking it, after deep-copying the first;
- calling: the graph is a `tf.function` whose every call canonicalises its ten input arrays
  against the input signature before running the one concrete function it ever traces.

`FastDIETPrediction` keeps the model, the model data and the outputs, and changes only how they
are reached: the features of each kind are combined in one step (for sparse ones, one COO matrix
from the parts' coordinates with shifted columns: the same entries, in the same order, as Rasa's
chain of `hstack`s), and once Rasa has traced its graph, its concrete function is called with
the flat tensors. A unit test checks that both give exactly what Rasa's path gives.
`fast_prediction: false` in a component's config keeps Rasa's path (the benchmark's baseline).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

import numpy as np
import scipy.sparse
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message

logger = logging.getLogger(__name__)

FAST_PREDICTION = "fast_prediction"


class _PredictionMessage(Message):
    """A view of a message (same data, same features) whose features combine in one step."""

    @staticmethod
    def _combine_features(features: List[Features], featurizers: List[str]) -> Optional[Features]:
        if len(features) < 2:
            return Message._combine_features(features, featurizers)
        return Features(combined_matrix([f.features for f in features]), features[0].type,
                        features[0].attribute, featurizers)


def combined_matrix(parts: List[Any]) -> Any:
    """The parts side by side, as Rasa's chain of `Features.combine_with_features` builds them:
    arrays concatenated on the last axis, sparse matrices as one COO matrix."""
    rows = {part.shape[0] for part in parts}
    if len(rows) > 1:
        raise ValueError(f"Cannot combine features with different numbers of rows: {sorted(rows)}.")
    if not all(scipy.sparse.issparse(part) for part in parts):
        if any(scipy.sparse.issparse(part) for part in parts):
            raise ValueError("Cannot combine sparse and dense features.")
        return np.concatenate(parts, axis=-1)
    coos = [part.tocoo() for part in parts]
    offsets = np.cumsum([0] + [coo.shape[1] for coo in coos[:-1]])
    return scipy.sparse.coo_matrix(
        (np.concatenate([coo.data for coo in coos]),
         (np.concatenate([coo.row for coo in coos]),
          np.concatenate([coo.col + offset for coo, offset in zip(coos, offsets)]))),
        shape=(rows.pop(), sum(coo.shape[1] for coo in coos)),
        dtype=np.result_type(*[coo.dtype for coo in coos]),
    )


class _FlatCall:
    """Calls the one concrete function of Rasa's `tf.function` with the batch as flat tensors."""

    def __init__(self, traced) -> None:
        import tensorflow as tf

        self._convert = tf.convert_to_tensor
        self.concrete = traced.get_concrete_function()

    def __call__(self, batch_in) -> Dict[str, Any]:
        return self.concrete._call_flat([self._convert(x) for x in batch_in], self.concrete.captured_inputs)


class FastDIETPrediction:
    """Mixin for DIETClassifier subclasses: `_predict` as Rasa's, with the overheads above removed."""

    def _check_config_parameters(self) -> None:
        super()._check_config_parameters()
        if not isinstance(self.component_config.get(FAST_PREDICTION, True), bool):
            raise InvalidConfigException(
                f"{type(self).__name__}: '{FAST_PREDICTION}' must be true or false, "
                f"not {self.component_config[FAST_PREDICTION]!r}.")

    def _predict(self, message: Message) -> Optional[Dict[str, Any]]:
        if self.model is None or not self.component_config.get(FAST_PREDICTION, True):
            return super()._predict(message)
        outputs = super()._predict(_PredictionMessage(data=message.data, features=message.features))
        self._use_flat_call()
        return outputs

    def _use_flat_call(self) -> None:
        """After Rasa traced its prediction graph (on the first prediction, with its input
        signature), call that graph's concrete function directly. Left as Rasa's if the graph was
        not traced (eager mode) or this TensorFlow has no flat call."""
        traced = getattr(self.model, "_tf_predict_step", None)
        if traced is None or getattr(self, "_flat_call_tried", False):
            return
        self._flat_call_tried = True
        try:
            flat_call = _FlatCall(traced)
            if not hasattr(flat_call.concrete, "_call_flat"):
                raise AttributeError("ConcreteFunction has no _call_flat")
        except (AttributeError, TypeError, ValueError) as error:
            logger.debug("%s: keeping Rasa's tf.function call (%s).", type(self).__name__, error)
            return
        self.model._tf_predict_step = flat_call
