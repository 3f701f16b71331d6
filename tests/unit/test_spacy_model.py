"""The spaCy pipeline loads by name, as Rasa's SpacyNLP loads it, and finds money and dates."""
import spacy
from spacy.util import is_compatible_version


def test_en_core_web_sm_loads_by_name_and_is_compatible():
    nlp = spacy.load("en_core_web_sm", disable=["parser"])  # exactly Rasa's call
    assert "ner" in nlp.pipe_names
    info = spacy.info("en_core_web_sm")
    assert info["version"] == "3.6.0"
    assert is_compatible_version(spacy.about.__version__, info["spacy_version"])


def test_money_and_dates_are_found():
    nlp = spacy.load("en_core_web_sm")
    doc = nlp("I paid 49.99 dollars on March 3 and want it back by next Friday")
    labels = {(ent.text, ent.label_) for ent in doc.ents}
    assert ("49.99 dollars", "MONEY") in labels
    assert ("March 3", "DATE") in labels
