"""`python -m supportbot.benchmark.latency`: parse latency of one trained model, without training
anything (docs/benchmarks.md, "Parse latency of the served model").

`supportbot bench --dataset project` trains two configs before it times them; this times the model
you have. It measures exactly as the benchmark does (supportbot/benchmark/worker.py and runner.py):
- in process: `--runs` fresh processes each load the model with `Agent.load`, parse 3 warm-up
  messages, then time `Agent.parse_message` for every message of `--texts`, with the time of
  each graph component; figures are the median over runs of each run's p50 / p95, and components
  are pooled over runs;
- over HTTP (`--http-requests` > 0): one `rasa run --enable-api` on a free localhost port, then
  `--runs` series of sequential `POST /model/parse` requests from one keep-alive client.
Writes latency.json and latency.md to `--out`; exits 1 when the in-process p95 is above `--target-ms`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

from supportbot.benchmark import metrics, runner
from supportbot.benchmark.command import machine_info
from supportbot.benchmark.report import publish

TARGET_MS = 30.0  # issue #16: parse p95 on 2 cores


def texts_of(path: Path) -> List[str]:
    from rasa.shared.nlu.training_data.loading import load_data

    texts = [m.get("text") for m in load_data(str(path)).intent_examples if m.get("text")]
    if not texts:
        raise SystemExit(f"{path} has no NLU examples to parse")
    return texts


def in_process_runs(model: Path, texts: List[str], runs: int, workdir: Path) -> List[Dict]:
    """One fresh parsing process per run (worker.py --parse), as the benchmark's parse step."""
    request = workdir / "request.json"
    request.write_text(json.dumps({"texts": texts}))
    results = []
    for index in range(runs):
        out = workdir / f"parse-{index}.json"
        runner.progress(f"in process: run {index + 1}/{runs}, {len(texts)} parses")
        log = workdir / f"parse-{index}.log"
        with open(log, "wb") as handle:
            status = subprocess.run([sys.executable, "-m", "supportbot.benchmark.worker", "--parse", str(request),
                                     str(model), str(out)], stdout=handle, stderr=subprocess.STDOUT,
                                    env=runner.worker_env(workdir), cwd=workdir).returncode
        if status != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise SystemExit(f"parsing with {model} failed (exit {status}):\n{tail}")
        result = json.loads(out.read_text())
        result["summary"] = metrics.latency_summary(result["latency_ms"])
        runner.progress(f"run {index + 1}: p50 {result['summary']['p50_ms']:.1f} ms, "
                        f"p95 {result['summary']['p95_ms']:.1f} ms")
        results.append(result)
    return results


def http_runs(model: Path, texts: List[str], runs: int, requests_per_run: int, workdir: Path) -> List[Dict]:
    server, url = runner.rasa_server(str(model), workdir / "http")
    try:
        server.start()
        server.wait_healthy(300)
        results = []
        for index in range(runs):
            timed = runner.time_requests(url, texts, requests_per_run)
            runner.progress(f"HTTP run {index + 1}/{runs}: p50 {timed['p50_ms']:.1f} ms, "
                            f"p95 {timed['p95_ms']:.1f} ms")
            results.append({k: v for k, v in timed.items() if k != "latency_ms"})
        return results
    finally:
        server.stop()


def median_of(runs: List[Dict], key: str) -> Optional[float]:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def to_markdown(result: Dict) -> str:
    p, h = result["in_process"], result["http"]
    lines = [f"# Parse latency of {result['model']} ({result['date']}, commit {result['commit']})", "",
             f"{result['n_texts']} messages of {result['texts']}, {result['runs']} runs; load average "
             f"{result['load_average_start']} at the start, {result['load_average_end']} at the end, "
             f"niceness {result['niceness']}.", "",
             "| figure | median over runs | runs |", "|---|---:|---|",
             f"| in process p50 / p95 | {p['p50_ms']:.1f} / **{p['p95_ms']:.1f} ms** | "
             + ", ".join(f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f}" for r in p["runs"]) + " |"]
    if h:
        lines.append(f"| HTTP p50 / p95 ({h['requests_per_run']} requests per run) | {h['p50_ms']:.1f} / "
                     f"{h['p95_ms']:.1f} ms | " + ", ".join(f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f}"
                                                             for r in h["runs"]) + " |")
    lines.append(f"| model load / peak memory, loading and parsing | {p['load_seconds']:.1f} s / "
                 f"{p['peak_rss_mb']:.0f} MB | |")
    verdict = "met" if result["target_met"] else "not met"
    lines += ["", f"Target p95 ≤ {result['target_ms']:g} ms in process: **{verdict}**.", "",
              "| component (per in-process parse, all runs) | p50 ms | p95 ms | mean ms |", "|---|---:|---:|---:|"]
    for row in result["components"]:
        lines.append(f"| {row['component']} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['mean_ms']:.2f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> Dict:
    model, texts_path = args.model.resolve(), args.texts.resolve()
    if not model.is_file():
        raise SystemExit(f"{args.model} does not exist: train it first (`make train`)")
    started_load = [round(x, 2) for x in os.getloadavg()]
    texts = texts_of(texts_path)
    with tempfile.TemporaryDirectory(prefix="supportbot-latency-") as tmp:
        parsed = in_process_runs(model, texts, args.runs, Path(tmp))
        http = http_runs(model, texts, args.runs, args.http_requests, Path(tmp)) if args.http_requests > 0 else []
    summaries = [run["summary"] for run in parsed]
    in_process = {"p50_ms": median_of(summaries, "p50_ms"), "p95_ms": median_of(summaries, "p95_ms"),
                  "runs": [{k: run[k] for k in ("p50_ms", "p95_ms", "mean_ms", "n")} for run in summaries],
                  "load_seconds": median_of(parsed, "load_seconds"),
                  "peak_rss_mb": max(run["peak_rss_parse_mb"] for run in parsed)}
    result = {
        "date": datetime.now(timezone.utc).date().isoformat(), "commit": git_commit(), "model": str(args.model),
        "model_size_bytes": model.stat().st_size, "texts": str(args.texts), "n_texts": len(texts),
        "runs": args.runs, "machine": machine_info(), "load_average_start": started_load,
        "load_average_end": None, "niceness": os.nice(0), "target_ms": args.target_ms,
        "in_process": in_process,
        "http": {"p50_ms": median_of(http, "p50_ms"), "p95_ms": median_of(http, "p95_ms"), "runs": http,
                 "requests_per_run": args.http_requests} if http else None,
        "components": runner.component_latencies(parsed),
    }
    result["target_met"] = in_process["p95_ms"] <= args.target_ms
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    publish(result, to_markdown(result), args.out, "latency")
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supportbot.benchmark.latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/supportbot.tar.gz"),
                        help="(default: %(default)s)")
    parser.add_argument("--texts", type=Path, default=Path("tests/nlu/test_nlu.yml"),
                        help="NLU data whose messages are parsed (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes / HTTP series (default: %(default)s)")
    parser.add_argument("--http-requests", type=int, default=200,
                        help="POST /model/parse requests per HTTP series; 0 skips HTTP (default: %(default)s)")
    parser.add_argument("--target-ms", type=float, default=TARGET_MS, help="(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results/bench/latency"), help="(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.http_requests < 0:
        parser.error("--runs must be >= 1 and --http-requests >= 0")
    result = run(args)
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
