"""`python -m supportbot.benchmark.faults`: the production-shaped stack under a steady light load,
through four faults, one after another (issue #18 item 4; docs/benchmarks.md#fault-matrix):

- `rasa_kill`: SIGKILL one of the two Rasa instances, start it again after --down seconds;
- `postgres_restart`: stop the Postgres cluster that holds the tracker store, the handoff store and
  billing (a private one this script creates: initdb in a temp dir, a free port, trust auth; the
  machine's PostgreSQL service is never touched), start it again after --down seconds;
- `rabbitmq_stop`: `rabbitmqctl stop_app` on the machine's RabbitMQ for --broker-down seconds, then
  `start_app` (in a `finally`, so Ctrl-C restores it too);
- `billing_slow`: a delaying TCP proxy between the action servers and billing adds 3 s to every
  request for --slow seconds.

The stack is the production profile's (supportbot/profile.py: billing, 2 action servers, 2 Rasa
instances on Postgres + the Redis lock + the RabbitMQ event broker, nginx) on its own ports, its own
Postgres cluster and its own queue (`supportbot_faults_events`). The demo store, admin app and
learning collector are left out: the script reads the queue itself.

The load is a small built-in driver rather than Locust: it needs every turn's start and end time and
the reply texts, to say what each customer saw and when turns succeeded again. It holds the load
test's conversations (checker.Conversation), half over REST and half over socket.io, through nginx.

For each fault: what customers saw (every turn classified: `classify`), what was lost (the load
checker over the tracker store and billing; tracker events against events that reached the queue)
and the recovery time (`recovery_seconds`). Writes results/bench/faults/<time>/report.{md,json}.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import glob
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set

from supportbot.benchmark.load import checker
from supportbot.benchmark.report import publish

FAULTS = ("rasa_kill", "postgres_restart", "rabbitmq_stop", "billing_slow")
QUEUE = "supportbot_faults_events"
# The load test's conversations (load/locustfile.py; importing it would load Locust and gevent).
SCENARIOS = {
    "order_status": ["where is my order 4817263", "alice@example.com", "thanks"],
    "refund": ["refund for order 5529002 please", "bob@example.com", "$20", "wrong colour", "yes please"],
    "faq": ["hi", "how long does delivery take?", "which payment methods do you take?", "thanks"],
}
REFUND_DONE = re.compile(r"Done: refund (R-\d+)")
# The assistant's own "I can't do that now" answers (domain/shared.yml, domain/tickets.yml).
ERROR_TEXT = re.compile(r"can't reach|try again in a few minutes|something went wrong", re.IGNORECASE)

# What a customer saw on one turn. The first two are a message a customer can read and act on;
# the rest leave the customer with an error page, a dropped chat or nothing.
ANSWERED, ERROR_MESSAGE = "answered", "error message"
HTTP_ERROR, NO_REPLY, TIMEOUT, DISCONNECTED = "HTTP error", "empty reply", "timeout", "disconnected"
OUTCOMES = (ANSWERED, ERROR_MESSAGE, HTTP_ERROR, NO_REPLY, TIMEOUT, DISCONNECTED)
CLEAR = (ANSWERED, ERROR_MESSAGE)


@dataclass
class Turn:
    sender: str
    channel: str
    started: float  # time.monotonic()
    ended: float
    outcome: str
    detail: str = ""


def classify(status: Optional[int], texts: Optional[Sequence[str]], error: Optional[str] = None) -> str:
    """One turn as the customer saw it. `error` is "timeout" when no answer came in time, any other
    text when the connection failed or dropped; `status` is the HTTP status (None over socket.io)."""
    if error == "timeout":
        return TIMEOUT
    if error:
        return DISCONNECTED
    if status is not None and status != 200:
        return HTTP_ERROR
    texts = [t for t in texts or [] if t and t.strip()]
    if not texts:
        return NO_REPLY
    if any(ERROR_TEXT.search(t) for t in texts):
        return ERROR_MESSAGE
    return ANSWERED


def outcome_counts(turns: Iterable[Turn], start: float, end: float) -> Dict[str, int]:
    """Turns started in [start, end), by outcome (every outcome present, zeros included)."""
    counts = Counter(t.outcome for t in turns if start <= t.started < end)
    return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}


def answered_rate(turns: Iterable[Turn], start: float, end: float) -> float:
    """Answered turns per second among those started in [start, end)."""
    if end <= start:
        raise ValueError(f"empty window: {start} to {end}")
    return sum(1 for t in turns if start <= t.started < end and t.outcome == ANSWERED) / (end - start)


def recovery_seconds(turns: Sequence[Turn], fault_end: float, baseline: float, observed_until: float,
                     window: float = 10.0, ratio: float = 0.8) -> Optional[float]:
    """Seconds from `fault_end` until turns succeed again at the baseline rate: the first moment t
    (the fault's end, or a turn's start after it) from which every turn started within `window`
    seconds was answered, at least `ratio` x `baseline` answered turns per second. None when that
    never happened before `observed_until`."""
    if baseline <= 0 or window <= 0:
        raise ValueError("the baseline rate and the window must be above 0")
    starts = sorted(t.started for t in turns if t.started >= fault_end)
    for moment in [fault_end, *starts]:
        if moment + window > observed_until:
            return None
        inside = [t for t in turns if moment <= t.started < moment + window]
        if all(t.outcome == ANSWERED for t in inside) and len(inside) / window >= ratio * baseline:
            return round(moment - fault_end, 1)
    return None


def broker_comparison(tracker: Dict[str, int], broker: Dict[str, int]) -> Dict[str, int]:
    """Events per conversation in the tracker store against events that reached the queue:
    `missing` ones the tracker has and the queue never got, `extra` ones the queue got beyond
    the tracker's (published, then the tracker write failed, or published twice)."""
    senders = set(tracker) | set(broker)
    return {
        "tracker_events": sum(tracker.values()), "published_events": sum(broker.values()),
        "missing": sum(max(0, tracker.get(s, 0) - broker.get(s, 0)) for s in senders),
        "extra": sum(max(0, broker.get(s, 0) - tracker.get(s, 0)) for s in senders),
        "conversations_short": sum(1 for s in senders if broker.get(s, 0) < tracker.get(s, 0)),
    }


