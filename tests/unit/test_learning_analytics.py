"""`supportbot report`: exact figures from stores with known conversations, handoffs, ratings and
votes (overall, per channel, per intent, per day), first-contact resolution, --since, the files
written, the exit codes, and a store with nothing in it."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

import pytest
import sqlalchemy
from postgres_url import POSTGRES_URL

from supportbot import cli
from supportbot.learning import analytics
from supportbot.learning.store import LearningStore, TurnRow, normalise
from supportbot.store import FeedbackStore, HandoffStore

NOW = datetime(2025, 3, 20, 12, 0, tzinfo=timezone.utc)


def at(day, hour=10):
    return datetime(2025, 3, day, hour, 0, tzinfo=timezone.utc)


@pytest.fixture
def db_url(tmp_path):
    """One SQLite file holds all three, as with the defaults (the learning store falls back to
    SUPPORTBOT_DB_URL)."""
    return f"sqlite:///{tmp_path / 'supportbot.db'}"


@pytest.fixture
def postgres_url():
    """A schema of its own on the real Postgres server: other tests share its tables."""
    schema = f"report_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(POSTGRES_URL)
    try:
        with engine.begin() as db:
            db.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sqlalchemy.exc.OperationalError as error:
        pytest.fail(f"Postgres unreachable at {POSTGRES_URL} (set SUPPORTBOT_TEST_POSTGRES_URL): {error}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with engine.begin() as db:
        db.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


def turns(store, conversation, channel, *steps):
    """steps: (time, intent, fell_back, label)."""
    with store.session() as session, session.begin():
        for i, (when, intent, fell_back, label) in enumerate(steps):
            session.add(TurnRow(conversation_id=conversation, message_id=f"m{i}", text=intent,
                                normalised=normalise(intent), intent=intent, confidence=0.3 if fell_back else 0.9,
                                fell_back=int(fell_back), at=when, channel=channel, label=label,
                                label_source="customer_button" if label else None, reasons_json="[]"))


def handoff(url, conversation, customer):
    HandoffStore(url).record(conversation_id=conversation, idempotency_key=f"{conversation}-h", reason="request",
                             customer_id=customer, context={})


def rate(url, conversation, value, customer=None):
    FeedbackStore(url).save(conversation_id=conversation, kind="conversation", value=value, customer_id=customer)


def vote(url, conversation, message, value, customer=None):
    FeedbackStore(url).save(conversation_id=conversation, kind="answer", value=value, message_id=message,
                            customer_id=customer)


def known_data(url):
    """Five conversations (see the figures in the tests below) and one vote on an unknown one."""
    store = LearningStore(url)
    turns(store, "c1", "socketio", (at(1), "greet", False, None), (at(1, 11), "order_status", False, None),
          (at(6), "goodbye", False, None))
    rate(url, "c1", 5, "cust-1")
    vote(url, "c1", "m1", 1, "cust-1")
    turns(store, "c2", "socketio", (at(5), "order_status", False, None))  # cust-1 again within 7 days
    handoff(url, "c2", "cust-1")
    turns(store, "c3", "slack", (at(5, 11), "cancel_order", True, "request_refund"),  # "did you mean" answered
          (at(5, 12), "inform", False, None))
    rate(url, "c3", 2, "cust-2")
    vote(url, "c3", "m0", -1, "cust-2")
    vote(url, "c3", "m1", -1, "cust-2")
    turns(store, "c4", "slack", (at(6, 9), "thank", False, None))  # no goal, no customer
    rate(url, "c4", 4)
    turns(store, "c5", "rest", (at(14, 9), "greet+request_refund", False, None))  # cust-2 again, 9 days on
    handoff(url, "c5", "cust-2")
    turns(store, "import:tickets", None, (at(7), "order_status", False, "order_status"))  # not a conversation
    vote(url, "ghost", "m0", 1)  # a conversation the learning store does not have
    return store


def figures(f):
    return (f.conversations, f.escalated, f.turns, f.fallbacks, f.ratings, f.satisfied, f.up, f.down, f.judged,
            f.resolved)


def test_figures_overall_and_per_channel_intent_and_day(db_url):
    report = analytics.build(known_data(db_url), db_url, now=NOW)
    # c1 is not resolved (cust-1 came back on order_status within 7 days), c2 and c3 are (c5 came
    # 9 days after c3); c4 has no customer and c5 is under 7 days old: not judged.
    assert figures(report.overall) == (5, 2, 8, 1, 3, 2, 1, 2, 3, 2)
    f = report.overall
    assert (f.containment, f.escalation, f.fallback_rate) == (0.6, 0.4, 0.125)
    assert (f.csat, f.thumbs_up, f.fcr) == (pytest.approx(2 / 3), pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert (report.customers_known, report.feedback_elsewhere) == (4, 1)
    assert {k: figures(v) for k, v in report.channels.items()} == {
        "socketio": (2, 1, 4, 0, 1, 1, 1, 0, 2, 1),
        "slack": (2, 0, 3, 1, 2, 1, 0, 2, 1, 1),
        "rest": (1, 1, 1, 0, 0, 0, 0, 0, 0, 0)}
    assert {k: figures(v) for k, v in report.intents.items()} == {
        "order_status": (2, 1, 4, 0, 1, 1, 1, 0, 2, 1),
        "request_refund": (2, 1, 3, 1, 1, 0, 0, 2, 1, 1),
        "(none)": (1, 0, 1, 0, 1, 1, 0, 0, 0, 0)}
    assert {k.day: v.conversations for k, v in report.days.items()} == {1: 1, 5: 2, 6: 1, 14: 1}


def test_since_counts_only_conversations_started_that_day_or_later(db_url):
    report = analytics.build(known_data(db_url), db_url, since=date(2025, 3, 5), now=NOW)
    # c1 has a turn on the 6th but started on the 1st: left out, with its feedback; "ghost" is not.
    assert figures(report.overall) == (4, 2, 5, 1, 2, 1, 0, 2, 2, 2)
    assert (report.customers_known, report.feedback_elsewhere) == (3, 1)
    later = analytics.build(LearningStore(db_url), db_url, since=date(2025, 3, 15), now=NOW)
    assert later.overall.conversations == 0


def test_the_customer_the_collector_kept_judges_first_contact(db_url):
    """Without a handoff or a rating the customer comes from the `customer_id` slot the collector
    kept: c6 (cust-3, order_status) is not resolved, cust-3 came back on the 8th."""
    from supportbot.learning.store import ConversationCustomerRow

    store = LearningStore(db_url)
    turns(store, "c6", "socketio", (at(2), "order_status", False, None))
    turns(store, "c7", "socketio", (at(8), "order_status", False, None))
    turns(store, "c8", "socketio", (at(3), "order_status", False, None))  # anonymous: not judged
    with store.session() as session, session.begin():
        session.add_all([ConversationCustomerRow(conversation_id="c6", customer_id="cust-3"),
                         ConversationCustomerRow(conversation_id="c7", customer_id="cust-3")])
    report = analytics.build(store, db_url, now=NOW)
    assert report.customers_known == 2
    assert (report.overall.judged, report.overall.resolved) == (2, 1)  # c6 not resolved, c7 resolved


def test_the_report_files(db_url, tmp_path):
    report = analytics.build(known_data(db_url), db_url, now=NOW)
    path = analytics.write(report, tmp_path / "out")
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["channels.png", "days.png", "intents.png", "report.md"]
    assert all((path.parent / f"{n}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in ("channels", "days"))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Support report, all conversations (to 2025-03-20 12:00 UTC)\n")
    assert "| containment | 60.0% | 5 conversations |" in text
    assert "| thumbs up : down | 1 : 2 (33.3% up) | 3 votes |" in text
    assert "| first-contact resolution | 66.7% | 3 conversations judged |" in text
    assert "The customer is known for 4 of 5 conversations" in text
    assert "Ratings or votes on 1 conversations the learning store does not have" in text
    assert "| slack | 2 | 100.0% | 0.0% | 33.3% | 50.0% (2) | 0 : 2 | 100.0% (1) |" in text
    assert "| request_refund | 2 | 50.0% | 50.0% | 33.3% | 0.0% (1) | 0 : 2 | 100.0% (1) |" in text
    assert "| 2025-03-14 | 1 | 0.0% | 100.0% | 0.0% | - (0) | 0 : 0 | - (0) |" in text
    assert [line for line in text.splitlines() if line.startswith("![")] == [
        "![channels](channels.png)", "![intents](intents.png)", "![days](days.png)"]


def _report(capsys, *args):
    code = cli.main(["report", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_prints_the_summary_and_writes_the_report(db_url, tmp_path, capsys, monkeypatch):
    known_data(db_url)
    monkeypatch.chdir(tmp_path)
    code, out, _ = _report(capsys, "--db", db_url, "--store-db", db_url)
    [written] = (tmp_path / "results" / "report").iterdir()
    assert code == 0 and out.endswith(f"\nReport: {written.relative_to(tmp_path) / 'report.md'}\n")
    assert out.startswith("| metric | value | out of |\n")
    assert "| containment | 60.0% | 5 conversations |\n| escalation rate | 40.0% | 5 conversations |" in out
    assert "| CSAT (ratings of 4-5) | 66.7% | 3 ratings |" in out
    code, out, _ = _report(capsys, "--db", db_url, "--store-db", db_url, "--since", "2025-03-06",
                           "--out", str(tmp_path / "since"))  # c4 and c5
    assert code == 0 and "| containment | 50.0% | 2 conversations |" in out
    assert (tmp_path / "since" / "report.md").read_text().startswith("# Support report, since 2025-03-06")


def test_cli_with_no_data(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    code, out, _ = _report(capsys, "--db", url, "--store-db", url, "--out", str(tmp_path / "out"))
    assert code == 0 and out.startswith("No data: the learning store has no conversations (is")
    assert not (tmp_path / "out").exists()
    code, out, _ = _report(capsys, "--db", url, "--store-db", url, "--since", "2025-01-31")
    assert code == 0 and out.startswith("No data: the learning store has no conversations that started on or "
                                        "after 2025-01-31")


def test_cli_bad_input(db_url, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _report(capsys, "--since", "2025-13-01")
    assert exit_.value.code == 2
    assert "argument --since: must be a date like 2025-01-31, not '2025-13-01'" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    code, _, err = _report(capsys, "--db", db_url, "--out", str(tmp_path / "file"))
    assert (code, err) == (2, f"--out {tmp_path / 'file'} is a file, not a folder\n")
    code, _, err = _report(capsys, "--db", "nonsense://", "--out", str(tmp_path / "out"))
    assert code == 2 and err.startswith("Cannot read the stores: Can't load plugin: sqlalchemy.dialects:nonsense")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # Postgres
def test_figures_on_postgres(postgres_url, tmp_path):
    report = analytics.build(known_data(postgres_url), postgres_url, now=NOW)
    assert figures(report.overall) == (5, 2, 8, 1, 3, 2, 1, 2, 3, 2)
    assert figures(analytics.build(LearningStore(postgres_url), postgres_url, since=date(2025, 3, 5),
                                   now=NOW).overall) == (4, 2, 5, 1, 2, 1, 0, 2, 2, 2)
    assert "| containment | 60.0% | 5 conversations |" in analytics.write(report, tmp_path / "pg").read_text()
