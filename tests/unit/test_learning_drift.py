"""`supportbot learn drift`: per-day and per-intent figures from a learning store with known turns,
the three alerts at and around their thresholds and minimums, the exit codes, and the Slack post
against the local fake of Slack's Web API (tests/e2e/fake_slack.py)."""
from __future__ import annotations

import math
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy
from fake_slack import BOT_TOKEN
from postgres_url import POSTGRES_URL

from supportbot import cli, processes
from supportbot.learning import drift
from supportbot.learning.drift import LiveTurn, corrected, intent_shift
from supportbot.learning.store import LearningStore, TurnRow, normalise

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=timezone.utc)
RECENT, PREVIOUS = NOW - timedelta(days=2), NOW - timedelta(days=9)  # with the default 7-day window
KNOWN = frozenset({"where", "is", "my", "order"})
NLU = """version: "3.1"
nlu:
- intent: order_status
  examples: |
    - where is my order [4817263](order_id)
    - Track my PARCEL, please
"""


@pytest.fixture
def store(tmp_path):
    return LearningStore(f"sqlite:///{tmp_path / 'learning.db'}")


@pytest.fixture
def nlu(tmp_path):
    folder = tmp_path / "nlu"
    folder.mkdir()
    (folder / "orders.yml").write_text(NLU, encoding="utf-8")
    return folder


@pytest.fixture
def postgres_store():
    """A learning store in a schema of its own on the real Postgres server: other tests share
    its tables."""
    schema = f"drift_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(POSTGRES_URL)
    try:
        with engine.begin() as db:
            db.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sqlalchemy.exc.OperationalError as error:
        pytest.fail(f"Postgres unreachable at {POSTGRES_URL} (set SUPPORTBOT_TEST_POSTGRES_URL): {error}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield LearningStore(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}")
    with engine.begin() as db:
        db.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


def add(store, count, at, intent="order_status", confidence=0.9, fell_back=False, text="where is my order",
        status="new", label=None, conversation=None):
    with store.session() as session, session.begin():
        conversation = conversation or f"c-{uuid.uuid4().hex}"
        for i in range(count):
            session.add(TurnRow(conversation_id=conversation, message_id=f"m{i}", text=text,
                                normalised=normalise(text), intent=intent, confidence=confidence,
                                fell_back=int(fell_back), at=at, status=status, label=label, reasons_json="[]"))


def test_tokens_and_the_training_vocabulary(nlu):
    assert drift.tokens("My card [card number ending 1111] was charged 42 times, [email]") == [
        "my", "card", "was", "charged", "times"]
    assert drift.vocabulary(nlu) == {"where", "is", "my", "order", "track", "parcel", "please"}


