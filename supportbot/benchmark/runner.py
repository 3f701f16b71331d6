"""Run the benchmark: for every run of the data set, train and parse with the candidate config and
with the baseline (each in its own worker process), time /model/parse over HTTP on a `rasa run`
server, and score everything into one result dictionary.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import requests
import yaml

from supportbot import processes
from supportbot.benchmark import calibration, metrics
from supportbot.benchmark.datasets import Benchmark, Example, write_training_yaml

BASELINE_CONFIG = Path(__file__).with_name("baseline_config.yml")
ENTITY_DIET = "supportbot.nlu.entity_diet.DIETEntityExtractor"
EPOCH_COMPONENTS = {"DIETClassifier", "ResponseSelector", "supportbot.nlu.faq_selector.FAQResponseSelector",
                    ENTITY_DIET}
SEEDED_COMPONENTS = EPOCH_COMPONENTS | {"supportbot.nlu.classifier.LinearIntentClassifier"}
HTTP_WARMUP = 3
_STARTED = time.monotonic()


class BenchmarkError(RuntimeError):
    pass


def progress(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def prepare_config(source: Path, dest: Path, epochs: Optional[int], seed: int, multi_label: bool) -> Dict:
    """Copy a config with the benchmark's changes, and list every change made."""
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    changes = []
    for component in config.get("pipeline") or []:
        name = str(component.get("name", ""))
        if epochs is not None and name in EPOCH_COMPONENTS:
            changes.append(f"{name}: epochs {component.get('epochs', 'default')} -> {epochs}")
            component["epochs"] = epochs
        if name in SEEDED_COMPONENTS and "random_seed" not in component:
            changes.append(f"{name}: random_seed -> {seed}")
            component["random_seed"] = seed
        model_dir = component.get("model_dir")
        if isinstance(model_dir, str) and not Path(model_dir).is_absolute():
            # Workers run in their own directory: a relative folder means one under ours.
            component["model_dir"] = str(Path(model_dir).resolve())
            changes.append(f"{name}: model_dir {model_dir} -> {component['model_dir']}")
        if multi_label and name.endswith("Tokenizer") and not component.get("intent_tokenization_flag"):
            changes.append(f"{name}: intent_tokenization_flag -> true, intent_split_symbol '+'")
            component.update(intent_tokenization_flag=True, intent_split_symbol="+")
    dest.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    pipeline = config.get("pipeline") or []
    return {"path": str(source), "epochs_override": epochs, "changes": changes, "effective_pipeline": pipeline,
            "pipeline": [str(c.get("name")) + (f" ({c['epochs']} epochs)" if "epochs" in c else "")
                         for c in pipeline]}


