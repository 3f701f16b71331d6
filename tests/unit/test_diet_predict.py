"""FastDIETPrediction: the same features and the same predictions as Rasa's DIET path
(FAQResponseSelector's: tests/unit/test_faq_selector.py)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.nlu.featurizers.sparse_featurizer.lexical_syntactic_featurizer import LexicalSyntacticFeaturizer
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.diet_predict import FAST_PREDICTION, _FlatCall, _PredictionMessage, combined_matrix
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


def trained_extractor(tmp_path):
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), node_name="x")
    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    words = CountVectorsFeaturizer.create(CountVectorsFeaturizer.get_default_config(), storage,
                                          Resource("words"), context)
    chars = CountVectorsFeaturizer.create({**CountVectorsFeaturizer.get_default_config(), "analyzer": "char_wb",
                                           "min_ngram": 2, "max_ngram": 3}, storage, Resource("chars"), context)
    lexical = LexicalSyntacticFeaturizer.create(LexicalSyntacticFeaturizer.get_default_config(), storage,
                                                Resource("lexical"), context)
    diet = DIETEntityExtractor.create({**DIETEntityExtractor.get_default_config(), "epochs": 10,
                                       "random_seed": 1}, storage, Resource("diet"), context)
    featurizers = [words, chars, lexical]
    messages = []
    for text, plan in [("switch me to premium", "premium"), ("switch me to basic", "basic"),
                       ("I want the plus plan", "plus"), ("move to premium now", "premium"),
                       ("basic is enough", "basic"), ("upgrade to plus", "plus")]:
        start = text.index(plan)
        messages.append(Message(data={TEXT: text, INTENT: "change_plan", ENTITIES: [
            {"entity": "plan", "start": start, "end": start + len(plan), "value": plan}]}))
    data = TrainingData(messages)
    tokenizer.process_training_data(data)
    for featurizer in featurizers:
        featurizer.train(data)
        featurizer.process_training_data(data)
    diet.train(data)

    def featurized(text):
        message = tokenizer.process([Message(data={TEXT: text})])
        for featurizer in featurizers:
            message = featurizer.process(message)
        return message[0]

    return diet, featurized


def test_predictions_are_rasas_to_the_last_bit(tmp_path):
    diet, featurized = trained_extractor(tmp_path)
    texts = ["switch me to plus", "premium please", "Über 🎉 premium!", "x " * 60, "basic"]
    diet.component_config[FAST_PREDICTION] = False
    rasas = [diet._predict(featurized(text)) for text in texts]
    rasa_call = diet.model._tf_predict_step
    assert not isinstance(rasa_call, _FlatCall)  # `fast_prediction: false` is Rasa's path
    diet.component_config[FAST_PREDICTION] = True
    ours = [diet._predict(featurized(text)) for text in texts]
    # after its first prediction the extractor calls the graph Rasa traced, directly
    assert isinstance(diet.model._tf_predict_step, _FlatCall)
    assert diet.model._tf_predict_step.concrete is rasa_call.get_concrete_function()
    for rasa_out, our_out in zip(rasas, ours):
        assert set(rasa_out) == set(our_out) >= {"e_entity_ids", "e_entity_scores"}
        for key in ("e_entity_ids", "e_entity_scores"):
            np.testing.assert_array_equal(our_out[key], rasa_out[key])
        for key, value in rasa_out["diagnostic_data"].items():
            np.testing.assert_array_equal(our_out["diagnostic_data"][key], value)
    parsed = diet.process([featurized("switch me to plus")])[0]
    assert [(e["entity"], e["value"]) for e in parsed.get(ENTITIES)] == [("plan", "plus")]


def test_a_bad_setting_is_refused(tmp_path):
    with pytest.raises(InvalidConfigException, match="'fast_prediction' must be true or false"):
        DIETEntityExtractor.create({**DIETEntityExtractor.get_default_config(), FAST_PREDICTION: "yes"},
                                   LocalModelStorage(tmp_path), Resource("diet"),
                                   ExecutionContext(GraphSchema({}), node_name="x"))
