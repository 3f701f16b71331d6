"""DIETEntityExtractor: Rasa's DIETClassifier used for entities only, trained only when there are any.

With LinearIntentClassifier choosing intents, DIET's job in the product is the entities a regex
or spaCy can't find from their shape alone (plan names in context, amounts and dates in words).
Two things differ from a DIETClassifier with `intent_classification: false`:
- training data without a single entity annotation (BANKING77, say) trains nothing, instead of
  running every epoch to learn that every token is "no entity";
- untrained, it leaves a message's entities as they are instead of setting them to [];
- a prediction skips two of Rasa's Python overheads (supportbot/nlu/diet_predict.py);
- with `max_unannotated: N` it trains on every example with an entity annotation plus at most N
  of the others, drawn with `random_seed`: epochs cost time per example, and the unannotated ones
  only teach "no entity here", which a sample teaches as well (docs/nlu-pipeline.md).
"""
from __future__ import annotations

import logging
import random
import warnings
from typing import Any, Dict, List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.diet_classifier import DIETClassifier
from rasa.shared.nlu.constants import ENTITIES
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.utils.tensorflow.constants import ENTITY_RECOGNITION, INTENT_CLASSIFICATION, RANDOM_SEED

from supportbot.nlu.diet_predict import FAST_PREDICTION, FastDIETPrediction

logger = logging.getLogger(__name__)

# Two false alarms at `rasa train`: Rasa's recipe validator looks for DIETClassifier itself in the
# pipeline (rasa/graph_components/validators/default_recipe_validator.py, exact classes, never a
# subclass), so it says that the entity examples train no extractor and that nothing uses the
# lookup-table features, while this DIETClassifier trains on the examples and, like DIET, reads
# every featurizer's features, RegexFeaturizer's lookup-table ones included. Rasa imports this
# module only for a pipeline that names it.
for _false_alarm in (
    "You have defined training data consisting of entity examples, but your NLU configuration does not "
    "include an entity extractor trained on your training data",
    "You have defined training data consisting of lookup tables, but your NLU configuration does not "
    "include any components that uses the features created from the lookup table",
):
    warnings.filterwarnings("ignore", message=_false_alarm, category=UserWarning)


MAX_UNANNOTATED = "max_unannotated"


def sampled(training_data: TrainingData, limit: int, seed: int) -> TrainingData:
    """Every example with an entity annotation, and at most `limit` of the others drawn with `seed`
    (in the data's order, so the same data and seed give the same sample)."""
    annotated = [m for m in training_data.training_examples if m.get(ENTITIES)]
    others = [m for m in training_data.training_examples if not m.get(ENTITIES)]
    if len(others) > limit:
        keep = set(random.Random(seed).sample(range(len(others)), limit))
        others = [m for i, m in enumerate(others) if i in keep]
    logger.info("DIETEntityExtractor: training on %d annotated and %d other examples.",
                len(annotated), len(others))
    return TrainingData(training_examples=annotated + others, entity_synonyms=training_data.entity_synonyms,
                        regex_features=training_data.regex_features, lookup_tables=training_data.lookup_tables,
                        responses=training_data.responses)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class DIETEntityExtractor(FastDIETPrediction, DIETClassifier):
    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {**DIETClassifier.get_default_config(), INTENT_CLASSIFICATION: False, ENTITY_RECOGNITION: True,
                FAST_PREDICTION: True, MAX_UNANNOTATED: None}

    def train(self, training_data: TrainingData) -> Resource:
        if not training_data.entity_examples:
            logger.info("DIETEntityExtractor: the training data annotates no entity; nothing to train.")
            return self._resource
        limit = self.component_config.get(MAX_UNANNOTATED)
        if limit is not None:
            training_data = sampled(training_data, int(limit), self.component_config.get(RANDOM_SEED) or 0)
        return super().train(training_data)

    def process(self, messages: List[Message]) -> List[Message]:
        if self.model is None:
            return messages
        return super().process(messages)
