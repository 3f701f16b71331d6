"""DIETEntityExtractor: trains only on data with entities, leaves entities alone untrained, and
predicts exactly as Rasa's DIET path does (supportbot/nlu/diet_predict.py)."""
from __future__ import annotations

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.nlu.featurizers.sparse_featurizer.lexical_syntactic_featurizer import LexicalSyntacticFeaturizer
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.diet_predict import FAST_PREDICTION, _FlatCall
from supportbot.nlu.entity_diet import DIETEntityExtractor

PLAN_TEXTS = ["switch me to premium", "switch me to basic", "I want the plus plan", "move to premium now",
              "basic is enough", "upgrade to plus"]


class Pipeline:
    """Whitespace tokens, word counts (and, with `rich`, character n-grams and word shapes), then
    the extractor: the product's kinds of features, at the size of a unit test."""

    def __init__(self, tmp_path, epochs=20, rich=False):
        storage = LocalModelStorage(tmp_path)
        context = ExecutionContext(GraphSchema({}), node_name="x")
        self.tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
        configs = [("words", CountVectorsFeaturizer, {})]
        if rich:
            configs += [("chars", CountVectorsFeaturizer, {"analyzer": "char_wb", "min_ngram": 2, "max_ngram": 3}),
                        ("lexical", LexicalSyntacticFeaturizer, {})]
        self.featurizers = [cls.create({**cls.get_default_config(), **config}, storage, Resource(name), context)
                            for name, cls, config in configs]
        self.diet = DIETEntityExtractor.create({**DIETEntityExtractor.get_default_config(), "epochs": epochs,
                                                "random_seed": 1}, storage, Resource("diet"), context)

    def train(self, messages):
        data = TrainingData(messages)
        self.tokenizer.process_training_data(data)
        for featurizer in self.featurizers:
            featurizer.train(data)
            featurizer.process_training_data(data)
        self.diet.train(data)

    def featurized(self, text, entities=None) -> Message:
        data = {TEXT: text, **({ENTITIES: entities} if entities else {})}
        messages = self.tokenizer.process([Message(data=data)])
        for featurizer in self.featurizers:
            messages = featurizer.process(messages)
        return messages[0]

    def parse(self, text, entities=None) -> Message:
        return self.diet.process([self.featurized(text, entities)])[0]


def plan_examples():
    messages = []
    for text in PLAN_TEXTS:
        plan = next(p for p in ("premium", "basic", "plus") if p in text)
        start = text.index(plan)
        messages.append(Message(data={TEXT: text, INTENT: "change_plan", ENTITIES: [
            {"entity": "plan", "start": start, "end": start + len(plan), "value": plan}]}))
    return messages


def test_no_entity_annotations_trains_nothing_and_keeps_entities(tmp_path):
    pipeline = Pipeline(tmp_path)
    pipeline.train([Message(data={TEXT: t, INTENT: i}) for t, i in [("hello there", "greet"), ("bye now", "bye")]])
    assert pipeline.diet.model is None
    earlier = [{"entity": "order_id", "start": 0, "end": 7, "value": "4817263"}]
    assert pipeline.parse("4817263 please", earlier).get(ENTITIES) == earlier


def test_with_annotations_it_learns_entities_and_no_intent(tmp_path):
    pipeline = Pipeline(tmp_path)
    pipeline.train(plan_examples())
    assert pipeline.diet.model is not None
    parsed = pipeline.parse("switch me to plus")
    assert [(e["entity"], e["value"]) for e in parsed.get(ENTITIES)] == [("plan", "plus")]
    assert parsed.get(INTENT) is None


def test_predictions_are_rasas_to_the_last_bit(tmp_path):
    pipeline = Pipeline(tmp_path, epochs=10, rich=True)
    pipeline.train(plan_examples())
    diet = pipeline.diet
    texts = ["switch me to plus", "premium please", "Über 🎉 premium!", "x " * 60, "basic"]
    diet.component_config[FAST_PREDICTION] = False
    rasas = [diet._predict(pipeline.featurized(text)) for text in texts]
    rasa_call = diet.model._tf_predict_step
    assert not isinstance(rasa_call, _FlatCall)  # `fast_prediction: false` is Rasa's path
    diet.component_config[FAST_PREDICTION] = True
    ours = [diet._predict(pipeline.featurized(text)) for text in texts]
    # after its first prediction the extractor calls the graph Rasa traced, directly
    assert isinstance(diet.model._tf_predict_step, _FlatCall)
    assert diet.model._tf_predict_step.concrete is rasa_call.get_concrete_function()
    for rasa_out, our_out in zip(rasas, ours):
        assert set(rasa_out) == set(our_out) >= {"e_entity_ids", "e_entity_scores"}
        for key in ("e_entity_ids", "e_entity_scores"):
            np.testing.assert_array_equal(our_out[key], rasa_out[key])
        for key, value in rasa_out["diagnostic_data"].items():
            np.testing.assert_array_equal(our_out["diagnostic_data"][key], value)
    parsed = pipeline.parse("switch me to plus")
    assert [(e["entity"], e["value"]) for e in parsed.get(ENTITIES)] == [("plan", "plus")]


def test_the_sample_keeps_every_annotated_example_and_a_fixed_share_of_the_others():
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from supportbot.nlu.entity_diet import sampled

    annotated = [Message(data={TEXT: f"order {i}", INTENT: "order_status",
                               ENTITIES: [{"start": 6, "end": 7, "entity": "order_id", "value": str(i)}]})
                 for i in range(5)]
    others = [Message(data={TEXT: f"hello {i}", INTENT: "greet"}) for i in range(50)]
    data = TrainingData(annotated + others)
    first, again, other_seed = sampled(data, 10, 42), sampled(data, 10, 42), sampled(data, 10, 7)
    assert len(first.training_examples) == 15
    assert all(m in first.training_examples for m in annotated)
    texts = lambda d: [m.get(TEXT) for m in d.training_examples]  # noqa: E731
    assert texts(first) == texts(again) and texts(first) != texts(other_seed)
    assert len(sampled(data, 100, 42).training_examples) == 55
