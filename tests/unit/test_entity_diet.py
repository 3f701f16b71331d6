"""DIETEntityExtractor: trains only on data with entities, and leaves entities alone untrained."""
from __future__ import annotations

from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.entity_diet import DIETEntityExtractor


def pipeline(tmp_path):
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), node_name="x")
    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    featurizer = CountVectorsFeaturizer.create(CountVectorsFeaturizer.get_default_config(), storage,
                                               Resource("cv"), context)
    diet = DIETEntityExtractor.create({**DIETEntityExtractor.get_default_config(), "epochs": 20,
                                       "random_seed": 1}, storage, Resource("diet"), context)
    return tokenizer, featurizer, diet


def prepare(tokenizer, featurizer, data: TrainingData) -> TrainingData:
    tokenizer.process_training_data(data)
    featurizer.train(data)
    featurizer.process_training_data(data)
    return data


def parse(tokenizer, featurizer, diet, text, entities=None):
    message = Message(data={TEXT: text, **({ENTITIES: entities} if entities else {})})
    return diet.process(featurizer.process(tokenizer.process([message])))[0]


def test_no_entity_annotations_trains_nothing_and_keeps_entities(tmp_path):
    tokenizer, featurizer, diet = pipeline(tmp_path)
    data = prepare(tokenizer, featurizer, TrainingData([Message(data={TEXT: t, INTENT: i}) for t, i in
                                                        [("hello there", "greet"), ("bye now", "bye")]]))
    diet.train(data)
    assert diet.model is None
    earlier = [{"entity": "order_id", "start": 0, "end": 7, "value": "4817263"}]
    assert parse(tokenizer, featurizer, diet, "4817263 please", earlier).get(ENTITIES) == earlier


def test_with_annotations_it_learns_entities_and_no_intent(tmp_path):
    tokenizer, featurizer, diet = pipeline(tmp_path)
    texts = ["switch me to premium", "switch me to basic", "I want the plus plan", "move to premium now",
             "basic is enough", "upgrade to plus"]
    plans = ["premium", "basic", "plus"]
    messages = []
    for text in texts:
        plan = next(p for p in plans if p in text)
        start = text.index(plan)
        messages.append(Message(data={TEXT: text, INTENT: "change_plan", ENTITIES: [
            {"entity": "plan", "start": start, "end": start + len(plan), "value": plan}]}))
    diet.train(prepare(tokenizer, featurizer, TrainingData(messages)))
    assert diet.model is not None
    parsed = parse(tokenizer, featurizer, diet, "switch me to plus")
    assert [(e["entity"], e["value"]) for e in parsed.get(ENTITIES)] == [("plan", "plus")]
    assert parsed.get(INTENT) is None
