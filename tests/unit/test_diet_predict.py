"""FastDIETPrediction: the same features as Rasa's DIET path (the same predictions:
tests/unit/test_entity_diet.py and tests/unit/test_faq_selector.py)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message

from supportbot.nlu.diet_predict import FAST_PREDICTION, _PredictionMessage, combined_matrix
from supportbot.nlu.entity_diet import DIETEntityExtractor


def sparse(rows, cols, seed, dtype=np.float32):
    return scipy.sparse.random(rows, cols, density=0.3, format="coo", dtype=dtype,
                               random_state=np.random.default_rng(seed))


def message_with_features() -> Message:
    features = [
        Features(sparse(5, 7, 1), "sequence", TEXT, "words"),
        Features(sparse(1, 7, 2), "sentence", TEXT, "words"),
        Features(sparse(5, 11, 3, np.float64), "sequence", TEXT, "chars"),
        Features(sparse(1, 11, 4, np.float64), "sentence", TEXT, "chars"),
        Features(scipy.sparse.csr_matrix(sparse(5, 3, 5)), "sequence", TEXT, "lexical"),
        Features(np.ones((5, 4), np.float32), "sequence", TEXT, "dense1"),
        Features(np.full((5, 2), 2.0, np.float32), "sequence", TEXT, "dense2"),
        Features(np.ones((1, 4), np.float32), "sentence", TEXT, "dense1"),
        Features(sparse(3, 5, 6), "sequence", INTENT, "words"),
    ]
    return Message(data={TEXT: "a b c d e"}, features=features)


@pytest.mark.parametrize("featurizers", [None, [], ["chars", "words", "dense2"], ["lexical"], ["none"]])
def test_features_combine_exactly_as_rasas(featurizers):
    message = message_with_features()
    fast = _PredictionMessage(data=message.data, features=message.features)
    for getter in ("get_sparse_features", "get_dense_features"):
        pairs = zip(getattr(fast, getter)(TEXT, featurizers), getattr(message, getter)(TEXT, featurizers))
        for ours, rasas in pairs:
            if rasas is None:
                assert ours is None
                continue
            assert (ours.type, ours.attribute, ours.origin) == (rasas.type, rasas.attribute, rasas.origin)
            if rasas.is_sparse():
                # the same format, dtype and shape, the same entries in the same order
                assert ours.features.format == rasas.features.format
                assert ours.features.dtype == rasas.features.dtype
                assert ours.features.shape == rasas.features.shape
                for part in ("row", "col", "data"):
                    np.testing.assert_array_equal(getattr(ours.features.tocoo(), part),
                                                  getattr(rasas.features.tocoo(), part))
            else:
                np.testing.assert_array_equal(ours.features, rasas.features)
    # the original message's features are left as they were
    assert [f.features.shape for f in message.features][:3] == [(5, 7), (1, 7), (5, 11)]


def test_features_that_cannot_be_combined_are_refused():
    with pytest.raises(ValueError, match="different numbers of rows"):
        combined_matrix([sparse(2, 3, 1), sparse(3, 3, 2)])
    with pytest.raises(ValueError, match="sparse and dense"):
        combined_matrix([sparse(2, 3, 1), np.ones((2, 3))])


def test_a_bad_setting_is_refused(tmp_path):
    with pytest.raises(InvalidConfigException, match="'fast_prediction' must be true or false"):
        DIETEntityExtractor.create({**DIETEntityExtractor.get_default_config(), FAST_PREDICTION: "yes"},
                                   LocalModelStorage(tmp_path), Resource("diet"),
                                   ExecutionContext(GraphSchema({}), node_name="x"))
