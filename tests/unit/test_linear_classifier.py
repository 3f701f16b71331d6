"""LinearIntentClassifier: trains on sentence features, survives persist/load, decodes label sets."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.classifier import LinearIntentClassifier

RNG = np.random.default_rng(0)
CENTRES = {"track_order": [1, 0, 0], "cancel": [0, 1, 0], "refund": [0, 0, 1]}


def message(text, dense=None, sparse=None, intent=None, origin="encoder"):
    result = Message(data={TEXT: text, **({INTENT: intent} if intent else {})})
    if dense is not None:
        result.add_features(Features(np.array([dense], dtype=np.float32), FEATURE_TYPE_SENTENCE, TEXT, origin))
    if sparse is not None:
        result.add_features(Features(scipy.sparse.coo_matrix([sparse]), FEATURE_TYPE_SENTENCE, TEXT, "words"))
    return result


def noisy(centre, scale=0.3):
    return list(np.asarray(centre, dtype=float) + RNG.normal(0, scale, len(centre)))


def create(tmp_path, **config):
    storage = LocalModelStorage(tmp_path)
    full = {**LinearIntentClassifier.get_default_config(), **config}
    context = ExecutionContext(GraphSchema({}), node_name="linear")
    return LinearIntentClassifier.create(full, storage, Resource("linear"), context), full, storage, context


def training_data(per_intent=8, with_sparse=True):
    examples = []
    for index, (intent, centre) in enumerate(CENTRES.items()):
        for n in range(per_intent):
            sparse = [0] * 6
            sparse[index * 2 + n % 2] = 1 + n % 3  # word counts: two words per intent
            examples.append(message(f"{intent} {n}", noisy(centre), sparse if with_sparse else None, intent))
    return TrainingData(examples)


def test_learns_intents_and_predicts_the_same_after_loading(tmp_path):
    classifier, config, storage, context = create(tmp_path, ranking_length=2)
    classifier.train(training_data())
    probes = [message("a", [0.9, 0.1, 0.0], [1, 0, 0, 0, 0, 0]),
              message("b", [0.0, 1.1, 0.1], [0, 0, 2, 0, 0, 0]),
              message("c", [0.1, 0.0, 0.8], [0, 0, 0, 0, 0, 1])]
    predicted = classifier.process(probes)
    assert [m.get(INTENT)["name"] for m in predicted] == ["track_order", "cancel", "refund"]
    for m in predicted:
        ranking = m.get(INTENT_RANKING_KEY)
        assert len(ranking) == 2
        assert ranking[0]["confidence"] >= ranking[1]["confidence"]
        assert m.get(INTENT)["confidence"] == ranking[0]["confidence"] > 0.5

    loaded = LinearIntentClassifier.load(config, storage, Resource("linear"), context)
    again = loaded.process([message(m.get(TEXT), *(f.features.toarray()[0] if f.is_sparse() else f.features[0]
                                                    for f in m.features)) for m in probes])
    for before, after in zip(predicted, again):
        assert after.get(INTENT)["name"] == before.get(INTENT)["name"]
        assert after.get(INTENT)["confidence"] == pytest.approx(before.get(INTENT)["confidence"])


def test_two_intents_give_complementary_probabilities(tmp_path):
    classifier, *_ = create(tmp_path)
    data = [message(f"{i} {n}", noisy(c[:2]), intent=i) for i, c in list(CENTRES.items())[:2] for n in range(6)]
    classifier.train(TrainingData(data))
    [probe] = classifier.process([message("x", [1.0, 0.0])])
    ranking = probe.get(INTENT_RANKING_KEY)
    assert [r["name"] for r in ranking] == ["track_order", "cancel"]
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0)
    assert ranking[0]["confidence"] > 0.8


def test_only_the_named_featurizers_are_used(tmp_path):
    # The "noise" block says the opposite of the truth; with featurizers=[encoder] it is ignored.
    data = []
    for intent, centre in list(CENTRES.items())[:2]:
        for n in range(6):
            m = message(f"{intent} {n}", noisy(centre[:2]), intent=intent)
            m.add_features(Features(np.array([[float(n % 2), float(1 - n % 2)]]), FEATURE_TYPE_SENTENCE,
                                    TEXT, "noise"))
            data.append(m)
    classifier, *_ = create(tmp_path, featurizers=["encoder"])
    classifier.train(TrainingData(data))
    assert [b["origin"] for b in classifier._meta["blocks"]] == ["encoder"]
    [probe] = classifier.process([message("x", [0.0, 1.0])])
    assert probe.get(INTENT)["name"] == "cancel"


def test_label_sets_are_decoded_per_label(tmp_path):
    # Word 0 means label "new", word 1 means label "pin"; "no_label" is the empty set. Word 2 or 3
    # is noise every example carries.
    data = []
    for intent, words in (("new", [1, 0]), ("pin", [0, 1]), ("new+pin", [1, 1]), ("no_label", [0, 0])):
        data += [message(f"{intent} {n}", sparse=words + [n % 2, 1 - n % 2], intent=intent) for n in range(10)]
    classifier, *_ = create(tmp_path, multi_label=True, empty_intent="no_label")
    classifier.train(TrainingData(data))
    assert classifier._meta["classes"] == ["new", "pin"]
    probes = classifier.process([message(str(n), sparse=words + [1, 0])
                                 for n, words in enumerate(([1, 1], [1, 0], [0, 1], [0, 0]))])
    assert [m.get(INTENT)["name"] for m in probes] == ["new+pin", "new", "pin", "no_label"]
    both = probes[0]
    labels = {r["name"]: r["confidence"] for r in both.get(INTENT_RANKING_KEY)[1:]}
    assert both.get(INTENT)["confidence"] == pytest.approx(min(labels["new"], labels["pin"]))


def test_nothing_above_the_label_threshold_is_the_empty_intent(tmp_path):
    classifier, *_ = create(tmp_path, multi_label=True, empty_intent="no_label", label_threshold=0.99)
    data = [message(f"{i} {n}", noisy(c, 0.5), intent=i) for i, c in CENTRES.items() for n in range(5)]
    classifier.train(TrainingData(data))
    [probe] = classifier.process([message("x", [0.3, 0.3, 0.3])])
    assert probe.get(INTENT)["name"] == "no_label"


def test_messages_without_text_get_no_intent(tmp_path):
    classifier, *_ = create(tmp_path)
    classifier.train(training_data())
    [empty] = classifier.process([Message(data={TEXT: ""})])
    assert empty.get(INTENT) == {"name": None, "confidence": 0.0}
    assert empty.get(INTENT_RANKING_KEY) == []


def test_untrained_classifier_predicts_nothing(tmp_path):
    classifier, config, storage, context = create(tmp_path)
    loaded = LinearIntentClassifier.load(config, storage, Resource("never-trained"), context)
    [probe] = loaded.process([message("where is my order", [1, 0, 0])])
    assert probe.get(INTENT) == {"name": None, "confidence": 0.0}


def test_no_sentence_features_is_a_clear_error(tmp_path):
    classifier, *_ = create(tmp_path, featurizers=["missing"])
    with pytest.raises(InvalidConfigException, match="no sentence features.*missing"):
        classifier.train(training_data())


@pytest.mark.parametrize("bad", [{"C": 0}, {"C": "ten"}, {"label_threshold": 1.0}, {"ranking_length": 0},
                                 {"featurizers": "encoder"}, {"class_weight": "even"}])
def test_bad_settings_are_refused(tmp_path, bad):
    with pytest.raises(InvalidConfigException):
        create(tmp_path, **bad)


def test_prediction_scores_equal_the_training_matrix_times_the_weights(tmp_path):
    # Prediction scores each message from its blocks' entries, without the sparse matrix that
    # training builds: both must give the same numbers, also for a missing block, a block of the
    # wrong width, an all-zero block and a count matrix with a repeated entry.
    classifier, *_ = create(tmp_path, dense_weight=0.7)
    classifier.train(training_data())
    repeated = message("r", [0.2, 0.5, 0.1])
    repeated.add_features(Features(scipy.sparse.coo_matrix(([1.0, 2.0], ([0, 0], [3, 3])), shape=(1, 6)),
                                   FEATURE_TYPE_SENTENCE, TEXT, "words"))
    probes = [message("a", [0.9, 0.1, 0.0], [1, 0, 3, 0, 0, 0]), message("no counts", [0.0, 1.0, 0.2]),
              message("no vector", sparse=[0, 0, 0, 0, 2, 1]), message("zeros", [0.0, 0.0, 0.0], [0] * 6),
              message("too wide", [1.0, 0.0, 0.0, 0.0], [0, 1, 0, 0, 0, 0]), repeated]
    found = classifier._found(probes)
    expected = classifier._matrix(found) @ classifier._arrays["W"] + classifier._arrays["b"]
    np.testing.assert_allclose(classifier._scores(found), expected, rtol=1e-12, atol=1e-12)
    assert classifier._matrix(found)[5, 3 + 3] == pytest.approx(1.0)  # words follow the 3 encoder columns
    assert not np.allclose(expected[0], expected[1])
