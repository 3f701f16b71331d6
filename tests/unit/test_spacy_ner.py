"""spaCy's NER runs once: SpacyNLPWithoutNER's docs skip it, SpacyNEREntityExtractor runs only it,
and together they give what Rasa's SpacyNLP and SpacyEntityExtractor give."""
import pytest
from rasa.engine import validation
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.extractors.spacy_entity_extractor import SpacyEntityExtractor
from rasa.nlu.utils.spacy_utils import SpacyModel, SpacyNLP
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from supportbot.nlu.spacy_ner import SpacyNEREntityExtractor, SpacyNLPWithoutNER, ner_pipes

TEXTS = [
    "I paid 49.99 dollars on March 3 and want it back by next Friday",
    "Charge of $120 on 2026-11-02 for the Pro plan, Acme Corp in Berlin",
    "refund me 20 euros from last week please",
    "nothing to see here",
    "Ünïcode ✓ 5 € le 3 mars 🙂",
]
CONFIG = {"model": "en_core_web_sm"}


@pytest.fixture(scope="module")
def rasas_nlp() -> SpacyNLP:
    return SpacyNLP.create({**SpacyNLP.get_default_config(), **CONFIG}, None, None, None)


@pytest.fixture(scope="module")
def our_nlp() -> SpacyNLPWithoutNER:
    return SpacyNLPWithoutNER.create({**SpacyNLP.get_default_config(), **CONFIG}, None, None, None)


def entities_of(extractor, spacy_model: SpacyModel, text):
    message = Message(data={TEXT: text})
    extractor.process([message], spacy_model)
    return [(e["start"], e["end"], e["entity"], e["value"]) for e in message.get(ENTITIES, [])]


@pytest.mark.parametrize("dimensions", [None, ["MONEY", "DATE"]])
def test_same_entities_as_rasas_extractor(rasas_nlp, our_nlp, dimensions):
    ours = SpacyNEREntityExtractor({"dimensions": dimensions})
    rasas = SpacyEntityExtractor({"dimensions": dimensions})
    found = [entities_of(ours, our_nlp.provide(), text) for text in TEXTS]
    assert found == [entities_of(rasas, rasas_nlp.provide(), text) for text in TEXTS]
    assert (7, 20, "MONEY", "49.99 dollars") in found[0]
    assert any(label == "DATE" for _, _, label, _ in found[1])
    if dimensions:
        assert all(label in dimensions for entities in found for _, _, label, _ in entities)


def test_docs_are_rasas_without_the_entities(rasas_nlp, our_nlp):
    """Tokens, lemmas, tags and tensors (all that the tokenizer and featurizers can read) are
    unchanged; only NER's entities are gone."""
    messages = {nlp: [Message(data={TEXT: text}) for text in TEXTS] for nlp in (rasas_nlp, our_nlp)}
    for nlp, batch in messages.items():
        nlp.process(batch, nlp.provide())
    for theirs, ours in zip(messages[rasas_nlp], messages[our_nlp]):
        a, b = theirs.get("text_spacy_doc"), ours.get("text_spacy_doc")
        assert [(t.text, t.lemma_, t.pos_, t.tag_) for t in a] == [(t.text, t.lemma_, t.pos_, t.tag_) for t in b]
        assert (a.tensor == b.tensor).all() and (a.vector == b.vector).all()
        assert b.ents == ()
    assert any(m.get("text_spacy_doc").ents for m in messages[rasas_nlp])
    assert "ner" in rasas_nlp.provide().model.pipe_names
    assert "ner" not in our_nlp.provide().model.pipe_names