class Driver:
    """Steady light load: `workers` customers (even ones over REST, odd ones over socket.io), each
    holding one conversation after another with a pause of 0.5-1.5 s between turns, until stopped.
    A conversation ends at its first turn that was not answered, as a customer would give up."""

    def __init__(self, host: str, workers: int, turn_timeout: float, seed: int) -> None:
        self.host, self.workers, self.turn_timeout = host, workers, turn_timeout
        self.random = random.Random(seed)
        self.turns: List[Turn] = []
        self.conversations: List[checker.Conversation] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads: List[threading.Thread] = []

    def start(self) -> Driver:
        for worker in range(self.workers):
            channel = "rest" if worker % 2 == 0 else "socketio"
            thread = threading.Thread(target=self._run, args=(channel,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.turn_timeout + 30)

    def _run(self, channel: str) -> None:
        while not self._stop.is_set():
            with self._lock:
                scenario = self.random.choices(list(SCENARIOS), weights=(3, 1, 3))[0]
            try:
                self._hold(scenario, channel)
            except Exception as error:  # the load must go on through every fault
                print(f"driver: {channel} {scenario}: {error!r}", file=sys.stderr)
                self._stop.wait(1)

    def _record(self, turn: Turn) -> None:
        with self._lock:
            self.turns.append(turn)

    def _hold(self, scenario: str, channel: str) -> None:
        conversation = checker.Conversation(sender=f"fault-{uuid.uuid4().hex[:16]}", channel=channel,
                                            scenario=scenario)
        session = None
        try:
            if channel == "socketio":
                session = self._socket_session(conversation)
                if session is None:
                    return
            for text in SCENARIOS[scenario]:
                if self._stop.is_set():
                    break
                conversation.in_flight = text
                send = self._rest_turn if session is None else self._socket_turn
                turn, texts = send(conversation, session, text)
                self._record(turn)
                if turn.outcome != ANSWERED:
                    break
                conversation.in_flight = None
                conversation.sent.append(text)
                conversation.refunds += REFUND_DONE.findall("\n".join(texts))
                self._stop.wait(self.random.uniform(0.5, 1.5))
        finally:
            if session is not None:
                with contextlib.suppress(Exception):
                    session.disconnect()
            with self._lock:
                self.conversations.append(conversation)

    def _rest_turn(self, conversation: checker.Conversation, _: None, text: str):
        import requests

        started = time.monotonic()
        try:
            response = requests.post(f"{self.host}/webhooks/rest/webhook", timeout=self.turn_timeout,
                                     json={"sender": conversation.sender, "message": text})
        except requests.Timeout:
            return Turn(conversation.sender, "REST", started, time.monotonic(), TIMEOUT), []
        except requests.RequestException as error:
            return Turn(conversation.sender, "REST", started, time.monotonic(), DISCONNECTED,
                        type(error).__name__), []
        texts = []
        if response.status_code == 200:
            with contextlib.suppress(ValueError, AttributeError, TypeError):  # not Rasa's list of messages
                texts = [m.get("text") or "" for m in response.json()]
        outcome = classify(response.status_code, texts)
        detail = "" if outcome == ANSWERED else (f"HTTP {response.status_code} " + " | ".join(texts))[:200]
        return Turn(conversation.sender, "REST", started, time.monotonic(), outcome, detail), texts

    def _socket_session(self, conversation: checker.Conversation):
        import queue

        import socketio

        client = socketio.Client(reconnection=False)
        inbox: queue.Queue = queue.Queue()
        for event in ("session_confirm", "bot_uttered", "bot_turn_done", "disconnect"):
            client.on(event, lambda data=None, event=event: inbox.put((event, data)))
        started = time.monotonic()
        try:
            # Long polling, as the load test: the websocket transport needs websocket-client.
            client.connect(self.host, transports=["polling"], wait_timeout=self.turn_timeout)
            client.emit("session_request", {})
            event, data = inbox.get(timeout=self.turn_timeout)
            if event != "session_confirm":
                raise ConnectionError(f"{event} before session_confirm")
        except Exception as error:  # connecting is the customer's first wait: count it as a turn
            with contextlib.suppress(Exception):
                client.disconnect()
            self._record(Turn(conversation.sender, "socket.io", started, time.monotonic(), DISCONNECTED,
                              f"connect: {type(error).__name__}"))
            self._stop.wait(1)
            return None
        conversation.sender = data["session_id"]
        client.inbox = inbox
        return client

    def _socket_turn(self, conversation: checker.Conversation, client, text: str):
        import queue

        started = time.monotonic()
        texts: List[str] = []
        error = None
        try:
            client.emit("user_uttered", {"session_id": conversation.sender, "message": text})
            while True:
                event, data = client.inbox.get(timeout=max(0.1, started + self.turn_timeout - time.monotonic()))
                if event == "bot_uttered":
                    texts.append((data or {}).get("text") or "")
                elif event == "bot_turn_done":
                    break
                elif event == "disconnect":
                    error = "socket dropped"
                    break
        except queue.Empty:
            error = "timeout"
        except Exception as dropped:  # emit on a closed socket
            error = type(dropped).__name__
        outcome = classify(None, texts, error)
        detail = "" if outcome == ANSWERED else (error or " | ".join(texts))[:200]
        return Turn(conversation.sender, "socket.io", started, time.monotonic(), outcome, detail), texts


class FaultProxy:
    """A TCP proxy on loopback, in a thread of its own, that can hold every chunk a client sends
    for `delay` seconds before passing it on (one HTTP request is one chunk here), or be `cut()`:
    its connections are dropped and new ones closed at once, as a server that went away, until
    `restore()`."""

    def __init__(self, upstream_port: int) -> None:
        from supportbot.processes import free_port

        self.upstream_port, self.port, self.delay = upstream_port, free_port(), 0.0
        self.down = False
        self._writers: Set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(self, *_) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def cut(self) -> None:
        self.down = True
        asyncio.run_coroutine_threadsafe(self._drop_all(), self._loop).result(5)

    def restore(self) -> None:
        self.down = False

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer, delayed=True), self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    delayed: bool = False) -> None:
        try:
            while chunk := await reader.read(65536):
                if delayed and self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class PrivatePostgres:
    """A throwaway Postgres cluster (Debian's binaries, trust auth, loopback, a free port) that
    this script may stop and start; run as the `postgres` user when this process is root."""

    def __init__(self, directory: Path) -> None:
        from supportbot.processes import free_port

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
        if not found:
            raise FaultError("No Postgres binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql).")
        self.bin, self.directory, self.port = Path(found[-1]).parent, directory, free_port()
        self.data = directory / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run(prefix + list(command), capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise FaultError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")

    def init(self) -> PrivatePostgres:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to `postgres`
            os.chmod(self.directory.parent, 0o711)
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "postgres.log"),
                  "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


