"""A BERT encoder (all-MiniLM-L6-v2 by default) run by ONNX Runtime instead of TensorFlow.

The graph is written here, in memory, from the same `config.json` and `model.safetensors` that
TensorFlow `transformers` loads: no converter, no file to cache or keep in step with the weights.
It uses ONNX Runtime's fused CPU kernels for BERT (`com.microsoft` Attention,
SkipLayerNormalization and BiasGelu), which compute what `TFBertModel` computes; the hidden states
agree with TensorFlow's to about 1e-5 (tests/unit/test_encoder.py checks it on every run). One
message at a time, as the server parses them, it takes a fraction of the traced TensorFlow
graph's time (docs/nlu-pipeline.md, "Parse latency").

Only BERT-architecture models with absolute positions and GELU qualify (`unsupported_reason`);
others, such as MPNet, stay on TensorFlow.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, List, Optional

import numpy as np

WEIGHTS = "model.safetensors"
FUSED = "com.microsoft"  # ONNX Runtime's contrib operators


def unsupported_reason(model_dir: Path) -> Optional[str]:
    """Why this folder's model cannot run here, or None when it can."""
    config_file = Path(model_dir) / "config.json"
    if not (Path(model_dir) / WEIGHTS).is_file():
        return f"{model_dir} has no {WEIGHTS}"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"cannot read {config_file}: {error}"
    expected = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, value in expected.items():
        if config.get(key, value) != value:
            return f"{config_file} has {key} {config.get(key)!r}, and only {value!r} is built here"
    return None


class _GraphBuilder:
    """Collects the nodes and weights of one ONNX graph, naming each output after its node."""

    def __init__(self) -> None:
        self.nodes: List[Any] = []
        self.weights: List[Any] = []

    def const(self, name: str, value: Any) -> str:
        from onnx import numpy_helper

        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: List[str], domain: str = "", **attributes: Any) -> str:
        from onnx import helper

        output = f"{op}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [output], domain=domain or None, **attributes))
        return output


def build_graph(model_dir: Path) -> Any:
    """The encoder's ONNX model: int32 input_ids and attention_mask [batch, pieces] ->
    float32 last_hidden_state [batch, pieces, hidden]. One segment (token type 0), as the
    featurizer encodes one sentence at a time."""
    from onnx import TensorProto, helper
    from safetensors.numpy import load_file

    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    heads, hidden = int(config["num_attention_heads"]), int(config["hidden_size"])
    epsilon = float(config.get("layer_norm_eps", 1e-12))
    # Weights saved from a BertFor... head model carry a "bert." prefix.
    weights = {key[5:] if key.startswith("bert.") else key: value
               for key, value in load_file(str(Path(model_dir) / WEIGHTS)).items()}

    def weight(name: str) -> np.ndarray:
        return weights[name + ".weight"]

    def bias(name: str) -> np.ndarray:
        return weights[name + ".bias"]

    g = _GraphBuilder()
    # Embeddings: word piece + position + token type 0, then LayerNorm.
    words = g.node("Gather", [g.const("word_embeddings", weight("embeddings.word_embeddings")), "input_ids"])
    length = g.node("Shape", ["input_ids"], start=1, end=2)  # [pieces], 1-D
    positions = g.node("Slice", [g.const("position_embeddings", weight("embeddings.position_embeddings")),
                                 g.const("zero", np.array([0], np.int64)), length,
                                 g.const("axis_0", np.array([0], np.int64))])
    x = g.node("Add", [g.node("Add", [words, positions]),
                       g.const("token_type_0", weight("embeddings.token_type_embeddings")[0])])
    x = g.node("LayerNormalization", [x, g.const("embeddings_ln_g", weight("embeddings.LayerNorm")),
                                      g.const("embeddings_ln_b", bias("embeddings.LayerNorm"))],
               axis=-1, epsilon=epsilon)

    def transposed(name: str) -> np.ndarray:  # PyTorch Linear stores [out, in]; MatMul wants [in, out]
        return weight(name).T

    def dense_add_norm(x_in: str, residual: str, dense: str, norm: str) -> str:
        projected = g.node("MatMul", [x_in, g.const(dense + ".wT", transposed(dense))])
        return g.node("SkipLayerNormalization", [
            projected, residual, g.const(norm + ".g", weight(norm)), g.const(norm + ".b", bias(norm)),
            g.const(dense + ".b", bias(dense))], domain=FUSED, epsilon=epsilon)

    for layer in range(int(config["num_hidden_layers"])):
        prefix = f"encoder.layer.{layer}."
        qkv = [prefix + "attention.self." + part for part in ("query", "key", "value")]
        context = g.node("Attention", [
            x,
            g.const(prefix + "qkv.w", np.concatenate([transposed(name) for name in qkv], axis=1)),
            g.const(prefix + "qkv.b", np.concatenate([bias(name) for name in qkv])),
            "attention_mask",  # [batch, pieces], 1 = attend: padding gets no attention, as in BERT
        ], domain=FUSED, num_heads=heads)
        x = dense_add_norm(context, x, prefix + "attention.output.dense", prefix + "attention.output.LayerNorm")
        intermediate = g.node("BiasGelu", [
            g.node("MatMul", [x, g.const(prefix + "intermediate.wT", transposed(prefix + "intermediate.dense"))]),
            g.const(prefix + "intermediate.b", bias(prefix + "intermediate.dense"))], domain=FUSED)
        x = dense_add_norm(intermediate, x, prefix + "output.dense", prefix + "output.LayerNorm")
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))

    graph = helper.make_graph(
        g.nodes, "sentence_encoder",
        [helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", "pieces"])
         for name in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "pieces", hidden])],
        g.weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(FUSED, 1)])
    model.ir_version = 8  # what ONNX Runtime 1.16 reads
    return model


def onnx_hidden_states(model_dir: Path) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A function (input_ids, attention_mask) -> last hidden state, run by ONNX Runtime."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    # No busy-waiting between parses: spinning threads would compete with spaCy and DIET for the
    # cores, and letting them spin measured no faster.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(
        build_graph(model_dir).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    def hidden_states(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        # int32, as _Encoder.encode passes them to either runtime.
        return session.run(["last_hidden_state"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]

    return hidden_states
