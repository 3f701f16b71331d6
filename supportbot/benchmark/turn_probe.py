"""`python -m supportbot.benchmark.turn_probe PROBE_FILE run ...`: `supportbot.rasa_run` with timers around the
parts of a turn, for the cost-per-turn benchmark (supportbot/benchmark/turn_cost.py).

Each timed call appends one JSON line `{"sender", "part", "ms"}` to the probe file (the first argument):
- `turn`: MessageProcessor.handle_message, the whole turn inside Rasa (lock store excluded);
- `nlu`: MessageProcessor.parse_message;
- `policies`: MessageProcessor._predict_next_with_tracker, one per action predicted; `node:<name>`
  is each graph node it ran (each policy, the ensemble, the tracker's featurization);
- `action_call`: RemoteAction.run, the action server round trip as Rasa sees it;
- `retrieve`, `save`: the tracker store's (Rasa's SQLTrackerStore or supportbot.tracker_store's);
  `retrieve_in_save` is the retrieve Rasa's TrackerStore.stream_events does inside save to find the
  events new to the event broker.

Timers use time.perf_counter around the awaited call (wall time on Rasa's one event loop: with
one conversation at a time it is that part's cost). Not part of the product.
"""
from __future__ import annotations

import contextvars
import functools
import json
import sys
import time
from typing import Any, Callable, Optional, TextIO

SENDER: contextvars.ContextVar[str] = contextvars.ContextVar("turn_probe_sender", default="")
IN_SAVE: contextvars.ContextVar[bool] = contextvars.ContextVar("turn_probe_in_save", default=False)
_out: Optional[TextIO] = None


def record(part: str, ms: float, sender: Optional[str] = None) -> None:
    if _out is not None:
        _out.write(json.dumps({"sender": sender or SENDER.get(), "part": part, "ms": round(ms, 3)}) + "\n")


def _timed_async(part: Callable[..., str], sender_of: Callable[..., Optional[str]] = lambda *a: None):
    def wrap(method):
        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            sender = sender_of(*args)
            if sender:
                SENDER.set(sender)
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                record(part(*args), (time.perf_counter() - started) * 1000)
        return timed
    return wrap


def _marking_save(save: Callable[..., Any]) -> Callable[..., Any]:
    async def save_marked(self: Any, tracker: Any) -> None:
        IN_SAVE.set(True)
        try:
            await save(self, tracker)
        finally:
            IN_SAVE.set(False)
    return save_marked


def install(path: str) -> None:
    """Wrap Rasa's methods; timings go to `path` (line-buffered)."""
    global _out
    from rasa.core.actions.action import RemoteAction
    from rasa.core.processor import MessageProcessor
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.engine.graph import GraphNode

    _out = open(path, "a", buffering=1)
    MessageProcessor.handle_message = _timed_async(lambda *a: "turn", lambda self, message: message.sender_id)(
        MessageProcessor.handle_message)
    MessageProcessor.parse_message = _timed_async(lambda *a: "nlu")(MessageProcessor.parse_message)
    RemoteAction.run = _timed_async(lambda *a: "action_call")(RemoteAction.run)
    SQLTrackerStore.retrieve = _timed_async(lambda *a: "retrieve_in_save" if IN_SAVE.get() else "retrieve")(
        SQLTrackerStore.retrieve)
    from supportbot.tracker_store import SQLTrackerStore as OurSQLTrackerStore

    for store in (SQLTrackerStore, OurSQLTrackerStore):
        store.save = _timed_async(lambda *a: "save")(_marking_save(store.save))
    predict = MessageProcessor._predict_next_with_tracker

    def predict_timed(self: Any, tracker: Any) -> Any:
        started = time.perf_counter()
        try:
            return predict(self, tracker)
        finally:
            record("policies", (time.perf_counter() - started) * 1000, tracker.sender_id)

    MessageProcessor._predict_next_with_tracker = predict_timed
    node_call = GraphNode.__call__

    def node_timed(self: Any, *inputs: Any) -> Any:
        started = time.perf_counter()
        try:
            return node_call(self, *inputs)
        finally:
            record(f"node:{self._node_name}", (time.perf_counter() - started) * 1000)

    GraphNode.__call__ = node_timed


def main() -> None:
    install(sys.argv.pop(1))  # the probe file; the rest are supportbot.rasa_run's arguments
    from supportbot.rasa_run import main as rasa_run_main

    rasa_run_main()


if __name__ == "__main__":
    main()
