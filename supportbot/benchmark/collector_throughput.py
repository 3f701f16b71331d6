"""`python -m supportbot.benchmark.collector_throughput`: how many customer messages per second
`supportbot learn collect` moves from Rasa's SQL event broker into the learning store (issue #17
asks it to keep up with 100 messages/s; docs/benchmarks.md#collector-throughput).

Conversations are written into a SQLite events database exactly as Rasa's SQLEventBroker stores
them (`{"sender_id": ..., **event.as_dict()}` of Rasa's own event classes): a session start, then
per turn the user message with a full parse (10-intent ranking, entities), its featurization
event, the action, the bot's reply and action_listen; some turns fall back and are answered with a
"did you mean" button, some are followed by a handoff, some contain an email, phone or card number
to mask, and a few answers are voted down. Each run drains the whole database into a new, empty
learning store (SQLite file, or a schema of its own on Postgres, dropped afterwards); only
`Collector.run_once()` is timed. The median of the runs is reported.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from supportbot.benchmark.report import publish

TARGET = 100.0  # messages per second the issue asks for
MESSAGES = 5000
RUNS = 3
TURNS_PER_CONVERSATION = 6
FALLBACK_SHARE, HANDOFF_SHARE, VOTE_DOWN_SHARE = 0.1, 0.03, 0.02
INTENTS = ["order_status", "request_refund", "refund_status", "payment_problem", "cancel_order", "get_invoice",
           "update_account", "faq", "greet", "thank", "goodbye", "affirm", "deny", "complaint", "request_human"]
TEXTS = ["where is my order {n}", "I want a refund for order {n}, it arrived broken",
         "my card 4111 1111 1111 1111 was charged twice", "please email me at jo.{n}@example.com",
         "call me on +44 20 7946 {n:04d}", "how long does shipping to Norway take?", "hi there",
         "thanks, that's all", "cancel order {n} please", "I can't log in since yesterday",
         "can I get the invoice for {n}?", "this is the third time I ask, nobody answers"]


def parse_data(text: str, intent: str, confidence: float, message_id: str, rng: random.Random) -> Dict:
    """What Rasa's NLU gives for a message: the intent, a 10-intent ranking, entities."""
    others = rng.sample([i for i in INTENTS if i != intent], 9)
    rest = [round((1 - confidence) * share, 4) for share in (0.5, 0.2, 0.1, 0.06, 0.05, 0.04, 0.03, 0.01, 0.01)]
    ranking = [{"name": intent, "confidence": confidence}]
    ranking += [{"name": name, "confidence": value} for name, value in zip(others, rest)]
    entity = {"entity": "order_id", "start": 0, "end": 7, "value": "4817263", "extractor": "RegexEntityExtractor",
              "processors": ["EntityNormalizer"]}
    entities = [entity] if any(c.isdigit() for c in text) else []
    return {"intent": {"name": intent, "confidence": confidence}, "entities": entities, "text": text,
            "message_id": message_id, "metadata": {}, "intent_ranking": ranking,
            "response_selector": {"all_retrieval_intents": [], "default": {"response": {}, "ranking": []}}}


