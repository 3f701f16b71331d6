"""How the billing tests talk to the service: its test API keys, how a test server is started,
`requests` with a key (`api`), fresh idempotency keys, error checks and simultaneous calls."""
from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import requests

from supportbot import processes

# The keys the test servers accept (conftest passes API_KEYS as BILLING_API_KEYS). `limits`
# and `sweeper` are assistants of their own, so the verification tests' failed attempts do not
# count against the `assistant` client that the other tests use.
ASSISTANT_KEY = "test-assistant-key-0123456789"
AGENT_KEY = "test-agent-key-0123456789"
LIMITS_KEY = "test-limits-key-0123456789"
SWEEPER_KEY = "test-sweeper-key-0123456789"
API_KEYS = (f"assistant:assistant:{ASSISTANT_KEY},agents:agent:{AGENT_KEY},"
            f"limits:assistant:{LIMITS_KEY},sweeper:assistant:{SWEEPER_KEY}")


# The test keys, and the default limits spelled out so a developer's environment cannot move them.
TEST_ENV = {"BILLING_API_KEYS": API_KEYS, "BILLING_REFUND_AUTO_LIMIT": "200",
            "BILLING_DISPUTE_AUTO_LIMIT": "100", "BILLING_VERIFY_MAX_FAILURES": "5",
            "BILLING_VERIFY_WINDOW_SECONDS": "900", "BILLING_VERIFY_MAX_FAILURES_PER_CLIENT": "50"}


def billing_process(db_url: str, log_dir: Path, reset: bool = True) -> processes.ServerProcess:
    """`python -m supportbot.billing` as the tests run it, on a free port with TEST_ENV."""
    return processes.billing_server(processes.free_port(), db_url, log_dir, TEST_ENV, reset=reset)


def auth(key: str = ASSISTANT_KEY) -> Dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Api:
    """`requests` with an API key on every call; tests of public pages use `requests` itself."""

    def __init__(self, key: str = ASSISTANT_KEY) -> None:
        self.key = key

    def request(self, method: str, url: str, headers: Optional[Dict[str, str]] = None,
                **kwargs: Any) -> requests.Response:
        return requests.request(method, url, headers={**auth(self.key), **(headers or {})},
                                **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", url, **kwargs)


api = Api()


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


def assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert response.json()["error"]["message"]


def run_in_threads(count: int, work: Callable[[int], Any]) -> List[Any]:
    """Start `count` threads at the same moment; return each result (or raised error)."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
