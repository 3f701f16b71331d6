"""What the billing tests share: fresh idempotency keys, error checks and simultaneous calls."""
from __future__ import annotations

import threading
import uuid
from typing import Any, Callable, List

import requests


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
