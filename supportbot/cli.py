"""`supportbot`: run the assistant with embedded defaults, hand conversations back, gate NLU.

  supportbot run                 billing service + action server + Rasa (REST, socket.io) + demo store
                                 + admin app (the designer page, the agent inbox)
  supportbot shell               chat with the running assistant in the terminal
  supportbot handoffs            list handoff records (open ones by default)
  supportbot handoffs claim|say|release|close REF --agent NAME   answer a handed-off chat live
  supportbot resume SENDER_ID    give a handed-off conversation back to the bot
  supportbot check-nlu           score the model on the held-out NLU test set, fail below thresholds
  supportbot bench               benchmark an NLU config against Rasa's default pipeline
  supportbot thresholds FILE     per-intent fallback thresholds from a benchmark's predictions
  supportbot report              support analytics: containment, CSAT, resolution... (report.md)
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple

import requests
from sqlalchemy.exc import SQLAlchemyError

from supportbot import local_secrets, processes, settings
from supportbot.admin import accounts as admin_accounts
from supportbot.benchmark.command import add_arguments as bench_arguments
from supportbot.handoff import command as handoff_command
from supportbot.learning import analytics, clusters, corrections, drift, noise
from supportbot.store import HandoffStore

ACTIONS_PORT = 5055  # fixed: endpoints.yml points Rasa at it

BANNER = """
The assistant is running.
  Talk in the terminal:   make shell   (= .venv/bin/supportbot shell)
  Talk over HTTP:         curl -s -X POST {rasa}/webhooks/rest/webhook \\
                            -H 'Content-Type: application/json' \\
                            -d '{{"sender": "me", "message": "where is my order 4817263"}}'
  Socket.IO channel:      {rasa}/socket.io
  Demo store with chat:   {demo}   (signed in as alice@example.com)
  Designer page:          {admin}/inbox   ({admin_login})
  Billing service:        {billing}/openapi.yaml   (demo customer: alice@example.com, order 4817263)
  Handed-off chats:       {admin}/agents   (agent accounts) or .venv/bin/supportbot handoffs
Logs are in var/logs/. Press Ctrl-C to stop.
"""


def run(args: argparse.Namespace) -> int:
    if args.profile:
        return run_profile(args)
    root = Path.cwd()
    var = root / "var"
    log_dir = var / "logs"
    billing_url = f"http://127.0.0.1:{args.billing_port}"
    # Secrets from the environment, else made once and kept in var/secrets.env (never argv);
    # each server is given only the ones it uses (local_secrets.HELD_BY).
    shared = local_secrets.load(create=True)
    shared["BILLING_API_KEYS"] = settings.get("BILLING_API_KEYS") or local_secrets.billing_api_keys(shared)
    env = {
        "BILLING_URL": billing_url,
        "SUPPORTBOT_DB_URL": settings.get("SUPPORTBOT_DB_URL"),
        "RASA_TELEMETRY_ENABLED": "false",
    }

    def env_of(server: str) -> dict:
        return {**env, **local_secrets.held_by(server, shared)}

    admin_env, admin_password = admin_accounts.local_defaults()
    admin_login = admin_accounts.login_hint(admin_password)
    if admin_password:
        print(f"Made an admin account for the designer page: {admin_login}.")

    billing_db = settings.get("BILLING_DB_URL")
    servers = [
        processes.billing_server(args.billing_port, billing_db, log_dir, env_of("billing")),
        processes.action_server(ACTIONS_PORT, log_dir, env_of("actions"), root),
        processes.rasa_server(args.port, Path(args.model), root / "endpoints.yml", root / "credentials.yml",
                              log_dir, shared["RASA_AUTH_TOKEN"], env_of("rasa"), root),
        processes.demo_server(args.demo_port, f"http://127.0.0.1:{args.port}", billing_url, log_dir,
                              env_of("demo"), root),
        # The agent inbox answers handed-off chats through Rasa's relay: its URL and API token.
        processes.admin_server(args.admin_port, log_dir,
                               {**env, **admin_env, "RASA_URL": f"http://127.0.0.1:{args.port}",
                                "RASA_AUTH_TOKEN": shared["RASA_AUTH_TOKEN"]}, root),
        processes.collector(log_dir, env, root),
    ]
    print("Starting the billing service, the action server, Rasa, the demo store and the admin app "
          "(about a minute)...")
    return _serve(servers, BANNER.format(rasa=f"http://127.0.0.1:{args.port}", billing=billing_url,
                                         demo=f"http://127.0.0.1:{args.demo_port}",
                                         admin=f"http://127.0.0.1:{args.admin_port}", admin_login=admin_login))


def run_profile(args: argparse.Namespace) -> int:
    """`run --profile NAME`: the topology profiles/NAME/ describes (supportbot/profile.py)."""
    from supportbot import profile as profiles

    root = Path.cwd()
    shared = local_secrets.load(create=True)
    shared["BILLING_API_KEYS"] = settings.get("BILLING_API_KEYS") or local_secrets.billing_api_keys(shared)
    admin_env, admin_password = admin_accounts.local_defaults()
    try:
        chosen = profiles.load(args.profile, root)
        servers = profiles.servers(chosen, Path(args.model), root, shared, admin_env)
    except (profiles.ProfileError, SQLAlchemyError) as error:
        print(f"supportbot run --profile {args.profile}: {error}", file=sys.stderr)
        return 2
    print(f"Starting profile {chosen.name}: {len(servers)} processes (a minute or two)...")
    return _serve(servers, profiles.banner(chosen, admin_accounts.login_hint(admin_password)))


def _serve(servers: List[processes.ServerProcess], banner: str) -> int:
    """Start the servers, print the banner, and keep them running until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with processes.running(servers, timeout=300):
        print(banner)
        try:
            while not stop.wait(1):
                for server in servers:
                    if server.process.poll() is not None:
                        print(f"{server.name} stopped:\n{server.log_tail()}", file=sys.stderr)
                        return 1
        except KeyboardInterrupt:
            pass
    return 0