def worker_env(workdir: Path) -> Dict[str, str]:
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "PYTHONHASHSEED": "0",
            # No training cache: every run trains every component, so times are comparable.
            "RASA_MAX_CACHE_SIZE": "0", "RASA_CACHE_DIRECTORY": str(workdir / "cache"),
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_worker(config: Path, data: Path, domain: Optional[Path], texts: List[str], workdir: Path) -> Dict:
    """Train (then parse, in a fresh grandchild) in a child process; its rusage gives the CPU time."""
    workdir.mkdir(parents=True, exist_ok=True)
    request = {"config": str(config), "data": str(data), "domain": str(domain) if domain else None,
               "model_dir": str(workdir / "models"), "texts": texts, "result": str(workdir / "result.json")}
    (workdir / "request.json").write_text(json.dumps(request))
    log = workdir / "worker.log"
    started = time.perf_counter()
    with open(log, "wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "supportbot.benchmark.worker",
                                    str(workdir / "request.json")],
                                   stdout=handle, stderr=subprocess.STDOUT, env=worker_env(workdir), cwd=workdir)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BenchmarkError(f"worker failed (exit {process.returncode}), log {log}:\n{tail}")
    result = json.loads((workdir / "result.json").read_text())
    result["worker_seconds"] = time.perf_counter() - started
    result["worker_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["model_size_bytes"] = os.path.getsize(result["model"])
    return result


def rasa_server(model: str, workdir: Path) -> Tuple[processes.ServerProcess, str]:
    """`rasa run --enable-api` for one model on a free port, with an in-memory tracker store."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "endpoints.yml").write_text("# nothing: in-memory tracker store, no action server\n")
    (workdir / "credentials.yml").write_text("rest:\n")
    port, token = processes.free_port(), secrets.token_urlsafe(16)
    server = processes.rasa_server(port, Path(model).resolve(), workdir / "endpoints.yml",
                                   workdir / "credentials.yml", workdir, token,
                                   {"RASA_TELEMETRY_ENABLED": "false"}, workdir)
    return server, f"http://127.0.0.1:{port}/model/parse?token={token}"


def time_requests(url: str, texts: List[str], n_requests: int) -> Dict:
    """Sequential POST /model/parse requests (after warm-up), each timed on the client."""
    latencies = []
    with requests.Session() as session:
        for text in texts[:HTTP_WARMUP]:
            session.post(url, json={"text": text}, timeout=60).raise_for_status()
        for index in range(n_requests):
            started = time.perf_counter()
            response = session.post(url, json={"text": texts[index % len(texts)]}, timeout=60)
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return {**metrics.latency_summary(latencies), "latency_ms": latencies}


def http_latencies(models: Dict[str, str], texts: List[str], n_requests: int, workdir: Path,
                   logs: Path) -> Dict[str, Dict]:
    """Start one server per model together (they load in parallel), then time them one at a time:
    a server waiting for requests uses no CPU, so each is measured alone."""
    servers = {tag: rasa_server(model, workdir / f"http-{tag}") for tag, model in models.items()}
    results = {}
    try:
        for server, _ in servers.values():
            server.start()
        for server, _ in servers.values():
            server.wait_healthy(300)
        for tag, (_, url) in servers.items():
            progress(f"{tag}: timing {n_requests} POST /model/parse requests")
            results[tag] = time_requests(url, texts, n_requests)
            progress(f"{tag}: HTTP p95 {results[tag]['p95_ms']:.1f} ms")
    finally:
        stoppers = [threading.Thread(target=server.stop) for server, _ in servers.values()]
        for thread in stoppers:  # each takes a few seconds to shut down gracefully
            thread.start()
        for thread in stoppers:
            thread.join()
        for tag, (server, _) in servers.items():
            if server.log_path.exists():
                shutil.copy(server.log_path, logs / f"{tag}-rasa-run.log")
    return results


def _spans(entities: List[Dict], types: set) -> set:
    return {(e["start"], e["end"], e["entity"]) for e in entities if e.get("entity") in types}


def score(tests: List[Example], predictions: List[Dict], multi_label: bool, entity_types: set) -> Dict:
    """Every quality figure for one list of test examples and their predictions."""
    gold = [e.intent for e in tests]
    final = [p.get("intent") or metrics.FALLBACK for p in predictions]
    top = [metrics.top_non_fallback(p) for p in predictions]
    top_labels = [name for name, _ in top]
    gold_sets = [metrics.split_labels(g) for g in gold]
    has_entities = bool(entity_types)
    summary = {
        "accuracy": metrics.accuracy(gold, final),
        "accuracy_without_fallback": metrics.accuracy(gold, top_labels),
        "fallback_rate": sum(label == metrics.FALLBACK for label in final) / len(final) if final else None,
        "macro_f1": metrics.macro_f1(gold, final),
        "macro_f1_without_fallback": metrics.macro_f1(gold, top_labels),
        "intent_micro_f1": metrics.set_micro_scores(gold_sets, [metrics.split_labels(p) for p in final])["f1"],
        "intent_micro_f1_without_fallback": metrics.set_micro_scores(
            gold_sets, [metrics.split_labels(p) for p in top_labels])["f1"],
        "entity_micro_f1": metrics.set_micro_scores(
            [_spans(e.entities, entity_types) for e in tests],
            [_spans(p.get("entities") or [], entity_types) for p in predictions])["f1"] if has_entities else None,
    }
    calibration = metrics.calibration([c for _, c in top], [t == g for t, g in zip(top_labels, gold)])
    summary["ece"] = calibration["ece"]
    if multi_label:
        per_intent = metrics.set_per_label_scores(gold_sets, [metrics.split_labels(p) for p in final])
    else:
        per_intent = metrics.per_label_scores(gold, final)
    return {"summary": summary, "per_intent": per_intent, "confused_pairs": metrics.confused_pairs(gold, final),
            "calibration": calibration,
            "threshold_curve": None if multi_label else metrics.threshold_curve(gold, top)}


def entity_types_of(benchmark: Benchmark) -> set:
    types = {e["entity"] for run in benchmark.runs for ex in run.test for e in ex.entities}
    for run in benchmark.runs:
        types |= {e["entity"] for ex in run.train_examples() or [] for e in ex.entities}
    return types


def evaluate_config(tag: str, config: Path, benchmark: Benchmark, workdir: Path, out: Path) -> Dict:
    """Train, parse and score one config on every run of the benchmark."""
    entity_types = entity_types_of(benchmark)
    runs, all_tests, all_predictions, workers = [], [], [], []
    for index, run in enumerate(benchmark.runs):
        rundir = workdir / f"{tag}-{index}"
        rundir.mkdir(parents=True, exist_ok=True)
        examples = run.train_examples()
        data = run.train if examples is None else write_training_yaml(run.train, rundir / "train.yml")
        n_train = f"the data in {run.train}" if examples is None else f"{len(examples)} examples"
        progress(f"{tag}: {run.name}: training on {n_train}, then parsing {len(run.test)} test examples")
        try:
            result = run_worker(config, data, benchmark.domain, [e.text for e in run.test], rundir)
        finally:
            if (rundir / "worker.log").exists():
                shutil.copy(rundir / "worker.log", out / "logs" / f"{tag}-{index}-worker.log")
        progress(f"{tag}: trained in {result['train_seconds']:.1f}s; in-process parse "
                 f"p95 {metrics.percentile(result['latency_ms'], 95) or 0:.1f} ms")
        scored = score(run.test, result["predictions"], benchmark.multi_label, entity_types)
        runs.append({"name": run.name, "n_test": len(run.test),
                     "n_train": None if examples is None else len(examples),
                     "train_seconds": result["train_seconds"], "train_cpu_seconds": result["train_cpu_seconds"],
                     **scored["summary"]})
        all_tests += run.test
        all_predictions += result["predictions"]
        workers.append(result)
        write_predictions(out / f"predictions-{tag}.jsonl", run.name, run.test, result["predictions"])
    pooled = score(all_tests, all_predictions, benchmark.multi_label, entity_types)
    if not benchmark.multi_label:
        top = [metrics.top_non_fallback(p) for p in all_predictions]
        pooled["calibrated_thresholds"] = calibration.calibrated_curve(
            [e.intent for e in all_tests], top, fallback_threshold(config))
    return {"runs": runs, "pooled": pooled, "workers": workers}


def fallback_threshold(config: Path) -> float:
    """The FallbackClassifier's threshold in a config (Rasa's default 0.3 when it sets none)."""
    for component in (yaml.safe_load(config.read_text()) or {}).get("pipeline") or []:
        if str(component.get("name", "")).endswith("FallbackClassifier"):
            return float(component.get("threshold", 0.3))
    return 0.3


def component_latencies(workers: List[Dict]) -> List[Dict]:
    """Per graph component, its time per in-process parse over all workers, slowest first."""
    pooled: Dict[str, List[float]] = {}
    for worker in workers:
        for node, milliseconds in (worker.get("component_ms") or {}).items():
            pooled.setdefault(node, []).extend(milliseconds)
    rows = [{"component": node[len("run_"):] if node.startswith("run_") else node,
             **metrics.latency_summary(milliseconds)} for node, milliseconds in pooled.items()]
    return sorted(rows, key=lambda row: -(row["p50_ms"] or 0))


def assemble(evaluated: Dict, http: Optional[Dict]) -> Dict:
    """Headline figures are means over runs (NLU++ protocol); tables and bins use pooled runs."""
    runs, pooled, workers = evaluated["runs"], evaluated["pooled"], evaluated["workers"]

    def mean(key: str) -> Optional[float]:
        values = [r[key] for r in runs if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    in_process = [ms for w in workers for ms in w["latency_ms"]]
    summary = {key: mean(key) for key in pooled["summary"]}
    summary.update({
        "train_seconds": mean("train_seconds"),
        "train_cpu_seconds": mean("train_cpu_seconds"),
        "model_size_mb": sum(w["model_size_bytes"] for w in workers) / len(workers) / 1e6,
        "peak_rss_train_mb": max(w["peak_rss_after_train_mb"] for w in workers),
        "peak_rss_parse_mb": max(w["peak_rss_parse_mb"] for w in workers),
        "model_load_seconds": sum(w["load_seconds"] for w in workers) / len(workers),
        "parse_p50_ms": metrics.percentile(in_process, 50),
        "parse_p95_ms": metrics.percentile(in_process, 95),
        "http_p50_ms": http["p50_ms"] if http else None,
        "http_p95_ms": http["p95_ms"] if http else None,
    })
    return {
        "summary": summary,
        "per_intent": pooled["per_intent"],
        "confused_pairs": pooled["confused_pairs"],
        "calibration": pooled["calibration"],
        "threshold_curve": pooled.get("threshold_curve"),
        "calibrated_thresholds": pooled.get("calibrated_thresholds"),
        "latency": {"in_process": {**metrics.latency_summary(in_process), "latency_ms": in_process},
                    "http": http, "components": component_latencies(workers)},
        "resources": {
            "train_seconds_per_run": [w["train_seconds"] for w in workers],
            "import_seconds": workers[0]["import_seconds"],
            "worker_seconds_total": sum(w["worker_seconds"] for w in workers),
            "worker_cpu_seconds_total": sum(w["worker_cpu_seconds"] for w in workers),
            "model_size_bytes": [w["model_size_bytes"] for w in workers],
        },
        "runs": runs,
    }


def write_predictions(path: Path, run_name: str, tests: List[Example], predictions: List[Dict]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        for example, prediction in zip(tests, predictions):
            handle.write(json.dumps({"run": run_name, "text": example.text, "gold": example.intent,
                                     "gold_entities": example.entities, **prediction}, ensure_ascii=False) + "\n")


def run_benchmark(benchmark: Benchmark, candidate: Path, baseline: Path, out: Path, epochs: Optional[int],
                  baseline_epochs: Optional[int], seed: int, http_requests: int) -> Dict[str, Any]:
    (out / "logs").mkdir(parents=True, exist_ok=True)
    for stale in out.glob("predictions-*.jsonl"):
        stale.unlink()
    evaluated: Dict[str, Any] = {}
    configs: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="supportbot-bench-") as tmp:
        workdir = Path(tmp)
        for tag, source, n_epochs in (("candidate", candidate, epochs), ("baseline", baseline, baseline_epochs)):
            prepared = workdir / f"{tag}-config.yml"
            configs[tag] = prepare_config(source, prepared, n_epochs, seed, benchmark.multi_label)
            evaluated[tag] = evaluate_config(tag, prepared, benchmark, workdir, out)
        http: Dict[str, Dict] = {}
        if http_requests > 0:
            progress("starting `rasa run --enable-api` with each model of the first run")
            models = {tag: evaluated[tag]["workers"][0]["model"] for tag in evaluated}
            texts = [e.text for e in benchmark.runs[0].test]
            http = http_latencies(models, texts, http_requests, workdir, out / "logs")
    results = {tag: assemble(evaluated[tag], http.get(tag)) for tag in evaluated}
    ratios = {key: metrics.ratio(value, results["baseline"]["summary"].get(key))
              for key, value in results["candidate"]["summary"].items()}
    return {"configs": configs, "results": results, "ratios": ratios}
