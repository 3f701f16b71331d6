"""PerIntentFallbackClassifier: each intent's own threshold, Rasa's fallback semantics otherwise."""
from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY
from rasa.shared.nlu.training_data.message import Message

from supportbot.nlu.thresholds import PerIntentFallbackClassifier


def classifier(**config) -> PerIntentFallbackClassifier:
    full = {**PerIntentFallbackClassifier.get_default_config(), **config}
    return PerIntentFallbackClassifier.create(full, None, Resource("fallback"), ExecutionContext(GraphSchema({})))


def message(*ranking) -> Message:
    intents = [{"name": name, "confidence": confidence} for name, confidence in ranking]
    return Message(data={"text": "hi", INTENT: dict(intents[0]), INTENT_RANKING_KEY: intents})


def test_each_intent_falls_back_below_its_own_threshold():
    component = classifier(threshold=0.4, ambiguity_threshold=0.0, intent_thresholds={"complaint": 0.7})
    strict, default = message(("complaint", 0.6), ("faq", 0.1)), message(("greet", 0.6), ("faq", 0.1))
    component.process([strict, default])
    assert strict.get(INTENT) == {"name": "nlu_fallback", "confidence": 0.7}
    assert strict.get(INTENT_RANKING_KEY)[0]["name"] == "nlu_fallback"
    assert strict.get(INTENT_RANKING_KEY)[1] == {"name": "complaint", "confidence": 0.6}  # kept for suggestions
    assert default.get(INTENT)["name"] == "greet"  # 0.6 clears the global 0.4


def test_a_low_threshold_lets_an_intent_through_and_ambiguity_still_applies():
    component = classifier(threshold=0.4, ambiguity_threshold=0.1, intent_thresholds={"get_invoice": 0.2})
    confident_enough, ambiguous = message(("get_invoice", 0.3), ("faq", 0.05)), message(("get_invoice", 0.5),
                                                                                         ("faq", 0.45))
    component.process([confident_enough, ambiguous])
    assert confident_enough.get(INTENT)["name"] == "get_invoice"
    assert ambiguous.get(INTENT)["name"] == "nlu_fallback"


def test_messages_without_an_intent_are_left_alone():
    empty = Message(data={"text": ""})
    classifier().process([empty])
    assert empty.get(INTENT) is None


@pytest.mark.parametrize("config", [{"intent_thresholds": {"greet": 1.5}}, {"intent_thresholds": ["greet"]},
                                    {"threshold": "high"}, {"intent_thresholds": {"greet": None}}])
def test_bad_thresholds_are_rejected_with_a_clear_error(config):
    with pytest.raises(InvalidConfigException, match="PerIntentFallbackClassifier"):
        classifier(**config)


@pytest.mark.parametrize("config", [{"wrong_costs": {"delete_account": 1}}, {"wrong_costs": ["delete_account"]},
                                    {"clarification_cost": 0}, {"wrong_costs": {"legal_request": "high"}}])
def test_costs_that_cannot_calibrate_a_threshold_are_rejected(config):
    # A wrong costly intent must cost more than the clarification that avoids it.
    with pytest.raises(InvalidConfigException, match="cost"):
        classifier(**config)


def test_written_costs_are_accepted():
    component = classifier(threshold=0.4, clarification_cost=1, wrong_costs={"delete_account": 10})
    assert component.threshold_for("delete_account") == 0.4