def shell(args: argparse.Namespace) -> int:
    """Chat with the running assistant over its REST channel (buttons: type their number)."""
    url = f"{args.rasa_url}/webhooks/rest/webhook"
    sender = args.sender or f"shell-{os.getpid()}"
    print(f"Talking to {url} as {sender!r}. Ctrl-D to quit.")
    buttons: List[dict] = []
    while True:
        try:
            text = input("you> ")
        except EOFError:
            print()
            return 0
        if text.strip().isdigit() and 0 < int(text) <= len(buttons):
            text = buttons[int(text) - 1]["payload"]
        try:
            replies = requests.post(url, json={"sender": sender, "message": text}, timeout=60).json()
        except requests.RequestException as error:
            print(f"(cannot reach the assistant: {error})")
            continue
        buttons = []
        for reply in replies:
            if reply.get("text"):
                print(f"bot> {reply['text']}")
            for button in reply.get("buttons") or []:
                buttons.append(button)
                print(f"     {len(buttons)}. {button['title']}")
        if not replies:
            print("(no reply: the conversation may be with a person now)")


def handoffs(args: argparse.Namespace) -> int:
    for record in HandoffStore().list(status=None if args.all else "open"):
        print(json.dumps({
            "reference": record.reference, "conversation_id": record.conversation_id,
            "reason": record.reason, "status": record.status, "customer_id": record.customer_id,
            "team": record.team, "priority": record.priority, "created_at": record.created_at.isoformat(),
            "last_messages": record.context.get("transcript", [])[-4:],
        }, ensure_ascii=False, default=str))
    return 0


def resume(args: argparse.Namespace) -> int:
    url = f"{args.rasa_url}/conversations/{requests.utils.quote(args.sender_id, safe='')}/tracker/events"
    token = args.token or local_secrets.load(create=False).get("RASA_AUTH_TOKEN")
    # Rasa 3.6 takes its plain auth token as a query parameter (a Bearer header means a JWT).
    params = {"token": token} if token else {}
    response = requests.post(url, json={"event": "resume"}, params=params, timeout=10)
    if not response.ok:
        print(f"Rasa refused to resume {args.sender_id}: HTTP {response.status_code} {response.text[:200]}",
              file=sys.stderr)
        return 1
    resolved = HandoffStore().resolve(args.sender_id)
    print(f"Resumed {args.sender_id}; {resolved} open handoff record(s) marked resolved.")
    return 0


