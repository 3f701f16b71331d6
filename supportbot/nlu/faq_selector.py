"""FAQResponseSelector: Rasa's ResponseSelector, run only where its answer can be used.

A retrieval intent's answer (`faq/<key>`) is only read by the dialogue when the message's intent
is that retrieval intent (`faq`): the `utter_faq` rule. Rasa's selector still runs its model on
every message, a few milliseconds per parse spent on answers nobody reads. This one runs it only
on messages whose intent, as the intent classifier left it, is its `retrieval_intent`; the
others get no `response_selector` entry for it. Training, settings and output are Rasa's.
Without a `retrieval_intent` it behaves exactly like Rasa's (it then serves every intent).
A prediction skips two of Rasa's Python overheads (supportbot/nlu/diet_predict.py).

config.yml now picks FAQ topics with supportbot.nlu.faq_encoder.EncoderFAQSelector; this class
stays so that models trained before that change still load (`supportbot learn rollback`).
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY
from rasa.shared.nlu.training_data.message import Message

from supportbot.nlu.diet_predict import FAST_PREDICTION, FastDIETPrediction

# A false alarm at `rasa train`: Rasa's recipe validator looks for ResponseSelector itself in the
# pipeline (`ResponseSelector not in component_types`, rasa/graph_components/validators/
# default_recipe_validator.py), never a subclass, so it says the faq/<key> examples train nothing,
# while this selector trains on them. Rasa imports this module only for a pipeline that names it.
warnings.filterwarnings(
    "ignore", category=UserWarning,
    message="You have defined training data with examples for training a response selector, but your NLU "
            "configuration does not include a response selector component",
)


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True
)
class FAQResponseSelector(FastDIETPrediction, ResponseSelector):
    """ResponseSelector that answers only messages classified as its retrieval intent."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {**ResponseSelector.get_default_config(), FAST_PREDICTION: True}

    def process(self, messages: List[Message]) -> List[Message]:
        if not self.retrieval_intent:
            return super().process(messages)
        wanted = [m for m in messages if (m.get(INTENT) or {}).get(INTENT_NAME_KEY) == self.retrieval_intent]
        super().process(wanted)
        return messages