def conversation(sender: str, turns: int, rng: random.Random, clock: float) -> Tuple[List[Dict], List[str]]:
    """One conversation's broker events, and the message ids of the answers voted down."""
    from rasa.shared.core.events import (
        ActionExecuted,
        BotUttered,
        DefinePrevUserUtteredFeaturization,
        SessionStarted,
        UserUttered,
    )

    events = [ActionExecuted("action_session_start", timestamp=clock), SessionStarted(timestamp=clock),
              ActionExecuted("action_listen", timestamp=clock)]
    votes = []

    def turn(text: str, intent: str, confidence: float, action: str) -> str:
        message_id = uuid.UUID(int=rng.getrandbits(128)).hex
        parse = parse_data(text, intent, confidence, message_id, rng)
        events.extend([
            UserUttered(text, parse["intent"], parse["entities"], parse, input_channel="socketio",
                        message_id=message_id, metadata={"model_id": "bench-model"}, timestamp=clock),
            DefinePrevUserUtteredFeaturization(False, timestamp=clock),
            ActionExecuted(action, policy="RulePolicy", confidence=1.0, timestamp=clock),
            BotUttered(f"reply to {intent}", {"buttons": None}, {"utter_action": action}, timestamp=clock),
            ActionExecuted("action_listen", policy="RulePolicy", confidence=1.0, timestamp=clock)])
        return message_id

    for _ in range(turns):
        text = rng.choice(TEXTS).format(n=rng.randrange(10000))
        intent = rng.choice(INTENTS)
        if rng.random() < FALLBACK_SHARE:
            turn(text, "nlu_fallback", 0.45, "action_handle_nlu_fallback")
            turn(f"/{intent}", intent, 1.0, f"utter_{intent}")  # the "did you mean" button
        else:
            message_id = turn(text, intent, round(rng.uniform(0.55, 0.999), 4), f"utter_{intent}")
            if rng.random() < VOTE_DOWN_SHARE:
                votes.append(message_id)
        if rng.random() < HANDOFF_SHARE:
            events.append(ActionExecuted("action_handoff", policy="RulePolicy", confidence=1.0, timestamp=clock))
    return [{"sender_id": sender, **event.as_dict()} for event in events], votes


def write_events(events_url: str, feedback_url: str, messages: int, seed: int) -> Dict[str, int]:
    """Conversations until `messages` user messages, into the broker table and the votes into the
    feedback table. Returns the counts the collector must end up with."""
    import sqlalchemy

    from supportbot.db import make_engine
    from supportbot.learning.collector import BrokerBase, BrokerEvent
    from supportbot.store import FeedbackStore

    rng = random.Random(seed)
    engine = make_engine(events_url)
    BrokerBase.metadata.create_all(engine)
    feedback = FeedbackStore(feedback_url)
    counts = {"events": 0, "messages": 0, "turns": 0, "conversations": 0}
    rows, votes = [], []
    while counts["messages"] < messages:
        sender = f"bench-{counts['conversations']:06d}"
        events, down = conversation(sender, TURNS_PER_CONVERSATION, rng, 1764900000.0 + counts["conversations"])
        rows += [{"sender_id": sender, "data": json.dumps(event)} for event in events]
        users = [e for e in events if e["event"] == "user"]
        counts["messages"] += len(users)
        counts["turns"] += sum(not e["text"].startswith("/") for e in users)
        counts["conversations"] += 1
        votes += [(sender, message_id) for message_id in down]
    with engine.begin() as connection:
        connection.execute(sqlalchemy.insert(BrokerEvent), rows)
    for sender, message_id in votes:
        feedback.save(conversation_id=sender, kind="answer", value=-1, message_id=message_id, answer_index=0)
    counts["events"], counts["votes"] = len(rows), len(votes)
    return counts


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A URL whose tables live in a new schema of `base_url`'s database, dropped on exit."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"bench_collector_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, future=True)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def drain(store_url: str, events_url: str, feedback_url: str, expected: Dict[str, int]) -> float:
    """Seconds `run_once` takes to drain the events into the store at `store_url` (new, empty)."""
    from supportbot.learning.collector import Collector
    from supportbot.learning.store import LearningStore

    store = LearningStore(store_url)
    collector = Collector(store, events_url, feedback_url)
    started = time.perf_counter()
    read = collector.run_once()
    seconds = time.perf_counter() - started
    turns = store.turns()
    if read != expected["events"] or len(turns) != expected["turns"]:
        raise RuntimeError(f"the collector read {read} of {expected['events']} events and stored {len(turns)} "
                           f"of {expected['turns']} turns")
    if sum("voted_down" in t.reasons for t in turns) != expected["votes"]:
        raise RuntimeError("the collector did not mark every voted-down turn")
    store.engine.dispose()
    return seconds


