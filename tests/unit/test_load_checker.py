"""The load test's checker (supportbot/benchmark/load/checker.py) finds lost, duplicated and
reordered turns, and refunds written other than once per confirmation."""
from __future__ import annotations

from supportbot.benchmark.load.checker import StoredTurn, refund_problems, turn_problems

SENT = ["where is my order 4817263", "alice@example.com", "thanks"]


def stored(texts, start=1.0):
    return [StoredTurn(text, start + index) for index, text in enumerate(texts)]


def test_a_whole_conversation_passes():
    assert turn_problems(SENT, stored(SENT)) == []


def test_a_lost_turn_is_named():
    assert turn_problems(SENT, stored(SENT[:1] + SENT[2:])) == ["lost: ['alice@example.com']"]


def test_a_duplicated_turn_is_named():
    assert turn_problems(SENT, stored(SENT[:2] + SENT[1:])) == ["duplicated or unknown: ['alice@example.com']"]


def test_turns_out_of_order_are_named():
    [problem] = turn_problems(SENT, stored([SENT[1], SENT[0], SENT[2]]))
    assert problem.startswith("out of order")


def test_a_repeated_message_sent_twice_is_not_a_duplicate():
    assert turn_problems(["hi", "hi"], stored(["hi", "hi"])) == []
    assert turn_problems(["hi", "hi"], stored(["hi"])) == ["lost: ['hi']"]


def test_the_message_in_flight_when_the_run_stopped_may_or_may_not_be_stored():
    assert turn_problems(SENT[:2], stored(SENT[:2]), in_flight="thanks") == []
    assert turn_problems(SENT[:2], stored(SENT), in_flight="thanks") == []
    assert turn_problems(SENT[:2], stored(SENT + ["thanks"]), in_flight="thanks") == [
        "duplicated or unknown: ['thanks']"]


def test_timestamps_going_backwards_are_named():
    turns = [StoredTurn(SENT[0], 5.0), StoredTurn(SENT[1], 4.0), StoredTurn(SENT[2], 6.0)]
    assert turn_problems(SENT, turns) == ["timestamps go backwards at: ['alice@example.com']"]


def test_refunds_exactly_once_per_confirmation():
    assert refund_problems(["R-000007", "R-000008"], ["R-000007", "R-000008"]) == []
    assert refund_problems(["R-000007"], ["R-000007", "R-000007"]) == ["refund R-000007 written 2 times"]
    assert refund_problems(["R-000007"], []) == ["refund R-000007 confirmed but not written"]
    assert refund_problems([], ["R-000009"]) == ["refund R-000009 written but never confirmed"]
    assert refund_problems(["R-000007", "R-000007"], ["R-000007"]) == ["refund R-000007 confirmed 2 times"]


def test_load_options_that_cannot_work_are_named():
    from supportbot.benchmark.load.__main__ import parser, problems_in

    def problems(*argv):
        return problems_in(parser().parse_args(["--model", __file__, *argv]))

    assert problems() == [] and problems("--production", "--instances", "2") == []
    assert problems("--instances", "2") == ["several --instances need --production (or --host)"]
    assert problems("--instances", "0") == ["--instances must be at least 1"]
    assert "--production starts its own stack: not with --host" in problems(
        "--production", "--host", "http://127.0.0.1:8005", "--tracker-db", "x", "--billing-db", "y")