def check_nlu(args: argparse.Namespace) -> int:
    from supportbot import nlu_gate

    return nlu_gate.main(args.model, args.nlu, args.out, args.min_intent_f1, args.min_entity_f1,
                         reference=args.reference, write_reference=args.write_reference,
                         max_drop=args.max_drop, min_support=args.min_support)


def learn_collect(args: argparse.Namespace) -> int:
    """Rasa's events → the learning store, once or (--follow) every --interval seconds."""
    from supportbot.learning.collector import Collector
    from supportbot.learning.store import LearningStore

    collector = Collector(LearningStore(args.db), args.events)
    if not args.follow:
        print(f"{collector.run_once()} events read")
        return 0
    while True:
        try:
            collector.run_once()
        except SQLAlchemyError as error:
            # A batch is written whole with its cursor or not at all: the next read retries it.
            print(f"collecting failed, retrying in {args.interval:g}s: {error}", file=sys.stderr, flush=True)
        time.sleep(args.interval)


def learn_import(args: argparse.Namespace) -> int:
    from supportbot.learning import imports
    from supportbot.learning.labels import known_labels
    from supportbot.learning.store import LearningStore

    try:
        result = imports.import_csv(LearningStore(args.db), Path(args.file), known_labels(), args.source)
    except imports.ImportRejected as error:
        print(f"Nothing imported from {args.file}:\n{error}", file=sys.stderr)
        return 2
    print(f"{result.imported} imported, {result.duplicates} skipped as duplicates "
          f"(sources: {', '.join(sorted(result.sources)) or '-'})")
    return 0


def learn_queue(args: argparse.Namespace) -> int:
    from supportbot.learning import review
    from supportbot.learning.store import LearningStore

    groups = review.queue(LearningStore(args.db), args.source)
    if not groups:
        print("Nothing to review.")
    for label, entries in groups.items():
        print(f"== {label or '(no guess)'}: {sum(len(e.turns) for e in entries)} messages")
        for entry in entries[: args.limit]:
            ids = ",".join(str(t.id) for t in entry.turns)
            reasons = ",".join(sorted({r for t in entry.turns for r in t.reasons}))
            print(f"  [{ids}] value {entry.value:.2f} ({reasons}) {entry.text[:100]}")
    return 0


def learn_decide(args: argparse.Namespace) -> int:
    from supportbot.learning import review
    from supportbot.learning.labels import known_labels
    from supportbot.learning.store import LearningStore

    store, label = LearningStore(args.db), getattr(args, "label", None)
    try:
        labels, notice = clusters.accept_labels(known_labels(), label, getattr(args, "new_intent", False))
        if getattr(args, "all", False):
            changed = review.accept_all(store, labels, args.source)
        else:
            changed = review.decide(store, args.ids, args.decision, labels, label)
    except review.ReviewError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"{changed} {args.decision}" + (f"\n{notice}" if notice else ""))
    return 0


def learn_export(args: argparse.Namespace) -> int:
    from supportbot.learning import export
    from supportbot.learning.store import LearningStore

    result = export.export(LearningStore(args.db))
    print(f"{result.training} examples to {export.TRAINING_FILE}, {result.heldout} held out to "
          f"{export.HELDOUT_FILE}, {result.already_in_data} already in data/nlu")
    return 0


def _rasa_servers(args: argparse.Namespace) -> Tuple[List[str], Optional[str]]:
    urls = args.rasa_url or [u.strip() for u in settings.get("SUPPORTBOT_RASA_URLS").split(",") if u.strip()]
    token = args.token or local_secrets.load(create=False).get("RASA_AUTH_TOKEN")
    return urls, token


def _print_verdict(verdict) -> int:
    print("Promoted." if verdict.promoted else "Not promoted:")
    for reason in verdict.reasons:
        print(f"  - {reason}")
    for url, outcome in verdict.swaps.items():
        print(f"  {url}: model loaded in {outcome}" if not outcome.startswith("failed") else f"  {url}: {outcome}")
    if verdict.report:
        print(f"Report: {verdict.report}")
    return 0 if verdict.promoted else 1


