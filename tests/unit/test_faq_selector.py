"""FAQResponseSelector answers messages classified as its retrieval intent, and only those."""
from __future__ import annotations

from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import INTENT, INTENT_RESPONSE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.diet_predict import FAST_PREDICTION, _FlatCall
from supportbot.nlu.faq_selector import FAQResponseSelector

FAQ = {"faq/opening_hours": ["when are you open", "what are your opening hours", "are you open on sunday"],
       "faq/shipping_cost": ["how much is shipping", "what does delivery cost", "is shipping free"]}


def trained_selector(tmp_path, retrieval_intent):
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), node_name="x")
    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    featurizer = CountVectorsFeaturizer.create(CountVectorsFeaturizer.get_default_config(), storage,
                                               Resource("cv"), context)
    selector = FAQResponseSelector.create(
        {**FAQResponseSelector.get_default_config(), "epochs": 30, "random_seed": 1,
         "retrieval_intent": retrieval_intent}, storage, Resource("rs"), context)
    messages = [Message(data={TEXT: text, INTENT: "faq", INTENT_RESPONSE_KEY: key})
                for key, texts in FAQ.items() for text in texts]
    messages += [Message(data={TEXT: text, INTENT: "greet"}) for text in ("hello", "hi there")]
    responses = {f"utter_{key}": [{"text": key}] for key in FAQ}
    data = TrainingData(messages, responses=responses)
    tokenizer.process_training_data(data)
    featurizer.train(data)
    featurizer.process_training_data(data)
    selector.train(data)

    def parse(text, intent):
        message = Message(data={TEXT: text, INTENT: {"name": intent, "confidence": 0.9}})
        return selector.process(featurizer.process(tokenizer.process([message])))[0]

    parse.selector = selector
    return parse


def test_only_the_retrieval_intent_gets_an_answer(tmp_path):
    parse = trained_selector(tmp_path, "faq")
    answered = parse("are you open on sunday", "faq").get("response_selector")
    assert answered["faq"]["response"]["intent_response_key"] == "faq/opening_hours"
    assert answered["faq"]["response"]["utter_action"] == "utter_faq/opening_hours"
    assert parse("is shipping free", "faq").get("response_selector")["faq"]["response"][
        "intent_response_key"] == "faq/shipping_cost"
    # Classified as something else (or not at all): the dialogue never reads an answer, none is computed.
    assert parse("are you open on sunday", "greet").get("response_selector") is None
    assert parse("", None).get("response_selector") is None


def test_without_a_retrieval_intent_every_message_is_answered(tmp_path):
    parse = trained_selector(tmp_path, None)
    assert parse("what does delivery cost", "greet").get("response_selector")["default"]["response"][
        "intent_response_key"] == "faq/shipping_cost"


def test_answers_are_rasas_with_the_faster_prediction(tmp_path):
    parse = trained_selector(tmp_path, "faq")
    texts = ["are you open on sunday", "is shipping free", "shipping on sunday?", "Öffnungszeiten ⏰"]
    parse.selector.component_config[FAST_PREDICTION] = False
    rasas = [parse(text, "faq").get("response_selector") for text in texts]
    parse.selector.component_config[FAST_PREDICTION] = True
    ours = [parse(text, "faq").get("response_selector") for text in texts]
    assert isinstance(parse.selector.model._tf_predict_step, _FlatCall)
    assert ours == rasas
    assert rasas[0]["faq"]["response"]["intent_response_key"] == "faq/opening_hours"