@pytest.mark.parametrize("analysis", ["tokens", "lookup_lemmas"])
def test_lighter_analyses_give_the_same_tokens_and_entities(our_nlp, analysis):
    light = SpacyNLPWithoutNER.create({**CONFIG, "analysis": analysis}, None, None, None)
    assert light.provide().model.pipe_names == ([] if analysis == "tokens" else ["lookup_lemmatizer"])
    lemmas = []
    for text in TEXTS + ["", "x " * 300, "I was charged twice for my orders"]:
        docs = []
        for nlp in (our_nlp, light):
            message = Message(data={TEXT: text})
            nlp.process([message], nlp.provide())
            docs.append(message.get("text_spacy_doc"))
        if not text:
            assert docs == [None, None]
            continue
        assert [(t.text, t.idx) for t in docs[0]] == [(t.text, t.idx) for t in docs[1]]
        assert all(t.tag_ == "" and t.pos_ == "" for t in docs[1])
        lemmas.append([t.lemma_ for t in docs[1]])
    if analysis == "tokens":
        assert all(lemma == "" for sentence in lemmas for lemma in sentence)
    else:  # looked up, lower-cased text: the model's lemmas for these words
        assert lemmas[-1] == ["i", "be", "charge", "twice", "for", "my", "order"]
    # the extractor still runs NER from the same (shared) model, with the same entities
    extractor = SpacyNEREntityExtractor({"dimensions": None})
    found = [entities_of(extractor, light.provide(), text) for text in TEXTS]
    assert found == [entities_of(extractor, our_nlp.provide(), text) for text in TEXTS]
    assert (7, 20, "MONEY", "49.99 dollars") in found[0]


def test_a_bad_analysis_is_refused():
    with pytest.raises(InvalidConfigException, match="'analysis' must be one of model, lookup_lemmas, tokens"):
        SpacyNLPWithoutNER.create({**CONFIG, "analysis": "all"}, None, None, None)


def test_only_ner_runs_and_the_extractor_is_named(our_nlp):
    assert [name for name, _ in ner_pipes(our_nlp.provide().model)] == ["ner"]
    message = Message(data={TEXT: "I paid $5 today"})
    SpacyNEREntityExtractor({"dimensions": None}).process([message], our_nlp.provide())
    assert {e["extractor"] for e in message.get(ENTITIES)} == {"SpacyNEREntityExtractor"}


def test_empty_message_gets_no_entities(our_nlp):
    message = Message(data={TEXT: ""})
    SpacyNEREntityExtractor({"dimensions": None}).process([message], our_nlp.provide())
    assert not message.get(ENTITIES)


def test_a_model_without_ner_is_refused():
    import spacy

    with pytest.raises(ValueError, match="no 'ner' pipe"):
        ner_pipes(spacy.blank("en"))


def graph_for(pipeline):
    return DefaultV1Recipe().graph_config_for_recipe(
        {"language": "en", "pipeline": pipeline, "policies": []}, {}
    )


def test_the_products_config_makes_a_valid_graph_with_docs_for_the_tokenizer():
    from rasa.shared.utils.io import read_config_file

    graph = graph_for(read_config_file("config.yml")["pipeline"])
    validation.validate(graph)
    nodes = graph.train_schema.nodes
    spacy_runs = [name for name, node in nodes.items()
                  if node.uses is SpacyNLPWithoutNER and "provide" not in name]
    tokenizer = next(name for name, node in nodes.items() if node.uses.__name__ == "SpacyTokenizer")
    assert spacy_runs and nodes[tokenizer].needs["training_data"] in spacy_runs


def test_the_extractor_with_rasas_spacy_nlp_is_a_config_error():
    """It takes its model from SpacyNLPWithoutNER; with plain SpacyNLP Rasa's graph validation
    refuses the config before training (no provider for its model), not at the first message."""
    pipeline = [{"name": "SpacyNLP", **CONFIG}, {"name": "SpacyTokenizer"},
                {"name": "supportbot.nlu.spacy_ner.SpacyNEREntityExtractor"}]
    graph = graph_for(pipeline)
    with pytest.raises(Exception, match="SpacyNEREntityExtractor.*needs the param 'model'"):
        validation.validate(graph)