def test_vocabulary_refuses_a_missing_or_empty_folder(tmp_path):
    with pytest.raises(drift.DriftError, match="no NLU training data folder"):
        drift.vocabulary(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(drift.DriftError, match="no training examples"):
        drift.vocabulary(tmp_path / "empty")
    (tmp_path / "empty" / "broken.yml").write_text('version: "3.1"\nnlu:\n- intent: x\n  - : :\n')
    with pytest.raises(drift.DriftError, match="cannot read the training data under .*broken.yml"):
        drift.vocabulary(tmp_path / "empty")


@pytest.mark.parametrize("label, intent, right", [
    ("order_status", "order_status", True),
    ("cancel_order", "order_status", False),  # relabelled
    ("out_of_scope", "order_status", False),  # marked out of scope
    ("faq/refund_policy", "faq", True),  # the store keeps only the classifier's `faq`
    ("order_status", "greet+order_status", True),
])
def test_corrected_accuracy_reads_review_decisions(label, intent, right):
    status = "out_of_scope" if label == "out_of_scope" else "accepted"
    assert corrected(LiveTurn(NOW, intent, 0.5, False, "x", status, label)) is right
    assert corrected(LiveTurn(NOW, intent, 0.5, False, "x", "rejected", None)) is None
    assert corrected(LiveTurn(NOW, intent, 0.5, True, "x", "new", label)) is None  # a button, not reviewed


def test_per_day_and_per_intent_figures(store):
    day = NOW - timedelta(days=1)
    add(store, 3, day)
    add(store, 1, day, intent="request_refund", confidence=0.3, fell_back=True, text="refund my blender")
    add(store, 2, PREVIOUS)
    add(store, 1, day, intent="order_status", conversation="import:tickets")  # imported: not live traffic
    add(store, 1, NOW + timedelta(hours=1))  # after now
    add(store, 1, NOW - timedelta(days=30))  # before both windows and the table
    health = drift.check(store, KNOWN, now=NOW)
    assert len(health.days) == 14 and min(health.days) == (NOW - timedelta(days=13)).date()
    figures = health.days[day.date()]
    assert (figures.volume, figures.fallbacks, figures.words, figures.unseen) == (4, 1, 15, 2)
    assert figures.mean_confidence == pytest.approx(0.75)
    assert (figures.fallback_rate, figures.unseen_share) == (0.25, pytest.approx(2 / 15))
    assert health.day_intents[(day.date(), "request_refund")].unseen_share == pytest.approx(2 / 3)
    assert {i: s.volume for i, s in health.recent.items()} == {"order_status": 3, "request_refund": 1}
    assert {i: s.volume for i, s in health.previous.items()} == {"order_status": 2}
    assert health.alerts == [] and health.shift is None
    assert health.shift_note == "Intent mix not tested: each window needs 100 turns (previous 2, recent 4)"
    text = drift.describe(health)
    assert f"| {day.date()} | 4 | 0.750 | 25.0% | 13.3% | 0 | - |" in text
    assert "| order_status | 2 → 3 | 0.900 → 0.900 | 0.0% → 0.0% | 0.0% → 0.0% | - (0) → - (0) |" in text
    assert f"| {day.date()} | 1 | 0.300 | 100.0% | 66.7% |" in drift.describe(health, "request_refund")


@pytest.mark.parametrize("recent_fallbacks, previous_turns, alert", [
    (16, 100, True),  # 10% → 16%
    (15, 100, False),  # exactly 5 points: not more than 5
    (16, 99, False),  # too few turns before to compare
])
def test_fallback_rate_alert(store, recent_fallbacks, previous_turns, alert):
    add(store, previous_turns - 10, PREVIOUS)
    add(store, 10, PREVIOUS, fell_back=True)
    add(store, 100 - recent_fallbacks, RECENT)
    add(store, recent_fallbacks, RECENT, fell_back=True)
    expected = [f"fallback rate rose from 10.0% to 16.0% (turns: {previous_turns} → 100)"] if alert else []
    assert drift.check(store, KNOWN, now=NOW).alerts == expected


def test_intent_mix_shift_alert(store):
    for intent, before, after in (("order_status", 50, 20), ("request_refund", 30, 30), ("cancel_order", 20, 50)):
        add(store, before, PREVIOUS, intent=intent)
        add(store, after, RECENT, intent=intent)
    health = drift.check(store, KNOWN, now=NOW)
    # Expected counts are 35, 30, 35 in each window: chi-square = 4 × 15² / 35, and with 2 degrees
    # of freedom p = exp(-chi-square / 2).
    assert health.shift.statistic == pytest.approx(180 / 7)
    assert (health.shift.dof, health.shift.p) == (2, pytest.approx(math.exp(-90 / 7)))
    assert health.alerts == [
        f"intent mix shifted (chi-square 25.7, 2 dof, p = {math.exp(-90 / 7):.2g}): "
        "cancel_order 20.0% → 50.0%, order_status 50.0% → 20.0%, request_refund 30.0% → 30.0%"]


def test_the_same_mix_and_rare_intents_raise_nothing():
    shift, _ = intent_shift({"a": 60, "b": 40, "x": 1}, {"a": 61, "b": 40, "y": 2})
    assert sorted(c[0] for c in shift.changes) == ["a", "b"] and shift.p > 0.5  # x, y pooled, then dropped
    rare = {f"r{i}": 2 for i in range(5)}
    shift, _ = intent_shift({"a": 60, "b": 40, **rare}, {"a": 60, "b": 40, **rare})
    assert sorted(c[0] for c in shift.changes) == ["(other)", "a", "b"] and shift.p == pytest.approx(1)
    assert intent_shift({"a": 100}, {"a": 100}) == (
        None, "Intent mix not tested: fewer than two intents are common enough to compare")


def test_corrected_accuracy_alert(store):
    add(store, 19, PREVIOUS, status="accepted", label="order_status")
    add(store, 1, PREVIOUS, status="accepted", label="cancel_order")
    add(store, 17, RECENT, status="accepted", label="order_status")
    add(store, 2, RECENT, status="accepted", label="cancel_order")
    add(store, 1, RECENT, status="out_of_scope", label="out_of_scope")
    add(store, 5, RECENT, status="rejected")  # not training data: says nothing about the model
    add(store, 5, RECENT)  # not reviewed yet
    # An intent with only 19 reviewed turns in the recent window: a drop, but too little data.
    add(store, 20, PREVIOUS, intent="get_invoice", status="accepted", label="get_invoice")
    add(store, 19, RECENT, intent="get_invoice", status="accepted", label="payment_problem")
    # FAQ topics: right intent, whichever topic.
    add(store, 20, PREVIOUS, intent="faq", status="accepted", label="faq/refund_policy")
    add(store, 20, RECENT, intent="faq", status="accepted", label="faq/gift_cards")
    health = drift.check(store, KNOWN, now=NOW)
    assert health.recent["order_status"].accuracy == 0.85 and health.recent["get_invoice"].accuracy == 0
    assert health.alerts == ["order_status: corrected accuracy fell from 95.0% to 85.0% (reviewed: 20 → 20)"]


def _run(capsys, *args):
    code = cli.main(["learn", "drift", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _unhealthy(store):
    now = datetime.now(timezone.utc)
    add(store, 100, now - timedelta(days=9))
    add(store, 80, now - timedelta(days=2))
    add(store, 20, now - timedelta(days=2), fell_back=True)


def test_cli_empty_healthy_and_unhealthy(store, nlu, capsys, monkeypatch):
    monkeypatch.delenv("SUPPORTBOT_ALERT_SLACK_CHANNEL", raising=False)
    args = ["--db", store.db_url, "--nlu", str(nlu)]
    code, out, _ = _run(capsys, *args)
    assert code == 0 and out.startswith("No data: the learning store has no customer turns in the last 14 days")
    add(store, 5, datetime.now(timezone.utc) - timedelta(days=1))
    code, out, _ = _run(capsys, *args, "--days", "3")
    assert code == 0 and out.endswith("Healthy: no alerts.\n")
    assert len(re.findall(r"^\| \d{4}-\d\d-\d\d \|", out, re.MULTILINE)) == 3  # --days 3
    _unhealthy(store)
    code, out, _ = _run(capsys, *args)
    assert code == 1
    assert "1 alert(s):\n  - fallback rate rose from 0.0% to 19.0% (turns: 100 → 105)" in out
    assert out.endswith("Not posted to Slack: SUPPORTBOT_ALERT_SLACK_CHANNEL is not set.\n")


@pytest.mark.parametrize("args, problem", [
    (["--days", "0"], "argument --days: must be a whole number of days, at least 1, not '0'"),
    (["--window", "x"], "argument --window: must be a whole number of days, at least 1, not 'x'"),
])
def test_cli_bad_numbers(capsys, args, problem):
    with pytest.raises(SystemExit) as exit_:
        _run(capsys, *args)
    assert exit_.value.code == 2 and problem in capsys.readouterr().err


def test_cli_without_training_data(store, tmp_path, capsys):
    code, out, err = _run(capsys, "--db", store.db_url, "--nlu", str(tmp_path / "missing"))
    assert (code, out, err) == (2, "", f"no NLU training data folder at {tmp_path / 'missing'}\n")


def test_cli_with_a_store_it_cannot_read(nlu, capsys):
    code, _, err = _run(capsys, "--db", "nonsense://", "--nlu", str(nlu))
    assert code == 2
    assert err.startswith("Cannot read the learning store: Can't load plugin: sqlalchemy.dialects:nonsense")


def test_alerts_are_posted_to_the_configured_slack_channel(store, nlu, capsys, monkeypatch, slack_api):
    channel = f"C0ALERTS{uuid.uuid4().hex[:6].upper()}"
    monkeypatch.setenv("SUPPORTBOT_ALERT_SLACK_CHANNEL", channel)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack_api.url)
    _unhealthy(store)
    code, out, _ = _run(capsys, "--db", store.db_url, "--nlu", str(nlu))
    assert code == 1 and out.endswith(f"Posted to Slack {channel}.\n")
    [post] = slack_api.posted(channel)
    assert post["token"] == BOT_TOKEN
    assert post["text"].startswith("supportbot NLU health, ")
    assert post["text"].endswith("UTC:\n• fallback rate rose from 0.0% to 20.0% (turns: 100 → 100)")
    # Slack out of reach: the alerts still fail the run, and the failure is said.
    monkeypatch.setenv("SLACK_API_URL", f"http://127.0.0.1:{processes.free_port()}/api/")
    code, out, _ = _run(capsys, "--db", store.db_url, "--nlu", str(nlu))
    assert code == 1 and f"Posting to Slack {channel} failed: " in out


@pytest.mark.slow  # Postgres
def test_alerts_on_postgres(postgres_store):
    _figures = [(PREVIOUS, 90, 10), (RECENT, 80, 20)]
    for at, plain, fell_back in _figures:
        add(postgres_store, plain, at, status="accepted", label="order_status")
        add(postgres_store, fell_back, at, fell_back=True, status="accepted", label="cancel_order")
    health = drift.check(postgres_store, KNOWN, now=NOW)
    assert health.days[RECENT.date()].volume == 100 and health.recent_total.fallback_rate == 0.2
    assert health.alerts == ["fallback rate rose from 10.0% to 20.0% (turns: 100 → 100)",
                             "order_status: corrected accuracy fell from 90.0% to 80.0% (reviewed: 100 → 100)"]
