"""SpacyNEREntityExtractor gives Rasa's SpacyEntityExtractor's entities from a NER-only pass."""
import pytest
from rasa.nlu.extractors.spacy_entity_extractor import SpacyEntityExtractor
from rasa.nlu.utils.spacy_utils import SpacyModel
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from supportbot.nlu.spacy_ner import SpacyNEREntityExtractor, pipes_to_skip

TEXTS = [
    "I paid 49.99 dollars on March 3 and want it back by next Friday",
    "Charge of $120 on 2026-11-02 for the Pro plan, Acme Corp in Berlin",
    "refund me 20 euros from last week please",
    "nothing to see here",
    "Ünïcode ✓ 5 € le 3 mars 🙂",
]


@pytest.fixture(scope="module")
def spacy_model() -> SpacyModel:
    import spacy

    return SpacyModel(model=spacy.load("en_core_web_sm", disable=["parser"]), model_name="en_core_web_sm")


def entities_of(extractor, spacy_model, text):
    message = Message(data={TEXT: text})
    extractor.process([message], spacy_model)
    return [(e["start"], e["end"], e["entity"], e["value"]) for e in message.get(ENTITIES, [])]


@pytest.mark.parametrize("dimensions", [None, ["MONEY", "DATE"]])
def test_same_entities_as_rasas_extractor(spacy_model, dimensions):
    ours = SpacyNEREntityExtractor({"dimensions": dimensions})
    rasas = SpacyEntityExtractor({"dimensions": dimensions})
    found = [entities_of(ours, spacy_model, text) for text in TEXTS]
    assert found == [entities_of(rasas, spacy_model, text) for text in TEXTS]
    assert (7, 20, "MONEY", "49.99 dollars") in found[0]
    assert any(label == "DATE" for _, _, label, _ in found[1])
    if dimensions:
        assert all(label in dimensions for entities in found for _, _, label, _ in entities)


def test_only_ner_runs_and_the_extractor_is_named(spacy_model):
    skipped = pipes_to_skip(spacy_model.model)
    assert "ner" not in skipped and {"tagger", "lemmatizer"} <= set(skipped)
    message = Message(data={TEXT: "I paid $5 today"})
    SpacyNEREntityExtractor({"dimensions": None}).process([message], spacy_model)
    assert {e["extractor"] for e in message.get(ENTITIES)} == {"SpacyNEREntityExtractor"}


def test_empty_message_gets_no_entities(spacy_model):
    message = Message(data={TEXT: ""})
    SpacyNEREntityExtractor({"dimensions": None}).process([message], spacy_model)
    assert not message.get(ENTITIES)


def test_a_model_without_ner_is_refused():
    import spacy

    with pytest.raises(ValueError, match="no 'ner' pipe"):
        pipes_to_skip(spacy.blank("en"))
