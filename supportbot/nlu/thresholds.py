"""PerIntentFallbackClassifier: Rasa's FallbackClassifier with one confidence threshold per intent.

A single threshold treats every intent alike, but the cost of answering wrongly and the model's
calibration differ between intents. This component falls back when the top intent's confidence is
below *that intent's* threshold (`intent_thresholds`), or below `threshold` for intents not listed,
or when the top two intents are closer than `ambiguity_threshold`. Everything downstream (rules on
`nlu_fallback`, the fallback action) works unchanged, since it is a FallbackClassifier.

The thresholds come from the costs written next to them: `clarification_cost` (asking "did you
mean...") and `wrong_costs` (acting on each costly intent when the customer meant something else).
`python -m supportbot.benchmark.calibration` picks, per costly intent, the threshold with the lowest
cost on cross-validated predictions and writes `intent_thresholds` (docs/nlu-pipeline.md,
"Per-intent thresholds"). The costs are checked here, so a typo fails `rasa train`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.fallback_classifier import THRESHOLD_KEY, FallbackClassifier
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY
from rasa.shared.nlu.training_data.message import Message

INTENT_THRESHOLDS_KEY = "intent_thresholds"
CLARIFICATION_COST_KEY = "clarification_cost"
WRONG_COSTS_KEY = "wrong_costs"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class PerIntentFallbackClassifier(FallbackClassifier):
    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {**FallbackClassifier.get_default_config(), INTENT_THRESHOLDS_KEY: {},
                CLARIFICATION_COST_KEY: 1.0, WRONG_COSTS_KEY: {}}

    @classmethod
    def validate_config(cls, config: Dict[str, Any]) -> None:
        thresholds = config.get(INTENT_THRESHOLDS_KEY) or {}
        if not isinstance(thresholds, dict):
            raise InvalidConfigException(f"PerIntentFallbackClassifier: {INTENT_THRESHOLDS_KEY} must map "
                                         "intent names to thresholds.")
        for name, value in {**thresholds, THRESHOLD_KEY: config.get(THRESHOLD_KEY)}.items():
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise InvalidConfigException(
                    f"PerIntentFallbackClassifier: the threshold for '{name}' must be a number from 0 to 1."
                )
        clarification, wrong = config.get(CLARIFICATION_COST_KEY, 1.0), config.get(WRONG_COSTS_KEY) or {}
        if not isinstance(clarification, (int, float)) or clarification <= 0 or not isinstance(wrong, dict):
            raise InvalidConfigException(f"PerIntentFallbackClassifier: {CLARIFICATION_COST_KEY} must be a number "
                                         f"above 0 and {WRONG_COSTS_KEY} a map of intent names to costs.")
        for name, value in wrong.items():
            # A wrong costly intent that cost no more than asking would never be worth asking about.
            if not isinstance(value, (int, float)) or value <= clarification:
                raise InvalidConfigException(f"PerIntentFallbackClassifier: the wrong cost of '{name}' must be "
                                             f"a number above {CLARIFICATION_COST_KEY} ({clarification}).")

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        cls.validate_config(config)
        return cls(config)

    def threshold_for(self, intent_name: str) -> float:
        thresholds = self.component_config.get(INTENT_THRESHOLDS_KEY) or {}
        return float(thresholds.get(intent_name, self.component_config[THRESHOLD_KEY]))

    def _nlu_confidence_below_threshold(self, message: Message) -> Tuple[bool, float]:
        intent = message.data.get(INTENT) or {}
        confidence = intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0
        return confidence < self.threshold_for(intent.get(INTENT_NAME_KEY)), confidence

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            if not message.data.get(INTENT) or not self._should_fallback(message):
                continue
            # As in Rasa's FallbackClassifier, the fallback's confidence is the threshold it fell under.
            fallback = {INTENT_NAME_KEY: DEFAULT_NLU_FALLBACK_INTENT_NAME,
                        PREDICTED_CONFIDENCE_KEY: self.threshold_for(message.data[INTENT].get(INTENT_NAME_KEY))}
            message.data[INTENT] = fallback
            message.data.setdefault(INTENT_RANKING_KEY, [])
            message.data[INTENT_RANKING_KEY].insert(0, dict(fallback))
        return messages
