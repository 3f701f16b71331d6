"""Start the assistant's servers as child processes and wait until they answer.

Used by `supportbot run` and by the test suite, so both start the servers the same way.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence
from urllib.parse import urlsplit

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server, or (health_url None) a worker that serves nothing and is healthy while it runs."""

    def __init__(self, name: str, command: Sequence[str], health_url: Optional[str], log_path: Path,
                 env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None) -> None:
        self.name, self.command, self.health_url, self.log_path = name, list(command), health_url, log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.health_url is None:
                if self.process is not None and self.process.poll() is None:
                    return
                time.sleep(0.5)
                continue
            try:
                if requests.get(self.health_url, timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, grace: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # Each server leads its own process group (start_new_session): signalling the group
        # stops the workers it forked too, and nothing else.
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=5)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    @property
    def url(self) -> str:
        """scheme://host:port of the health URL: the server's base URL."""
        parts = urlsplit(self.health_url)
        return f"{parts.scheme}://{parts.netloc}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextmanager
def running(servers: List[ServerProcess], timeout: float = 180) -> Iterator[List[ServerProcess]]:
    """Start the servers in order, each healthy before the next; stop them all on exit."""
    started: List[ServerProcess] = []
    try:
        for server in servers:
            started.append(server.start())
            server.wait_healthy(timeout)
        yield started
    finally:
        for server in reversed(started):
            server.stop()


def billing_server(port: int, db_url: str, log_dir: Path, env: Optional[Dict[str, str]] = None,
                   reset: bool = False) -> ServerProcess:
    command = [sys.executable, "-m", "supportbot.billing", "--host", "127.0.0.1",
               "--port", str(port), "--db", db_url]
    return ServerProcess("billing service", command + (["--reset"] if reset else []),
                         f"http://127.0.0.1:{port}/health", log_dir / "billing.log", env)


def action_server(port: int, log_dir: Path, env: Optional[Dict[str, str]] = None,
                  cwd: Optional[Path] = None) -> ServerProcess:
    """The action server (supportbot/action_server.py): answers only callers holding
    ACTION_SERVER_TOKEN from `env`, on loopback."""
    return ServerProcess(
        "action server",
        [sys.executable, "-m", "supportbot.action_server", "--port", str(port), "--actions", "actions"],
        f"http://127.0.0.1:{port}/health", log_dir / "actions.log", env, cwd,
    )


def rasa_server(port: int, model: Path, endpoints: Path, credentials: Path, log_dir: Path,
                auth_token: str, env: Optional[Dict[str, str]] = None,
                cwd: Optional[Path] = None) -> ServerProcess:
    """Rasa with its HTTP API on, which only callers holding `auth_token` may use (the API
    can rewrite conversations, e.g. set slots). The token goes in the environment, never on
    the command line (supportbot/rasa_run.py)."""
    return ServerProcess(
        "Rasa server",
        [sys.executable, "-m", "supportbot.rasa_run", "run", "--model", str(model), "--port", str(port),
         "--enable-api", "--endpoints", str(endpoints), "--credentials", str(credentials)],
        f"http://127.0.0.1:{port}/status?token={auth_token}", log_dir / "rasa.log",
        {**(env or {}), "RASA_AUTH_TOKEN": auth_token}, cwd,
    )


def demo_server(port: int, rasa_url: str, billing_url: str, log_dir: Path,
                env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None) -> ServerProcess:
    """The demo store with the chat widget (supportbot/demo.py); `rasa_url` as browsers reach it."""
    return ServerProcess(
        "demo store",
        [sys.executable, "-m", "supportbot.demo", "--host", "127.0.0.1", "--port", str(port),
         "--rasa-url", rasa_url, "--billing-url", billing_url],
        f"http://127.0.0.1:{port}/health", log_dir / "demo.log", env, cwd,
    )


def collector(log_dir: Path, env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None) -> ServerProcess:
    """`supportbot learn collect --follow`: Rasa's events into the learning store as they come."""
    command = [sys.executable, "-m", "supportbot.cli", "learn", "collect", "--follow"]
    return ServerProcess("learning collector", command, None, log_dir / "collector.log", env, cwd)


def admin_server(port: int, log_dir: Path, env: Optional[Dict[str, str]] = None,
                 cwd: Optional[Path] = None, db_url: Optional[str] = None) -> ServerProcess:
    """The admin app (supportbot/admin/): accounts and its session secret come in `env`; `cwd`
    holds domain/ and data/, where it reads the intents a message may be given."""
    command = [sys.executable, "-m", "supportbot.admin", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess("admin app", command + (["--db", db_url] if db_url else []),
                         f"http://127.0.0.1:{port}/health", log_dir / "admin.log", env, cwd)