def learn_retrain(args: argparse.Namespace) -> int:
    from supportbot.learning import retrain
    from supportbot.learning.store import LearningStore

    urls, token = _rasa_servers(args)
    return _print_verdict(retrain.retrain(LearningStore(args.db), rasa_urls=urls, token=token))


def learn_rollback(args: argparse.Namespace) -> int:
    from supportbot.learning import retrain

    urls, token = _rasa_servers(args)
    return _print_verdict(retrain.rollback(rasa_urls=urls, token=token))


def bench(args: argparse.Namespace) -> int:
    from supportbot.benchmark import command

    return command.run(args)


def thresholds(args: argparse.Namespace) -> int:
    from supportbot.benchmark import calibration

    return calibration.command(args.predictions, args.misroute_cost, args.default, args.min_support)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="supportbot", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = root.add_subparsers(dest="command", required=True)
    p = commands.add_parser("run", help="start everything with embedded defaults")
    p.add_argument("--model", default="models/supportbot.tar.gz")
    p.add_argument("--port", type=int, default=settings.integer("RASA_PORT"))
    p.add_argument("--billing-port", type=int, default=settings.integer("BILLING_PORT"))
    p.add_argument("--demo-port", type=int, default=settings.integer("DEMO_PORT"))
    p.add_argument("--admin-port", type=int, default=settings.integer("SUPPORTBOT_ADMIN_PORT"))
    p.add_argument("--profile", help="run profiles/PROFILE/ instead (e.g. production: docs/deploy.md); "
                                     "its ports are in its profile.yml")
    p.set_defaults(func=run)
    p = commands.add_parser("shell", help="chat with the running assistant in the terminal")
    p.add_argument("--rasa-url", default=settings.get("RASA_URL"))
    p.add_argument("--sender", help="conversation id (default: a new one)")
    p.set_defaults(func=shell)
    p = commands.add_parser("handoffs", help="list handoff records; answer them live (docs/handoff.md)")
    handoff_command.add_arguments(p)
    p.add_argument("--all", action="store_true", help="include resolved ones")
    p.set_defaults(func=handoffs)
    p = commands.add_parser("resume", help="hand a paused conversation back to the bot")
    p.add_argument("sender_id")
    p.add_argument("--rasa-url", default=settings.get("RASA_URL"))
    p.add_argument("--token", default=settings.get("RASA_AUTH_TOKEN"))
    p.set_defaults(func=resume)
    p = commands.add_parser("check-nlu", help="held-out NLU scores with pass/fail thresholds")
    p.add_argument("--model", default="models/supportbot.tar.gz")
    p.add_argument("--nlu", default="tests/nlu")
    p.add_argument("--out", default="results/nlu")
    p.add_argument("--min-intent-f1", type=float, default=0.90)
    p.add_argument("--min-entity-f1", type=float, default=0.85)
    p.add_argument("--reference", default="tests/nlu/reference_scores.json",
                   help="scores to compare with: the model on main (default: %(default)s)")
    p.add_argument("--max-drop", type=float, default=0.05,
                   help="fail when an intent or FAQ topic loses more F1 than this (default: %(default)s)")
    p.add_argument("--min-support", type=int, default=5,
                   help="test examples a label needs to fail on a drop (default: %(default)s)")
    p.add_argument("--write-reference", action="store_true",
                   help="after an intended change: write these scores to --reference (floors still apply)")
    p.set_defaults(func=check_nlu)
    p = commands.add_parser("learn", help="the learning loop (docs/learning.md)")
    learn = p.add_subparsers(dest="learn_command", required=True)
    p = learn.add_parser("collect", help="read Rasa's event broker into the learning store")
    p.add_argument("--events", help="the SQL event broker's database, or amqp://...?queue=NAME for "
                                    "RabbitMQ (default SUPPORTBOT_EVENTS_DB_URL)")
    p.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")
    p.add_argument("--follow", action="store_true", help="keep collecting until stopped")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between reads with --follow")
    p.set_defaults(func=learn_collect)
    p = learn.add_parser("import", help="labelled history from a UTF-8 CSV (text,intent[,source])")
    p.add_argument("file")
    p.add_argument("--source", help="where the rows come from (default: the file's name)")
    p.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")
    p.set_defaults(func=learn_import)
    p = learn.add_parser("queue", help="candidates to review, by suggested intent, most valuable first")
    p.add_argument("--source", help="only items from this source or channel")
    p.add_argument("--limit", type=int, default=20, help="entries shown per intent")
    p.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")
    p.set_defaults(func=learn_queue)
    for decision, help_text in (("accept", "accept items (with --label: relabel them)"),
                                ("reject", "reject items: not training data"),
                                ("out-of-scope", "mark items as questions the assistant should not answer")):
        p = learn.add_parser(decision, help=help_text)
        p.add_argument("ids", nargs="*", type=int, help="item ids from `learn queue`")
        if decision == "accept":
            p.add_argument("--label", help="the right intent or faq/<topic>")
            p.add_argument("--new-intent", action="store_true",
                           help="--label is a new intent, not yet in domain/ (`learn clusters`)")
            p.add_argument("--all", action="store_true", help="every pending item that carries a label")
            p.add_argument("--source", help="with --all: only items from this source")
        p.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")
        p.set_defaults(func=learn_decide, decision={"accept": "accepted", "reject": "rejected",
                                                     "out-of-scope": "out_of_scope"}[decision])
    p = learn.add_parser("correct", help="an agent's correction: the intent a conversation's turn really had")
    corrections.add_correct_arguments(p)
    p.set_defaults(func=corrections.run_correct)
    p = learn.add_parser("tickets", help="handoff tickets resolved under another intent become corrections")
    corrections.add_tickets_arguments(p)
    p.set_defaults(func=corrections.run_tickets)
    p = learn.add_parser("routing", help="handoffs agents moved to another team: where routing.yml is wrong")
    p.add_argument("--since", help="only moves at or after this date or time (UTC)")
    p.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")
    p.set_defaults(func=corrections.run_routing)
    p = learn.add_parser("noise", help="training examples whose label looks wrong (cleanlab), as CSV")
    noise.add_arguments(p)
    p.set_defaults(func=noise.run)
    p = learn.add_parser("clusters", help="fallback messages no intent explains, grouped: new intents?")
    clusters.add_arguments(p)
    p.set_defaults(func=clusters.run)
    p = learn.add_parser("export", help="accepted items to data/nlu/learned/ and tests/learned/")
    p.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")
    p.set_defaults(func=learn_export)
    for verb, help_text, func in (
            ("retrain", "export, train, gate against the served model, promote and swap (exit 1: not promoted)",
             learn_retrain),
            ("rollback", "serve the previous model again, in every Rasa server", learn_rollback)):
        p = learn.add_parser(verb, help=help_text)
        p.add_argument("--rasa-url", action="append", help="a Rasa server to swap (default SUPPORTBOT_RASA_URLS)")
        p.add_argument("--token", default=settings.get("RASA_AUTH_TOKEN"),
                       help="Rasa's API token (default RASA_AUTH_TOKEN, else var/secrets.env)")
        if verb == "retrain":
            p.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")
        p.set_defaults(func=func)
    p = learn.add_parser("drift", help="NLU health per day and intent; exit 1 on alerts, posted to Slack")
    drift.add_arguments(p)
    p.set_defaults(func=drift.run)
    p = commands.add_parser("report", help="containment, escalation, fallback, CSAT, thumbs, first-contact "
                            "resolution per channel, intent and day (report.md + plots)")
    analytics.add_arguments(p)
    p.set_defaults(func=analytics.run)
    p = commands.add_parser("bench", help="benchmark an NLU config against Rasa's default pipeline")
    bench_arguments(p)
    p.set_defaults(func=bench)
    p = commands.add_parser("thresholds", help="per-intent fallback thresholds from benchmark predictions")
    p.add_argument("predictions", type=Path, help="predictions-candidate.jsonl written by `supportbot bench` "
                   "on validation data (never on the held-out test set)")
    p.add_argument("--misroute-cost", type=float, default=2.0,
                   help="what a wrong answer costs, in escalations (default: %(default)s)")
    p.add_argument("--default", type=float, default=0.4, help="threshold for intents with too few predictions")
    p.add_argument("--min-support", type=int, default=5, help="predictions an intent needs for its own threshold")
    p.set_defaults(func=thresholds)
    return root


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
