"""The fault matrix's own logic (supportbot/benchmark/faults.py): what a customer saw on a turn,
when turns succeeded again, what the event broker missed, and the delaying proxy."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from supportbot.benchmark.faults import (
    ANSWERED,
    DISCONNECTED,
    ERROR_MESSAGE,
    HTTP_ERROR,
    NO_REPLY,
    TIMEOUT,
    FaultProxy,
    Turn,
    answered_rate,
    broker_comparison,
    classify,
    outcome_counts,
    parser,
    problems_in,
    recovery_seconds,
)

UNAVAILABLE = ("I can't reach our order system right now, so I can't check that. You can try again in a few "
               "minutes, or I can hand you to a person.")


def test_a_turn_is_classified_by_what_the_customer_saw():
    assert classify(200, ["Your order 4817263 is on its way."]) == ANSWERED
    assert classify(200, ["Let me check.", UNAVAILABLE]) == ERROR_MESSAGE
    assert classify(200, []) == NO_REPLY
    assert classify(200, ["", "  "]) == NO_REPLY
    assert classify(502, []) == HTTP_ERROR
    assert classify(500, ["oops"]) == HTTP_ERROR
    assert classify(None, ["hello"]) == ANSWERED  # socket.io has no status
    assert classify(None, [], "timeout") == TIMEOUT
    assert classify(None, ["partial"], "socket dropped") == DISCONNECTED


def turns(*spec):
    """(start, outcome) pairs; every turn takes 0.5 s."""
    return [Turn(f"s{i}", "REST", start, start + 0.5, outcome) for i, (start, outcome) in enumerate(spec)]


def steady(start, end, every=1.0, outcome=ANSWERED):
    spec, moment = [], start
    while moment < end:
        spec.append((moment, outcome))
        moment += every
    return spec


def test_recovery_is_zero_when_turns_never_stopped():
    history = turns(*steady(0, 60))
    assert recovery_seconds(history, 30.0, baseline=1.0, observed_until=60.0, window=10) == 0.0


def test_recovery_starts_after_the_last_failed_turn():
    history = turns(*steady(0, 30), (30.5, TIMEOUT), (31, HTTP_ERROR), (36, NO_REPLY), *steady(37, 70))
    assert recovery_seconds(history, 30.0, baseline=1.0, observed_until=70.0, window=10) == 7.0


def test_recovery_needs_the_baseline_rate_not_just_no_failures():
    # After the fault one turn every 4 s, all answered: under 80% of 1 turn/s until 50 s.
    history = turns(*steady(0, 30), *steady(30, 50, every=4), *steady(50, 80))
    assert recovery_seconds(history, 30.0, baseline=1.0, observed_until=80.0, window=10) == 20.0


def test_no_recovery_within_the_run_is_none():
    history = turns(*steady(0, 30), *steady(30, 60, outcome=TIMEOUT))
    assert recovery_seconds(history, 30.0, baseline=1.0, observed_until=60.0, window=10) is None
    # Answered again, but the run ended before a whole window could be seen.
    history = turns(*steady(0, 30), *steady(30, 55, outcome=TIMEOUT), *steady(55, 60))
    assert recovery_seconds(history, 30.0, baseline=1.0, observed_until=60.0, window=10) is None


def test_recovery_rejects_a_zero_baseline():
    with pytest.raises(ValueError):
        recovery_seconds(turns(*steady(0, 10)), 5.0, baseline=0.0, observed_until=10.0)


def test_rate_and_counts_use_turns_started_in_the_window():
    history = turns((0, ANSWERED), (1, ANSWERED), (2, TIMEOUT), (5, ANSWERED))
    assert answered_rate(history, 0, 4) == 0.5
    counts = outcome_counts(history, 1, 5)
    assert counts[ANSWERED] == 1 and counts[TIMEOUT] == 1 and counts[HTTP_ERROR] == 0
    with pytest.raises(ValueError):
        answered_rate(history, 3, 3)


def test_broker_comparison_names_missing_and_extra_events():
    assert broker_comparison({"a": 5, "b": 3}, {"a": 5, "b": 3}) == {
        "tracker_events": 8, "published_events": 8, "missing": 0, "extra": 0, "conversations_short": 0}
    compared = broker_comparison({"a": 5, "b": 3, "c": 2}, {"a": 2, "b": 4})
    assert compared["missing"] == 3 + 2 and compared["extra"] == 1 and compared["conversations_short"] == 2


def test_bad_options_are_named():
    problems = problems_in(parser().parse_args(["--faults", "rasa_kill,disk_full", "--model", "/nonexistent",
                                                "--workers", "0"]))
    assert any("disk_full" in p for p in problems)
    assert any("--model" in p for p in problems)
    assert any("--workers" in p for p in problems)


def echo_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed
                return
            with connection:
                while data := connection.recv(1024):
                    connection.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server


def round_trip(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        started = time.monotonic()
        client.sendall(b"ping")
        assert client.recv(1024) == b"ping"
        return time.monotonic() - started


def test_the_proxy_passes_traffic_and_delays_it_only_while_asked():
    server = echo_server()
    with server, FaultProxy(server.getsockname()[1]) as proxy:
        assert round_trip(proxy.port) < 0.2
        proxy.delay = 0.3
        assert 0.3 <= round_trip(proxy.port) < 1.0


def test_a_cut_proxy_drops_its_connections_and_refuses_new_ones_until_restored():
    server = echo_server()
    with server, FaultProxy(server.getsockname()[1]) as proxy:
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        held.sendall(b"ping")
        assert held.recv(1024) == b"ping"
        proxy.cut()
        assert held.recv(1024) == b""  # dropped
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as refused:
            refused.sendall(b"ping")
            assert refused.recv(1024) == b""  # closed at once
        proxy.restore()
        assert round_trip(proxy.port) < 0.2
        held.close()


def test_the_report_has_one_row_per_fault_and_says_what_was_not_measured():
    from supportbot.benchmark.faults import OUTCOMES, to_markdown

    during = dict.fromkeys(OUTCOMES, 0) | {ANSWERED: 9, ERROR_MESSAGE: 2, TIMEOUT: 1}
    row = {"fault": "billing_slow", "what": "billing answers 3 s late for 30 s", "during": during, "clear": 11,
           "not_clear": 1, "store_problems": 0, "recovery_s": None, "examples": ["1 x timeout: timeout"],
           "store_problem_examples": [], "baseline_answered_per_s": 1.2, "turns": 40, "slowest_turn_s": 30.0,
           "broker": broker_comparison({"a": 10}, {"a": 8})}
    result = {"started": "2026-12-06 02:00 UTC", "command": "python -m supportbot.benchmark.faults",
              "workers": 4, "baseline_s": 20, "turn_timeout": 30, "window": 10,
              "machine": {"cpus": 2, "python": "3.10", "niceness": 10, "load_average": [1.0]},
              "rows": [row, {"fault": "rabbitmq_stop", "error": "rabbitmqctl stop_app failed: denied"}]}
    markdown = to_markdown(result)
    assert ("| billing_slow | billing answers 3 s late for 30 s | 11 / 1 | 2 error message, 1 timeout | whole | "
            "10 / 8 (2, 0) | not within the run |") in markdown
    assert "| rabbitmq_stop | not measured: rabbitmqctl stop_app failed: denied |" in markdown
