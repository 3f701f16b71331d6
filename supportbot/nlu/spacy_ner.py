"""spaCy's NER run once per message, on the text as typed.

Rasa's SpacyNLP builds one doc per message from the lower-cased text, running every pipe of the
spaCy model but the parser, NER included. Rasa's SpacyEntityExtractor cannot use that doc's
entities (lower case spoils NER), so it runs the whole pipeline a second time on the original
text. NER thus runs twice per message, once for nothing, and tagger and lemmatizer run twice.

- `SpacyNLPWithoutNER`: Rasa's SpacyNLP with the model's `ner` pipe disabled, so its docs get
  tokens, lemmas, part-of-speech tags and tensors exactly as SpacyNLP's (NER sets none of them)
  without the NER pass; or, with its `analysis` option, only tokens and looked-up lemmas.
- `SpacyNEREntityExtractor`: Rasa's SpacyEntityExtractor running only `ner` (and a tok2vec it
  listens to, if any: en_core_web_sm's NER has its own) on the original text. Same entities, same
  `dimensions` option. It takes its model from `SpacyNLPWithoutNER`.

This saves a NER pass in SpacyNLP and the second tagger and lemmatizer pass in the extractor
(docs/nlu-pipeline.md, "Parse latency").
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple, Type

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.extractors.spacy_entity_extractor import SpacyEntityExtractor
from rasa.nlu.utils.spacy_utils import SpacyModel, SpacyNLP
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

NER = "ner"
ANALYSIS = "analysis"
ANALYSES = ("model", "lookup_lemmas", "tokens")
LOOKUP_LEMMATIZER = "lookup_lemmatizer"


def ner_pipes(nlp) -> List[Tuple[str, Any]]:
    """`ner` and the shared tok2vec/transformer pipes it listens to, in pipeline order, disabled
    pipes included."""
    if NER not in nlp.component_names:
        raise ValueError(f"The spaCy model {nlp.meta.get('name')!r} has no 'ner' pipe.")
    return [
        (name, pipe)
        for name, pipe in nlp.components
        if name == NER or NER in getattr(pipe, "listening_components", [])
    ]


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MODEL_LOADER, DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER],
    is_trainable=False,
    model_from="SpacyNLPWithoutNER",  # as SpacyNLP: its own `process` takes the model it loaded
)
class SpacyNLPWithoutNER(SpacyNLP):
    """Rasa's SpacyNLP whose docs skip NER, for a pipeline whose NER runs in SpacyNEREntityExtractor.

    `analysis` says what else its docs get:
    - `model` (default): every other pipe of the spaCy model but the parser, as Rasa's SpacyNLP
      runs them (en_core_web_sm: tok2vec, tagger, attribute ruler, rule lemmatizer);
    - `lookup_lemmas`: the tokens, and lemmas from spaCy's English lookup table (the PyPI package
      `spacy-lookups-data`), one dictionary look-up per token instead of a neural tagger: no
      part-of-speech tags, no tensors;
    - `tokens`: the tokens alone.
    Tokens are the same in all three; a pipeline chooses by what its tokenizer and featurizers
    read (docs/nlu-pipeline.md, "spaCy: one pass for tokens and lemmas")."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {**SpacyNLP.get_default_config(), ANALYSIS: "model"}

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage, resource, execution_context) -> SpacyNLP:
        analysis = {**cls.get_default_config(), **config}[ANALYSIS]
        if analysis not in ANALYSES:
            raise InvalidConfigException(f"{cls.__name__}: '{ANALYSIS}' must be one of {', '.join(ANALYSES)}, "
                                         f"not {analysis!r}.")
        component = super().create(config, model_storage, resource, execution_context)
        if analysis != "model":
            nlp = component.provide().model
            for name in nlp.pipe_names:
                nlp.disable_pipe(name)
            if analysis == "lookup_lemmas":
                lemmatizer = nlp.add_pipe("lemmatizer", name=LOOKUP_LEMMATIZER, config={"mode": "lookup"})
                try:
                    lemmatizer.initialize()
                except ValueError as error:  # spaCy's "tables missing" error
                    raise InvalidConfigException(
                        f"{cls.__name__}: 'analysis: lookup_lemmas' needs spaCy's lookup tables, from the "
                        f"PyPI package spacy-lookups-data (installed by `make install`): {error}") from error
        return component

    @staticmethod
    def load_model(spacy_model_name: str) -> SpacyModel:
        """Rasa's loading (and its errors), then `ner` disabled: skipped by nlp(text) and
        nlp.pipe(texts), still loaded for the extractor. SpacyNLP.create calls this."""
        model = SpacyNLP.load_model(spacy_model_name)
        if NER in model.model.pipe_names:
            model.model.disable_pipe(NER)
        return model


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False, model_from="SpacyNLPWithoutNER"
)
class SpacyNEREntityExtractor(SpacyEntityExtractor):
    """spaCy's named entities (filtered by `dimensions`), from a NER-only pass over the text."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [SpacyNLPWithoutNER]

    def process(self, messages: List[Message], model: SpacyModel) -> List[Message]:
        nlp = model.model
        pipes = ner_pipes(nlp)
        for message in messages:
            if not message.get(TEXT):
                continue
            doc = nlp.make_doc(message.get(TEXT))
            for _, pipe in pipes:
                doc = pipe(doc)
            extracted = self.filter_irrelevant_entities(
                self.add_extractor_name(self._extract_entities(doc)), self._config["dimensions"]
            )
            message.set(ENTITIES, message.get(ENTITIES, []) + extracted, add_to_output=True)
        return messages
