"""One benchmark worker: train a config with Rasa's own training code, then parse a test set.

Runs as its own process (`python -m supportbot.benchmark.worker REQUEST.json`), so its peak
memory and wall times belong to one model only. Writes RESULT.json next to the request:
training wall and CPU time, peak resident memory after training (VmHWM of this process: Rasa trains
in-process, without child processes), and, from a second, fresh process that loads the trained
model as a server would (`--parse`), for every test text the parse result and the time
`Agent.parse_message` took (after three warm-up parses), what each graph component took of it,
and that process's peak memory.
"""
from __future__ import annotations

import asyncio
import json
import logging
import resource
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List

WARMUP_PARSES = 3


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This program's peak resident memory. Linux's ru_maxrss survives fork + exec, so a process
    started by a 3 GB parent reports 3 GB however little it uses; VmHWM belongs to the program."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def slim(parse: Dict) -> Dict:
    return {
        "intent": (parse.get("intent") or {}).get("name"),
        "confidence": (parse.get("intent") or {}).get("confidence"),
        "ranking": [[r["name"], r["confidence"]] for r in (parse.get("intent_ranking") or [])[:10]],
        "entities": [{k: e.get(k) for k in ("start", "end", "entity", "value")}
                     for e in parse.get("entities") or []],
    }


@contextmanager
def component_timer() -> Iterator[Dict[str, List[float]]]:
    """Milliseconds each graph node (component) takes per call, while the block runs.

    Wraps Rasa's `GraphNode.__call__`, through which the graph runner calls every component: two
    clock reads per node, a few microseconds per parse."""
    from rasa.engine.graph import GraphNode

    timings: Dict[str, List[float]] = defaultdict(list)
    original = GraphNode.__call__

    def timed(node: GraphNode, *inputs):
        started = time.perf_counter()
        try:
            return original(node, *inputs)
        finally:
            timings[getattr(node, "_node_name", "?")].append((time.perf_counter() - started) * 1000)

    GraphNode.__call__ = timed
    try:
        yield timings
    finally:
        GraphNode.__call__ = original


async def parse_all(model_path: str, texts: List[str]) -> Dict:
    from rasa.core.agent import Agent

    started = time.perf_counter()
    agent = Agent.load(model_path)
    load_seconds = time.perf_counter() - started
    for text in texts[:WARMUP_PARSES] or ["hello"]:
        await agent.parse_message(text)
    predictions, latencies = [], []
    with component_timer() as component_ms:
        for text in texts:
            started = time.perf_counter()
            parse = await agent.parse_message(text)
            latencies.append((time.perf_counter() - started) * 1000)
            predictions.append(slim(parse))
    return {"load_seconds": load_seconds, "predictions": predictions, "latency_ms": latencies,
            "component_ms": dict(component_ms)}


def configure_like_rasa_cli() -> None:
    """Logging and TensorFlow set up as `rasa train` / `rasa run` do at INFO level: unconfigured,
    structlog would print a debug line per parse and inflate the latency."""
    import rasa.utils.tensorflow.environment as tf_env
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.INFO, warn_only_once=True, filter_repeated_logs=True)
    tf_env.setup_tf_environment()
    configure_structlog(logging.INFO)


def parse_in_fresh_process(request_path: str, model: str) -> Dict:
    """Parse in a new process, as a server that loads the model would: the training process
    keeps gigabytes of training state and TensorFlow threads that slow its parses down."""
    parse_result = f"{request_path}.parse.json"
    subprocess.run([sys.executable, "-m", "supportbot.benchmark.worker", "--parse", request_path, model,
                    parse_result], check=True)
    return json.loads(Path(parse_result).read_text())


def parse_main(request_path: str, model: str, result_path: str) -> int:
    request = json.loads(Path(request_path).read_text())
    configure_like_rasa_cli()
    result = asyncio.run(parse_all(model, request["texts"]))
    result["peak_rss_parse_mb"] = peak_rss_mb()
    Path(result_path).write_text(json.dumps(result))
    return 0


def main(request_path: str) -> int:
    request = json.loads(Path(request_path).read_text())
    started = time.perf_counter()
    from rasa.model_training import train_nlu

    configure_like_rasa_cli()
    import_seconds = time.perf_counter() - started
    started, cpu_started = time.perf_counter(), cpu_seconds()
    model = train_nlu(config=request["config"], nlu_data=request["data"], output=request["model_dir"],
                      fixed_model_name="model", domain=request.get("domain"))
    train_seconds, train_cpu_seconds = time.perf_counter() - started, cpu_seconds() - cpu_started
    if not model:
        raise SystemExit("Rasa returned no model")
    result = {"model": model, "import_seconds": import_seconds, "train_seconds": train_seconds,
              "train_cpu_seconds": train_cpu_seconds,
              "peak_rss_after_train_mb": peak_rss_mb()}
    result.update(parse_in_fresh_process(request_path, model))
    Path(request["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--parse":
        sys.exit(parse_main(*sys.argv[2:5]))
    sys.exit(main(sys.argv[1]))
