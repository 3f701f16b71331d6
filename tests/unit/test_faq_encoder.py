"""EncoderFAQSelector: the nearest topic by encoder similarity, out of scope below its floor."""
from __future__ import annotations

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, INTENT_RESPONSE_KEY, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.faq_encoder import EncoderFAQSelector

# Stand-ins for encoder vectors: topic A near axis 0, topic B near axis 1, out of scope near axis 2.
AXES = {"faq/opening_hours": 0, "faq/shipping_cost": 1, None: 2}


def vector(axis: int, spread: float = 0.0) -> np.ndarray:
    v = np.full(4, 0.05)
    v[axis] = 1.0
    v[3] = spread
    return v


def message(v: np.ndarray, **data) -> Message:
    m = Message(data={TEXT: "x", **data})
    m.add_features(Features(v.reshape(1, -1), "sentence", TEXT, "encoder"))
    return m


def trained(tmp_path, **config):
    storage, context = LocalModelStorage(tmp_path), ExecutionContext(GraphSchema({}), node_name="faq")
    selector = EncoderFAQSelector.create({**EncoderFAQSelector.get_default_config(), **config}, storage,
                                         Resource("faq"), context)
    examples = [message(vector(AXES[key], spread), **{INTENT: "faq", INTENT_RESPONSE_KEY: key})
                for key in ("faq/opening_hours", "faq/shipping_cost") for spread in (0.0, 0.1, 0.2)]
    examples += [message(vector(2, s), **{INTENT: "out_of_scope"}) for s in (0.0, 0.1)]
    examples += [message(vector(3), **{INTENT: "greet"})]
    responses = {"utter_faq/opening_hours": [{"text": "9 to 5"}], "utter_faq/shipping_cost": [{"text": "free"}]}
    selector.train(TrainingData(examples, responses=responses))
    return EncoderFAQSelector.load(selector._config, storage, Resource("faq"), context)


def parse(selector, v, intent="faq", confidence=0.9):
    ranking = [{"name": intent, "confidence": confidence}, {"name": "out_of_scope", "confidence": 0.05},
               {"name": "greet", "confidence": 0.05}]
    m = message(v, **{INTENT: {"name": intent, "confidence": confidence}, INTENT_RANKING_KEY: ranking})
    return selector.process([m])[0]


def test_a_faq_question_gets_its_nearest_topic_in_response_selector_shape(tmp_path):
    selector = trained(tmp_path)
    answer = parse(selector, vector(1, 0.05)).get("response_selector")["faq"]
    assert answer["response"]["intent_response_key"] == "faq/shipping_cost"
    assert answer["response"]["utter_action"] == "utter_faq/shipping_cost"
    assert answer["response"]["responses"] == [{"text": "free"}]
    assert [r["intent_response_key"] for r in answer["ranking"]] == ["faq/shipping_cost", "faq/opening_hours"]
    assert answer["response"]["confidence"] > answer["ranking"][1]["confidence"]


def test_below_the_floor_the_message_is_out_of_scope_and_gets_no_answer(tmp_path):
    selector = trained(tmp_path, floor=0.9)
    # Halfway between the two topics: each is only ~0.7 similar.
    parsed = parse(selector, vector(0) + vector(1), confidence=0.8)
    assert parsed.get("response_selector") is None
    assert parsed.get(INTENT) == {"name": "out_of_scope", "confidence": 0.8}
    names = [r["name"] for r in parsed.get(INTENT_RANKING_KEY)]
    assert names == ["out_of_scope", "greet"]  # faq is gone: no tie for the fallback's ambiguity check


def test_nearer_the_out_of_scope_examples_than_any_topic_is_out_of_scope(tmp_path):
    selector = trained(tmp_path, floor=0.0)
    parsed = parse(selector, vector(2, 0.05))
    assert parsed.get("response_selector") is None
    assert parsed.get(INTENT)["name"] == "out_of_scope"


def test_only_messages_classified_as_the_retrieval_intent_are_looked_at(tmp_path):
    selector = trained(tmp_path)
    parsed = parse(selector, vector(0), intent="greet")
    assert parsed.get("response_selector") is None
    assert parsed.get(INTENT)["name"] == "greet"


def test_untrained_it_answers_nothing(tmp_path):
    storage, context = LocalModelStorage(tmp_path), ExecutionContext(GraphSchema({}), node_name="faq")
    selector = EncoderFAQSelector.load(EncoderFAQSelector.get_default_config(), storage, Resource("none"), context)
    assert parse(selector, vector(0)).get("response_selector") is None


def test_training_without_the_encoder_features_says_what_is_missing(tmp_path):
    storage, context = LocalModelStorage(tmp_path), ExecutionContext(GraphSchema({}), node_name="faq")
    selector = EncoderFAQSelector.create({**EncoderFAQSelector.get_default_config(), "featurizer": "other"},
                                         storage, Resource("faq"), context)
    data = TrainingData([message(vector(0), **{INTENT: "faq", INTENT_RESPONSE_KEY: "faq/opening_hours"})])
    with pytest.raises(InvalidConfigException, match="other"):
        selector.train(data)


@pytest.mark.parametrize("bad", [{"floor": 2}, {"neighbours": 0}, {"retrieval_intent": ""}])
def test_bad_config_is_rejected(bad):
    with pytest.raises(InvalidConfigException):
        EncoderFAQSelector.validate_config({**EncoderFAQSelector.get_default_config(), **bad})
