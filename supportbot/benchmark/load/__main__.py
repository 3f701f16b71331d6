"""`python -m supportbot.benchmark.load`: the bounded load test (docs/benchmarks.md#load-test).

Without --host it starts one stack on loopback (billing service, action server, one Rasa: the
embedded profile's SQLite tracker store and event broker, endpoints as endpoints.yml), or with
--production the production profile with --instances Rasa instances and as many action servers
behind nginx, on a private Postgres cluster, the machine's Redis and RabbitMQ (the fault matrix's
stack, supportbot/benchmark/faults.py), so 1 and 2 instances compare on the same stores; with
--host it drives a running assistant, e.g. the production profile's nginx in front of two Rasa
instances, and then needs --tracker-db and --billing-db to check it. Locust runs headless with a
fixed user count and run time, so it stops by itself; then every conversation the users held is
checked in the tracker store and every confirmed refund in the billing database (checker.py).
Exit status 1 when the check finds a problem.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

from supportbot.benchmark.load import checker
from supportbot.benchmark.report import publish

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m supportbot.benchmark.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", help="a running assistant's base URL (loopback only), e.g. the production "
                   "profile's nginx; default: start one stack here")
    p.add_argument("--tracker-db", help="with --host: its tracker store's SQLAlchemy URL (Postgres)")
    p.add_argument("--billing-db", help="with --host: its billing database's SQLAlchemy URL")
    p.add_argument("--instances", type=int, default=1, help="Rasa instances: behind --host (for the report) "
                   "or to start with --production (default: %(default)s)")
    p.add_argument("--production", action="store_true", help="without --host: start the production profile "
                   "with --instances Rasa instances instead of the embedded one-instance stack")
    p.add_argument("--model", type=Path, default=Path("models/supportbot.tar.gz"), help="(default: %(default)s)")
    p.add_argument("--users", type=int, default=16, help="simulated customers (default: %(default)s)")
    p.add_argument("--spawn-rate", type=float, default=4, help="users started per second (default: %(default)s)")
    p.add_argument("--run-time", default="60s", help="Locust's --run-time (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results/bench/load"),
                   help="reports go to OUT/<time>/ (default: %(default)s)")
    return p


def problems_in(args: argparse.Namespace) -> List[str]:
    problems = []
    if args.host:
        from urllib.parse import urlsplit

        if urlsplit(args.host).hostname not in ("127.0.0.1", "localhost", "::1"):
            problems.append(f"--host {args.host}: loopback only (127.0.0.1 or localhost)")
        if not (args.tracker_db and args.billing_db):
            problems.append("--host needs --tracker-db and --billing-db to check the run")
    elif not args.model.is_file():
        problems.append(f"--model {args.model}: no such file (make train)")
    if args.host and args.production:
        problems.append("--production starts its own stack: not with --host")
    if args.instances < 1:
        problems.append("--instances must be at least 1")
    elif args.instances > 1 and not (args.host or args.production):
        problems.append("several --instances need --production (or --host)")
    if args.users < 1 or args.spawn_rate <= 0:
        problems.append("--users must be at least 1 and --spawn-rate above 0")
    return problems


def locust_stats(prefix: Path) -> Dict[str, Dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return {f"{row['Type']} {row['Name']}".strip(): row for row in csv.DictReader(handle)}


def summary(stats: Dict[str, Dict[str, str]]) -> Dict:
    row = next(r for k, r in stats.items() if k.endswith("Aggregated"))
    return {"turns": int(row["Request Count"]), "failures": int(row["Failure Count"]),
            "turns_per_second": round(float(row["Requests/s"]), 1),
            "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"]), "p99_ms": float(row["99%"])}


def by_channel(stats: Dict[str, Dict[str, str]]) -> Dict[str, Dict]:
    channels: Dict[str, Dict] = {}
    for key, row in stats.items():
        if "Aggregated" in key:
            continue
        channel = "socket.io" if key.startswith("socketio") else "REST"
        entry = channels.setdefault(channel, {"turns": 0, "failures": 0})
        entry["turns"] += int(row["Request Count"])
        entry["failures"] += int(row["Failure Count"])
    return channels


def to_markdown(result: Dict) -> str:
    s = result["summary"]
    lines = [f"# Load test ({result['started']})", "", f"Command: `{result['command']}`  ",
             f"{result['users']} users for {result['run_time']}, {result['instances']} Rasa instance(s) "
             f"({result.get('stores', 'the stack given or the embedded one')}); "
             f"{result['conversations']} conversations held.", "",
             "| turns | failed | turns/s | p50 ms | p95 ms | p99 ms |", "|---:|---:|---:|---:|---:|---:|",
             f"| {s['turns']} | {s['failures']} | {s['turns_per_second']:.1f} | {s['p50_ms']:.0f} | "
             f"{s['p95_ms']:.0f} | {s['p99_ms']:.0f} |", "",
             "By channel: " + ", ".join(f"{c}: {v['turns']} turns, {v['failures']} failed"
                                       for c, v in result["channels"].items()),
             f"Refunds confirmed: {result['refunds_confirmed']}.", "",
             "Check of the stores: " + ("every conversation whole and in order, every confirmed refund "
                                        "written once." if not result["problems"] else
                                        f"{len(result['problems'])} problems:")]
    lines += [f"- {p}" for p in result["problems"][:50]]
    machine = result["machine"]
    lines += ["", f"Machine: {machine['cpus']} CPUs, Python {machine['python']}, niceness {machine['niceness']}, "
              f"load average at start {machine['load_average']}."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    import shlex

    from supportbot.benchmark.command import machine_info

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    problems = problems_in(args)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc)
    out = args.out / started.strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    log = out / "conversations.jsonl"
    result = {"started": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_info(), "users": args.users,
              "run_time": args.run_time, "instances": args.instances,
              "command": "python -m supportbot.benchmark.load " + shlex.join(argv)}
    with ExitStack() as stack:
        host, tracker_db, billing_db = args.host, args.tracker_db, args.billing_db
        if not host and args.production:
            from supportbot import settings
            from supportbot.benchmark.faults import production_stack

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="load-")))
            print(f"starting the production profile with {args.instances} Rasa instance(s)", file=sys.stderr)
            served = stack.enter_context(production_stack(
                tmp, args.model.resolve(), Path.cwd(), settings.get("SUPPORTBOT_RABBITMQ_URL"),
                settings.get("SUPPORTBOT_REDIS_URL"), instances=args.instances))
            host, tracker_db, billing_db = served.public, served.tracker_db, served.billing_db
            result["stores"] = "production profile: Postgres (private cluster), Redis lock, RabbitMQ, nginx"
        elif not host:
            from supportbot.benchmark.turn_cost import VARIANTS, running_stack

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="load-")))
            print("starting the stack", file=sys.stderr)
            served = stack.enter_context(running_stack(tmp, args.model.resolve(), Path.cwd(), VARIANTS["tuned"],
                                                       probe=False))
            host, tracker_db, billing_db = served.rasa_url, f"sqlite:///{tmp / 'tracker.db'}", \
                f"sqlite:///{tmp / 'billing.db'}"
            result["stores"] = "embedded profile: SQLite tracker store and event broker"
        refunds_before = checker.last_refund_number(billing_db)
        command = [str(Path(sys.executable).parent / "locust"), "-f", str(LOCUSTFILE), "--headless",
                   "--host", host, "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
                   "--run-time", args.run_time, "--stop-timeout", "120", "--csv", str(out / "locust"),
                   "--only-summary", "--loglevel", "WARNING", "--load-log", str(log)]
        print(" ".join(command), file=sys.stderr)
        subprocess.run(command, check=False)
        conversations = checker.read_conversations(log)
        result["problems"] = checker.check(conversations, tracker_db, billing_db, refunds_before)
    stats = locust_stats(out / "locust")
    result.update(summary=summary(stats), channels=by_channel(stats), conversations=len(conversations),
                  refunds_confirmed=sum(len(c.refunds) for c in conversations))
    publish(result, to_markdown(result), out)
    return 1 if result["problems"] or not conversations else 0


if __name__ == "__main__":
    sys.exit(main())
