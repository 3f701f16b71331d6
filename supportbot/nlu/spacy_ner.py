"""SpacyNEREntityExtractor: Rasa's SpacyEntityExtractor, running only the parts NER needs.

Rasa's extractor cannot reuse SpacyNLP's doc (it is built from lower-cased text, which spoils
NER), so it runs the whole spaCy pipeline a second time on every message: tagger, attribute
ruler, lemmatizer and NER. Only NER (and the tok2vec it listens to, if it listens to one) is
needed for entities. Same entities, same `dimensions` option; with en_core_web_sm 3.6 in the
product's pipeline, 2.8 instead of 4.7 ms per message (docs/nlu-pipeline.md, "Parse latency").
"""
from __future__ import annotations

from typing import List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.extractors.spacy_entity_extractor import SpacyEntityExtractor
from rasa.nlu.utils.spacy_utils import SpacyModel
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message


def pipes_to_skip(nlp) -> List[str]:
    """Every pipe except `ner` and the shared tok2vec/transformer pipes `ner` listens to."""
    if "ner" not in nlp.pipe_names:
        raise ValueError(f"The spaCy model {nlp.meta.get('name')!r} has no 'ner' pipe.")
    needed = {"ner"}
    for name, pipe in nlp.pipeline:
        if "ner" in getattr(pipe, "listening_components", []):
            needed.add(name)
    return [name for name in nlp.pipe_names if name not in needed]


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False, model_from="SpacyNLP"
)
class SpacyNEREntityExtractor(SpacyEntityExtractor):
    """spaCy's named entities (filtered by `dimensions`), from a NER-only pass over the text."""

    def process(self, messages: List[Message], model: SpacyModel) -> List[Message]:
        nlp = model.model
        skip = pipes_to_skip(nlp)
        for message in messages:
            if not message.get(TEXT):
                continue
            doc = nlp(message.get(TEXT), disable=skip)
            extracted = self.filter_irrelevant_entities(
                self.add_extractor_name(self._extract_entities(doc)), self._config["dimensions"]
            )
            message.set(ENTITIES, message.get(ENTITIES, []) + extracted, add_to_output=True)
        return messages