def measure(backend: str, postgres: Optional[str], events_url: str, feedback_url: str, tmp: Path,
            expected: Dict[str, int], runs: int) -> List[float]:
    seconds = []
    for run in range(runs):
        if backend == "sqlite":
            seconds.append(drain(f"sqlite:///{tmp / f'learning-{run}.db'}", events_url, feedback_url, expected))
        else:
            with postgres_schema(postgres) as url:
                seconds.append(drain(url, events_url, feedback_url, expected))
        print(f"  {backend} run {run + 1}: {expected['messages'] / seconds[-1]:.0f} messages/s", file=sys.stderr)
    return seconds


def summary(expected: Dict[str, int], seconds: List[float]) -> Dict:
    median = statistics.median(seconds)
    return {"seconds": [round(s, 3) for s in seconds], "median_seconds": round(median, 3),
            "messages_per_second": round(expected["messages"] / median, 1),
            "events_per_second": round(expected["events"] / median, 1),
            "ratio_to_target": round(expected["messages"] / median / TARGET, 2)}


def to_markdown(result: Dict) -> str:
    e = result["workload"]
    lines = [f"# Collector throughput ({result['started']})", "", f"Command: `{result['command']}`  ",
             f"Workload: {e['messages']} customer messages ({e['turns']} typed, the rest \"did you mean\" "
             f"buttons) in {e['conversations']} conversations, {e['events']} broker events, {e['votes']} "
             f"votes down; median of {result['runs']} runs of `Collector.run_once()` into an empty store.", "",
             f"| learning store | messages/s | events/s | × {TARGET:.0f} msg/s | runs (s) |",
             "|---|---:|---:|---:|---|"]
    for backend, row in result["backends"].items():
        lines.append(f"| {backend} | {row['messages_per_second']:.0f} | {row['events_per_second']:.0f} | "
                     f"{row['ratio_to_target']:.1f} | {', '.join(f'{s:.2f}' for s in row['seconds'])} |")
    machine = result["machine"]
    lines += ["", f"Machine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}, "
              f"load average at start {machine['load_average']}."]
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m supportbot.benchmark.collector_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=MESSAGES,
                   help="customer messages to write (default: %(default)s)")
    p.add_argument("--runs", type=int, default=RUNS, help="timed runs per store; the median counts "
                   "(default: %(default)s)")
    p.add_argument("--postgres", help="also measure a store on this Postgres database, in a schema of its own "
                   "that is dropped afterwards (e.g. postgresql://127.0.0.1:5432/test)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results/bench/collector"),
                   help="reports go to OUT/<time>/ (default: %(default)s)")
    return p


def check_postgres(url: str) -> Optional[str]:
    import sqlalchemy

    try:
        sqlalchemy.create_engine(url).connect().close()
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as error:
        return f"--postgres {url}: cannot connect ({type(error).__name__}: {str(error).splitlines()[0]})"
    return None


def main(argv: Optional[List[str]] = None) -> int:
    import shlex

    from supportbot.benchmark.command import machine_info

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    problems = [m for m in ("--messages must be at least 1" if args.messages < 1 else None,
                            "--runs must be at least 1" if args.runs < 1 else None,
                            check_postgres(args.postgres) if args.postgres else None) if m]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    started, machine = datetime.now(timezone.utc), machine_info()
    backends = ["sqlite"] + (["postgres"] if args.postgres else [])
    result = {"started": started.strftime("%Y-%m-%d %H:%M UTC"), "runs": args.runs, "machine": machine,
              "command": "python -m supportbot.benchmark.collector_throughput " + shlex.join(argv), "backends": {}}
    with tempfile.TemporaryDirectory(prefix="collector-bench-") as tmp:
        events_url, feedback_url = f"sqlite:///{tmp}/events.db", f"sqlite:///{tmp}/feedback.db"
        print(f"writing {args.messages} messages' events", file=sys.stderr)
        result["workload"] = write_events(events_url, feedback_url, args.messages, args.seed)
        for backend in backends:
            seconds = measure(backend, args.postgres, events_url, feedback_url, Path(tmp), result["workload"],
                              args.runs)
            result["backends"][backend] = summary(result["workload"], seconds)
    out = args.out / started.strftime("%Y%m%dT%H%M%SZ")
    publish(result, to_markdown(result), out)
    slow = [name for name, row in result["backends"].items() if row["messages_per_second"] < TARGET]
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
