"""`python -m supportbot.benchmark.turn_cost`: what one turn costs on one Rasa process, and where it goes
(issue #18 item 6; docs/benchmarks.md#cost-per-turn).

For each variant (`baseline`: the stack as shipped before the change; `tuned`: with it) this starts
one stack like tests/plugins/stack.py's (billing service, action server, one Rasa server on the
trained model, SQLite tracker store and SQL event broker, as the embedded profile runs) and:

1. drives the five-turn REST conversation (greet, order status, email, FAQ, goodbye) with 1, 8 and
   32 concurrent clients for a bounded time each, every client starting fresh conversations:
   turns/s, p50/p95 per turn, measured from outside;
2. breaks one turn down at low load, one conversation at a time: in-process timers around NLU,
   each policy prediction, the action server call, the tracker store's retrieve and save
   (supportbot/benchmark/turn_probe.py, a wrapper of `supportbot.rasa_run`); the action server's
   own time per call from its /metrics; /model/parse and /conversations/<id>/predict from outside;
3. runs one 50-turn conversation and compares the turn cost at turns 3-7 with turns 46-50.

Variants run one after another in the same invocation, so their ratio is measured on the same
machine in the same state. Prints a table and writes results/bench/turn_cost/<time>/report.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import requests
import yaml

from supportbot import processes
from supportbot.benchmark.report import publish

MODEL = Path("models/supportbot.tar.gz")
CONVERSATION = ["hi", "where is my order 4817263", "alice@example.com", "how long does delivery take?", "bye"]
# A long conversation that never pauses (no handoff, no form left open): greetings and FAQs.
LONG_CYCLE = ["hi", "how long does delivery take?", "which payment methods do you take?", "thanks",
              "what are your opening hours?"]
CLIENTS = (1, 8, 32)
SECONDS = 20.0
BREAKDOWN_CONVERSATIONS = 8
LONG_TURNS = 50
API_TOKEN = "bench-rasa-api-token"
ACTION_SERVER_TOKEN = "bench-action-server-token"
BILLING_API_KEY = "bench-billing-assistant-key"
METRICS_TOKEN = "bench-metrics-token"


class Variant:
    """One configuration of the stack: what `tracker_store` endpoints.yml gets and extra env."""

    def __init__(self, name: str, description: str, tracker_store_type: str = "SQL",
                 env: Optional[Dict[str, str]] = None) -> None:
        self.name, self.description = name, description
        self.tracker_store_type, self.env = tracker_store_type, env or {}


VARIANTS = {
    "baseline": Variant("baseline", "Rasa's SQLTrackerStore, as shipped before this change"),
    "tuned": Variant("tuned", "supportbot.tracker_store.SQLTrackerStore: one read per save, not two",
                     tracker_store_type="supportbot.tracker_store.SQLTrackerStore"),
}


class BenchStack:
    def __init__(self, rasa_url: str, actions_url: str, probe_file: Path, log_dir: Path) -> None:
        self.rasa_url, self.actions_url, self.probe_file, self.log_dir = rasa_url, actions_url, probe_file, log_dir


@contextmanager
def running_stack(tmp: Path, model: Path, repo: Path, variant: Variant,
                  probe: bool = True) -> Iterator[BenchStack]:
    """Billing service, action server and one Rasa (with the turn probe) on free loopback ports."""
    rasa_port, actions_port, billing_port = (processes.free_port() for _ in range(3))
    endpoints = tmp / "endpoints.yml"
    endpoints.write_text(yaml.safe_dump({
        "action_endpoint": {"url": f"http://127.0.0.1:{actions_port}/webhook",
                            "headers": {"Authorization": f"Bearer {ACTION_SERVER_TOKEN}"}},
        "tracker_store": {"type": variant.tracker_store_type, "dialect": "sqlite", "db": str(tmp / "tracker.db")},
        "event_broker": {"type": "SQL", "dialect": "sqlite", "db": str(tmp / "events.db")},
    }))
    probe_file = tmp / "probe.jsonl"
    env = {
        "BILLING_URL": f"http://127.0.0.1:{billing_port}", "BILLING_TIMEOUT": "5",
        "SUPPORTBOT_DB_URL": f"sqlite:///{tmp / 'supportbot.db'}",
        "SUPPORTBOT_TICKETING": "sqlite", "SUPPORTBOT_TICKETING_DB_URL": f"sqlite:///{tmp / 'tickets.db'}",
        "SUPPORTBOT_IDENTITY_SECRET": "bench-identity-secret-of-32-bytes!",
        "SUPPORTBOT_SESSION_SECRET": "bench-session-secret",
        "ACTION_SERVER_TOKEN": ACTION_SERVER_TOKEN, "BILLING_API_KEY": BILLING_API_KEY,
        "BILLING_API_KEYS": f"assistant:assistant:{BILLING_API_KEY}",
        # Every simulated customer verifies as Alice from one client: no lockout by volume.
        "BILLING_VERIFY_MAX_FAILURES_PER_CLIENT": "1000000",
        "SUPPORTBOT_METRICS_TOKEN": METRICS_TOKEN,
        **variant.env,
    }
    rasa = processes.rasa_server(rasa_port, model, endpoints, repo / "credentials.yml", tmp, API_TOKEN, env, repo)
    if probe:
        # `-m supportbot.rasa_run` with timers, writing to the probe file (its first argument)
        rasa.command[2:3] = ["supportbot.benchmark.turn_probe", str(probe_file)]
    servers = [processes.billing_server(billing_port, f"sqlite:///{tmp / 'billing.db'}", tmp, env, reset=True),
               processes.action_server(actions_port, tmp, env, repo), rasa]
    with processes.running(servers, timeout=300):
        yield BenchStack(rasa.url, servers[1].url, probe_file, tmp)


def say(session: requests.Session, rasa_url: str, sender: str, text: str) -> List[dict]:
    response = session.post(f"{rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text},
                            timeout=120)
    response.raise_for_status()
    return response.json()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def drive(rasa_url: str, clients: int, seconds: float) -> Dict:
    """`clients` threads each run five-turn conversations back to back until `seconds` pass; only
    turns that started in time count, and the clock stops when the last of them is answered."""
    latencies: List[float] = []
    errors: List[str] = []
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + seconds

    def client() -> None:
        session = requests.Session()
        while time.perf_counter() < deadline:
            sender = f"bench-{uuid.uuid4().hex[:12]}"
            for text in CONVERSATION:
                if time.perf_counter() >= deadline:
                    return
                t0 = time.perf_counter()
                try:
                    say(session, rasa_url, sender, text)
                except requests.RequestException as error:
                    with lock:
                        errors.append(type(error).__name__)
                    continue
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "turns": len(latencies), "errors": len(errors), "seconds": round(elapsed, 1),
            "turns_per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
            "p99_ms": round(percentile(latencies, 99), 1)}


def probe_records(path: Path, offset: int) -> tuple:
    with open(path) as handle:
        handle.seek(offset)
        text = handle.read()
    return [json.loads(line) for line in text.splitlines() if line.strip()], offset + len(text.encode())


def action_server_seconds(actions_url: str) -> tuple:
    """(sum, count) of the action server's /webhook request durations, from its /metrics."""
    text = requests.get(f"{actions_url}/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("supportbot_http_request_duration_seconds_") and 'route="/webhook"' in line:
            value = float(line.rsplit(" ", 1)[1])
            if "_sum{" in line:
                total += value
            elif "_count{" in line:
                count += value
    return total, count


PARTS = ("turn", "nlu", "policies", "action_call", "retrieve", "save", "retrieve_in_save")


def breakdown(stack: BenchStack, conversations: int) -> Dict:
    """One conversation at a time: per turn, the median of each part's summed time in the turn."""
    session = requests.Session()
    offset = stack.probe_file.stat().st_size if stack.probe_file.exists() else 0
    per_turn: Dict[str, List[float]] = defaultdict(list)
    calls: Dict[str, List[int]] = defaultdict(list)
    outside: List[float] = []
    sum0, count0 = action_server_seconds(stack.actions_url)
    for _ in range(conversations):
        sender = f"probe-{uuid.uuid4().hex[:12]}"
        for text in CONVERSATION:
            t0 = time.perf_counter()
            say(session, stack.rasa_url, sender, text)
            outside.append((time.perf_counter() - t0) * 1000)
            records, offset = probe_records(stack.probe_file, offset)
            totals: Dict[str, float] = defaultdict(float)
            counts: Dict[str, int] = defaultdict(int)
            for record in records:
                totals[record["part"]] += record["ms"]
                counts[record["part"]] += 1
            for part in set(PARTS) | {p for p in totals if p.startswith("node:")}:
                per_turn[part].append(totals.get(part, 0.0))
                calls[part].append(counts.get(part, 0))
    sum1, count1 = action_server_seconds(stack.actions_url)
    turns = conversations * len(CONVERSATION)
    parts = {part: {"median_ms": round(statistics.median(values), 2),
                    "mean_ms": round(statistics.fmean(values), 2),
                    "calls_per_turn": round(sum(calls[part]) / turns, 2)}
             for part, values in per_turn.items()}
    nodes = sorted((p for p in parts if p.startswith("node:")), key=lambda p: -parts[p]["mean_ms"])
    parse = [timed(lambda t=text: session.post(f"{stack.rasa_url}/model/parse", params={"token": API_TOKEN},
                                               json={"text": t}, timeout=60).raise_for_status())
             for text in CONVERSATION * 4]
    sender = f"probe-{uuid.uuid4().hex[:12]}"
    for text in CONVERSATION[:3]:
        say(session, stack.rasa_url, sender, text)
    predict = [timed(lambda: session.post(f"{stack.rasa_url}/conversations/{sender}/predict",
                                          params={"token": API_TOKEN}, timeout=60).raise_for_status())
               for _ in range(10)]
    return {"turns": turns, "outside_p50_ms": round(statistics.median(outside), 1),
            "parts": {p: parts[p] for p in PARTS if p in parts}, "nodes": {p[5:]: parts[p] for p in nodes[:8]},
            "action_server_ms_per_call": round((sum1 - sum0) / max(count1 - count0, 1) * 1000, 2),
            "action_server_calls_per_turn": round((count1 - count0) / turns, 2),
            "model_parse_p50_ms": round(statistics.median(parse), 1),
            "predict_endpoint_p50_ms": round(statistics.median(predict), 1)}


def timed(call) -> float:
    t0 = time.perf_counter()
    call()
    return (time.perf_counter() - t0) * 1000


def long_conversation(stack: BenchStack, turns: int) -> Dict:
    """One conversation of `turns` turns: the turn cost (outside and in-process) early and late."""
    session = requests.Session()
    sender = f"long-{uuid.uuid4().hex[:12]}"
    offset = stack.probe_file.stat().st_size
    outside: List[float] = []
    inside: List[float] = []
    for index in range(turns):
        t0 = time.perf_counter()
        say(session, stack.rasa_url, sender, LONG_CYCLE[index % len(LONG_CYCLE)])
        outside.append((time.perf_counter() - t0) * 1000)
        records, offset = probe_records(stack.probe_file, offset)
        inside.append(sum(r["ms"] for r in records if r["part"] == "turn"))
    early, late = slice(2, 7), slice(turns - 5, turns)
    result = {"turns": turns,
              "early_outside_ms": round(statistics.median(outside[early]), 1),
              "late_outside_ms": round(statistics.median(outside[late]), 1),
              "early_inside_ms": round(statistics.median(inside[early]), 1),
              "late_inside_ms": round(statistics.median(inside[late]), 1)}
    result["late_to_early"] = round(result["late_outside_ms"] / result["early_outside_ms"], 2)
    return result


def run_variant(variant: Variant, model: Path, repo: Path, clients: Sequence[int], seconds: float,
                breakdown_conversations: int, long_turns: int) -> Dict:
    with tempfile.TemporaryDirectory(prefix=f"turn-cost-{variant.name}-") as tmp:
        print(f"[{variant.name}] starting the stack", file=sys.stderr)
        with running_stack(Path(tmp), model, repo, variant) as stack:
            check_conversation(stack)
            result: Dict = {"description": variant.description, "load": []}
            result["breakdown"] = breakdown(stack, breakdown_conversations)
            print(f"[{variant.name}] breakdown: {json.dumps(result['breakdown']['parts'])}", file=sys.stderr)
            result["long"] = long_conversation(stack, long_turns)
            for n in clients:
                row = drive(stack.rasa_url, n, seconds)
                print(f"[{variant.name}] {row}", file=sys.stderr)
                result["load"].append(row)
    return result


def check_conversation(stack: BenchStack) -> None:
    """The scripted conversation does what it says (verification, order status, FAQ), or the
    figures would measure something else."""
    session, sender = requests.Session(), f"check-{uuid.uuid4().hex[:12]}"
    answers = ["\n".join(m.get("text") or "" for m in say(session, stack.rasa_url, sender, text))
               for text in CONVERSATION]
    if "on its way" not in answers[2] or not answers[3] or not answers[4]:
        raise SystemExit(f"the benchmark conversation went another way: {answers}")
    with sqlite3.connect(stack.log_dir / "tracker.db") as connection:
        stored = connection.execute("SELECT count(*) FROM events WHERE sender_id = ?", (sender,)).fetchone()[0]
    if not stored:  # Rasa falls back to an in-memory store when it cannot load the configured one
        raise SystemExit(f"the conversation is not in the SQL tracker store: see {stack.log_dir / 'rasa.log'}")


def to_markdown(result: Dict) -> str:
    names = list(result["variants"])
    lines = [f"# Cost per turn ({result['started']})", "", f"Command: `{result['command']}`  ",
             f"Conversation: {' / '.join(CONVERSATION)} (REST), {result['seconds']:.0f} s per load level; "
             "one Rasa process, SQLite tracker store and event broker.", "",
             "| variant | clients | turns/s | p50 ms | p95 ms | p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        for row in result["variants"][name]["load"]:
            lines.append(f"| {name} | {row['clients']} | {row['turns_per_second']:.1f} | {row['p50_ms']:.0f} | "
                         f"{row['p95_ms']:.0f} | {row['p99_ms']:.0f} | {row['errors']} |")
    lines += ["", "One turn, one conversation at a time (median ms per turn; calls per turn):", "",
              "| part | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for part in PARTS:
        cells = []
        for name in names:
            entry = result["variants"][name]["breakdown"]["parts"].get(part)
            cells.append(f"{entry['median_ms']:.1f} ({entry['calls_per_turn']:g})" if entry else "-")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    for key, label in (("action_server_ms_per_call", "action server, its own time per call"),
                       ("model_parse_p50_ms", "/model/parse from outside, p50"),
                       ("predict_endpoint_p50_ms", "/conversations/<id>/predict from outside, p50"),
                       ("outside_p50_ms", "whole turn from outside, p50")):
        lines.append(f"| {label} | " + " | ".join(f"{result['variants'][n]['breakdown'][key]:.1f}"
                                                   for n in names) + " |")
    lines += ["", "Graph nodes (mean ms per turn, costliest first): " + "; ".join(
        f"{name}: " + ", ".join(f"{node} {v['mean_ms']:.1f}" for node, v in result["variants"][name]["breakdown"]
                                ["nodes"].items()) for name in names), "",
        f"| variant | turns 3-7 ms | turns {result['long_turns'] - 4}-{result['long_turns']} ms | late / early | "
        "in Rasa, early → late ms |",
        "|---|---:|---:|---:|---|"]
    for name in names:
        long = result["variants"][name]["long"]
        lines.append(f"| {name} | {long['early_outside_ms']:.0f} | {long['late_outside_ms']:.0f} | "
                     f"{long['late_to_early']:.2f} | "
                     f"{long['early_inside_ms']:.0f} → {long['late_inside_ms']:.0f} |")
    if "baseline" in names and len(names) > 1:
        lines += ["", "Ratios to baseline (same run):"]
        base = result["variants"]["baseline"]
        for name in names[1:]:
            for row, base_row in zip(result["variants"][name]["load"], base["load"]):
                lines.append(f"- {name}, {row['clients']} clients: turns/s × "
                             f"{row['turns_per_second'] / base_row['turns_per_second']:.2f}, p50 × "
                             f"{row['p50_ms'] / base_row['p50_ms']:.2f}")
    machine = result["machine"]
    lines += ["", f"Machine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}, "
              f"niceness {machine['niceness']}, load average at start {machine['load_average']}."]
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m supportbot.benchmark.turn_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=MODEL, help="trained model (default: %(default)s)")
    p.add_argument("--variants", default="baseline,tuned",
                   help=f"comma-separated, run in this order; of {', '.join(VARIANTS)} (default: %(default)s)")
    p.add_argument("--clients", default=",".join(map(str, CLIENTS)),
                   help="concurrent clients per load level (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=SECONDS, help="per load level (default: %(default)s)")
    p.add_argument("--breakdown-conversations", type=int, default=BREAKDOWN_CONVERSATIONS,
                   help="five-turn conversations in the breakdown (default: %(default)s)")
    p.add_argument("--long-turns", type=int, default=LONG_TURNS, help="(default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results/bench/turn_cost"),
                   help="reports go to OUT/<time>/ (default: %(default)s)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    import shlex

    from supportbot.benchmark.command import machine_info

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    problems = [f"--variants: unknown {n!r} (known: {', '.join(VARIANTS)})" for n in names if n not in VARIANTS]
    try:
        clients = [int(c) for c in args.clients.split(",")]
    except ValueError:
        clients = []
    if not clients or min(clients) < 1:
        problems.append(f"--clients must be positive integers, got {args.clients!r}")
    if args.seconds <= 0 or args.breakdown_conversations < 1 or args.long_turns < 10:
        problems.append("--seconds must be > 0, --breakdown-conversations ≥ 1 and --long-turns ≥ 10")
    if not args.model.is_file():
        problems.append(f"--model {args.model}: no such file (make train)")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc)
    result = {"started": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_info(),
              "seconds": args.seconds, "long_turns": args.long_turns, "variants": {},
              "command": "python -m supportbot.benchmark.turn_cost " + shlex.join(argv)}
    repo = Path.cwd()
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    for name in names:
        result["variants"][name] = run_variant(VARIANTS[name], args.model.resolve(), repo, clients, args.seconds,
                                               args.breakdown_conversations, args.long_turns)
    out = args.out / started.strftime("%Y%m%dT%H%M%SZ")
    publish(result, to_markdown(result), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