class FaultError(RuntimeError):
    """The fault matrix cannot run here; the message says why."""


def rabbitmqctl(command: str) -> None:
    result = subprocess.run(["rabbitmqctl", command], capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise FaultError(f"rabbitmqctl {command} failed: {result.stderr.strip()}")


@contextlib.contextmanager
def rabbitmq_stopped() -> Iterator[None]:
    """The machine's RabbitMQ application stopped, and started again however the block ends."""
    rabbitmqctl("stop_app")
    try:
        yield
    finally:
        rabbitmqctl("start_app")


def queue_counts(rabbitmq_url: str, queue: str, senders: Iterable[str]) -> Dict[str, int]:
    """Drain `queue` (acknowledging every message) and count the events of `senders` in it."""
    from supportbot.learning.collector import RabbitMQEvents

    wanted, counts = set(senders), Counter()
    events = RabbitMQEvents(f"{rabbitmq_url.split('?')[0]}?queue={queue}")
    try:
        while messages := events.read(500):
            for message in messages:
                sender = json.loads(message.body).get("sender_id")
                if sender in wanted:
                    counts[sender] += 1
            events.ack(messages)
    finally:
        events.close()
    return dict(counts)


def tracker_counts(tracker_db_url: str, senders: Iterable[str]) -> Dict[str, int]:
    import sqlalchemy as sa

    wanted = set(senders)
    engine = sa.create_engine(tracker_db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT sender_id, count(*) FROM events GROUP BY sender_id"))
            return {sender: n for sender, n in rows if sender in wanted}
    finally:
        engine.dispose()


def delete_queue(rabbitmq_url: str, queue: str) -> None:
    import aio_pika

    async def delete() -> None:
        connection = await aio_pika.connect(rabbitmq_url.split("?")[0])
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(queue)

    with contextlib.suppress(Exception):
        asyncio.run(delete())


def free_block(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    import socket

    from supportbot.processes import free_port

    for _ in range(50):
        first = free_port()
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise FaultError(f"no {count} consecutive free ports")


def distinct_ports(base, free_port) -> Dict[str, int]:
    """Free ports for every server of the profile `base`, none shared (the Rasa instances and the
    action servers each take a block from their first port)."""
    while True:
        ports = {name: free_port() for name in ("public", "actions", "billing", "demo", "admin")}
        ports.update(rasa=free_block(base.rasa_instances), action_servers=free_block(base.action_servers))
        taken = [p for name, p in ports.items() if name not in ("rasa", "action_servers")]
        taken += [ports["rasa"] + i for i in range(base.rasa_instances)]
        taken += [ports["action_servers"] + i for i in range(base.action_servers)]
        if len(set(taken)) == len(taken):
            return ports


@dataclass
class Stack:
    public: str
    rasa: List  # processes.ServerProcess of each Rasa instance
    proxy: FaultProxy
    postgres: PrivatePostgres
    tracker_db: str
    billing_db: str
    rabbitmq_url: str
    servers: List = field(default_factory=list)


@contextlib.contextmanager
def production_stack(tmp: Path, model: Path, root: Path, rabbitmq_url: str, redis_url: str,
                     instances: Optional[int] = None) -> Iterator[Stack]:
    """The production profile (supportbot/profile.py) on free ports, a private Postgres cluster and
    its own queue; the action servers reach billing through a FaultProxy. `instances`: Rasa
    instances and action servers (default: the profile's)."""
    from supportbot import local_secrets, processes, profile, settings
    from supportbot.admin import accounts as admin_accounts

    postgres = PrivatePostgres(tmp / "postgres").init()
    try:
        os.environ.update(SUPPORTBOT_POSTGRES_URL=postgres.url, SUPPORTBOT_REDIS_URL=redis_url,
                          SUPPORTBOT_RABBITMQ_URL=rabbitmq_url)
        base = profile.load("production", root)
        if instances:
            base = dataclasses.replace(base, rasa_instances=instances, action_servers=instances)
        ports = distinct_ports(base, processes.free_port)
        chosen = dataclasses.replace(base, name="faults", ports=ports, rabbitmq_queue=QUEUE)
        secrets = local_secrets.load(create=True)
        secrets["BILLING_API_KEYS"] = settings.get("BILLING_API_KEYS") or local_secrets.billing_api_keys(secrets)
        servers = [s for s in profile.servers(chosen, model, root, secrets, admin_accounts.local_defaults()[0])
                   if s.name not in ("demo store", "admin app", "learning collector")]
        delete_queue(rabbitmq_url, QUEUE)  # what an earlier run left
        with FaultProxy(ports["billing"]) as proxy:
            for server in servers:
                if server.name == "action server":
                    server.env["BILLING_URL"] = f"http://127.0.0.1:{proxy.port}"
            with processes.running(servers, timeout=600):
                yield Stack(f"http://127.0.0.1:{ports['public']}", [s for s in servers if s.name == "Rasa server"],
                            proxy, postgres, profile.database_url(postgres.url, chosen.databases["tracker"]),
                            profile.database_url(postgres.url, chosen.databases["BILLING_DB_URL"]), rabbitmq_url,
                            servers)
        delete_queue(rabbitmq_url, QUEUE)
    finally:
        with contextlib.suppress(FaultError):
            postgres.stop()


@dataclass
class Injected:
    started: float
    ended: float  # when the fault was undone (the restart issued, the broker back, the delay off)
    what: str


def inject(fault: str, stack: Stack, args: argparse.Namespace) -> Injected:
    started = time.monotonic()
    if fault == "rasa_kill":
        victim = stack.rasa[0]
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait(10)
        time.sleep(args.down)
        victim.start()
        ended = time.monotonic()
        victim.wait_healthy(600)
        return Injected(started, ended, f"SIGKILL Rasa instance 1 of 2; started again after {args.down:g} s, "
                                        f"answering /status {time.monotonic() - ended:.0f} s later")
    if fault == "postgres_restart":
        stack.postgres.stop()
        time.sleep(args.down)
        stack.postgres.start()
        return Injected(started, time.monotonic(), f"Postgres (tracker, handoff store, billing) stopped "
                                                   f"(fast shutdown), started again after {args.down:g} s")
    if fault == "rabbitmq_stop":
        with rabbitmq_stopped():
            time.sleep(args.broker_down)
        return Injected(started, time.monotonic(),
                        f"RabbitMQ `stop_app`, `start_app` after {args.broker_down:g} s")
    if fault == "billing_slow":
        stack.proxy.delay = 3.0
        try:
            time.sleep(args.slow)
        finally:
            stack.proxy.delay = 0.0
        return Injected(started, time.monotonic(), f"billing answers 3 s late for {args.slow:g} s")
    raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")


def run_fault(fault: str, stack: Stack, args: argparse.Namespace, seed: int) -> Dict:
    """One row of the matrix: a fresh load, a baseline, the fault, recovery, then the checks."""
    refunds_before = checker.last_refund_number(stack.billing_db)
    driver = Driver(stack.public, args.workers, args.turn_timeout, seed).start()
    begun = time.monotonic()
    try:
        time.sleep(args.baseline)
        injected = inject(fault, stack, args)
        deadline = injected.ended + args.max_after
        while True:
            now = time.monotonic()
            baseline = answered_rate(driver.turns, begun, injected.started)
            recovered = recovery_seconds(list(driver.turns), injected.ended, baseline, now, args.window) \
                if baseline > 0 else None
            if now >= deadline or (recovered is not None and now >= injected.ended + args.min_after):
                break
            time.sleep(2)
    finally:
        driver.stop()
    time.sleep(args.settle)  # Rasa publishes to the broker in background tasks
    return fault_row(fault, injected, driver, baseline, recovered, now, stack, refunds_before)


def fault_row(fault: str, injected: Injected, driver: Driver, baseline: float, recovered: Optional[float],
              observed_until: float, stack: Stack, refunds_before: int) -> Dict:
    turns = driver.turns
    affected_until = injected.ended + recovered if recovered is not None else observed_until
    seen = outcome_counts(turns, injected.started, affected_until)
    problems = checker.check(driver.conversations, stack.tracker_db, stack.billing_db, refunds_before)
    senders = [c.sender for c in driver.conversations]
    broker = broker_comparison(tracker_counts(stack.tracker_db, senders),
                               queue_counts(stack.rabbitmq_url, QUEUE, senders))
    failed = Counter(f"{t.outcome}: {t.detail}" for t in turns if t.outcome != ANSWERED)
    return {
        "fault": fault, "what": injected.what, "fault_seconds": round(injected.ended - injected.started, 1),
        "baseline_answered_per_s": round(baseline, 2), "turns": len(turns), "conversations": len(senders),
        "during": seen, "clear": sum(seen[o] for o in CLEAR),
        "not_clear": sum(n for o, n in seen.items() if o not in CLEAR),
        "examples": [f"{n} x {text}" for text, n in failed.most_common(5)],
        "store_problems": len(problems), "store_problem_examples": problems[:10],
        "broker": broker, "recovery_s": recovered,
        "slowest_turn_s": round(max((t.ended - t.started for t in turns), default=0), 1),
    }


def to_markdown(result: Dict) -> str:
    lines = [f"# Fault matrix ({result['started']})", "", f"Command: `{result['command']}`  ",
             f"Production profile: 2 Rasa instances, 2 action servers, nginx, Postgres (private cluster), "
             f"Redis lock, RabbitMQ queue `{QUEUE}`. Load: {result['workers']} customers (half REST, half "
             f"socket.io), a fresh load per fault, {result['baseline_s']:g} s baseline before it.", "",
             "| fault | what was done | turns in the fault window: clear / not clear | what customers saw "
             "(not answered) | store check | broker: tracker events / published (missing, extra) | "
             "recovery s |", "|---|---|---:|---|---:|---|---:|"]
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"| {row['fault']} | not measured: {row['error']} | | | | | |")
            continue
        seen = ", ".join(f"{n} {o}" for o, n in row["during"].items() if n and o != ANSWERED) or "nothing else"
        broker = row["broker"]
        recovery = "not within the run" if row["recovery_s"] is None else f"{row['recovery_s']:g}"
        lines.append(
            f"| {row['fault']} | {row['what']} | {row['clear']} / {row['not_clear']} | {seen} | "
            f"{'whole' if not row['store_problems'] else str(row['store_problems']) + ' problems'} | "
            f"{broker['tracker_events']} / {broker['published_events']} "
            f"({broker['missing']}, {broker['extra']}) | "
            f"{recovery} |")
    lines += ["", "Clear: the customer read an answer or the assistant's own \"can't reach ... try again\" "
              "message. Not clear: an HTTP error, an empty reply, no answer within "
              f"{result['turn_timeout']:g} s (timeout) or a dropped socket. The fault window runs from the fault "
              "until recovery. Recovery: seconds from the fault's end (restart issued, broker back, delay off) "
              f"until every turn started within {result['window']:g} s is answered, at 80% of the baseline rate.",
              ""]
    for row in result["rows"]:
        if row.get("examples") or row.get("store_problem_examples"):
            lines.append(f"**{row['fault']}** (baseline {row.get('baseline_answered_per_s')} answered turns/s, "
                         f"{row.get('turns')} turns, slowest {row.get('slowest_turn_s')} s):")
            lines += [f"- {e}" for e in row.get("examples", [])]
            lines += [f"- store: {p}" for p in row.get("store_problem_examples", [])]
            lines.append("")
    machine = result["machine"]
    lines.append(f"Machine: {machine['cpus']} CPUs, Python {machine['python']}, niceness {machine['niceness']}, "
                 f"load average at start {machine['load_average']}.")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m supportbot.benchmark.faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faults", default=",".join(FAULTS), help="comma-separated (default: %(default)s)")
    p.add_argument("--model", type=Path, default=Path("models/supportbot.tar.gz"), help="(default: %(default)s)")
    p.add_argument("--workers", type=int, default=4, help="simulated customers (default: %(default)s)")
    p.add_argument("--baseline", type=float, default=20,
                   help="seconds of load before each fault (default: %(default)s)")
    p.add_argument("--down", type=float, default=10, help="seconds a killed Rasa instance or the stopped Postgres "
                   "stays down (default: %(default)s)")
    p.add_argument("--broker-down", type=float, default=30,
                   help="seconds RabbitMQ stays stopped (default: %(default)s)")
    p.add_argument("--slow", type=float, default=30,
                   help="seconds billing answers 3 s late (default: %(default)s)")
    p.add_argument("--turn-timeout", type=float, default=30, help="a turn with no answer by then is a timeout "
                   "(default: %(default)s)")
    p.add_argument("--window", type=float, default=10, help="recovery window in seconds (default: %(default)s)")
    p.add_argument("--min-after", type=float, default=15, help="seconds to keep the load on after each fault "
                   "(default: %(default)s)")
    p.add_argument("--max-after", type=float, default=150, help="give up waiting for recovery after this many "
                   "seconds (default: %(default)s)")
    p.add_argument("--settle", type=float, default=5, help="seconds between the load's end and the checks "
                   "(default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results/bench/faults"),
                   help="reports go to OUT/<time>/ (default: %(default)s)")
    return p


def problems_in(args: argparse.Namespace) -> List[str]:
    problems = [f"--faults: unknown {f!r} (known: {', '.join(FAULTS)})"
                for f in args.faults.split(",") if f not in FAULTS]
    if not args.model.is_file():
        problems.append(f"--model {args.model}: no such file (make train)")
    if args.workers < 1:
        problems.append("--workers must be at least 1")
    if min(args.baseline, args.window, args.turn_timeout) <= 0 or min(args.down, args.broker_down, args.slow) < 0:
        problems.append("--baseline, --window and --turn-timeout must be above 0, the fault lengths not below 0")
    if "rabbitmq_stop" in args.faults.split(",") and shutil.which("rabbitmqctl") is None:
        problems.append("rabbitmq_stop needs rabbitmqctl (the machine's RabbitMQ)")
    return problems


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[List[str]] = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from supportbot import settings
    from supportbot.benchmark.command import machine_info

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    problems = problems_in(args)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # so every `finally` runs: RabbitMQ started, servers stopped
    started = datetime.now(timezone.utc)
    out = args.out / started.strftime("%Y%m%dT%H%M%SZ")
    result = {"started": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_info(),
              "command": "python -m supportbot.benchmark.faults " + shlex.join(argv), "workers": args.workers,
              "baseline_s": args.baseline, "turn_timeout": args.turn_timeout, "window": args.window, "rows": []}
    rabbitmq_url, redis_url = settings.get("SUPPORTBOT_RABBITMQ_URL"), settings.get("SUPPORTBOT_REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        print("starting the production-shaped stack (a few minutes)", file=sys.stderr)
        with production_stack(Path(tmp), args.model.resolve(), Path.cwd(), rabbitmq_url, redis_url) as stack:
            for seed, fault in enumerate(args.faults.split(",")):
                print(f"fault {fault}", file=sys.stderr)
                try:
                    row = run_fault(fault, stack, args, seed)
                except (RuntimeError, TimeoutError, OSError, SQLAlchemyError) as error:
                    row = {"fault": fault, "error": str(error).splitlines()[0][:300]}
                result["rows"].append(row)
                publish(result, to_markdown(result), out)  # so far, should a later fault stop the run
    publish(result, to_markdown(result), out)
    return 1 if any("error" in row for row in result["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
