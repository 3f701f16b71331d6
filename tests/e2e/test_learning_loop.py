"""The whole learning loop on real servers: a customer's message is misunderstood → it lands in
the review queue → the customer asks for a person, the handoff files a ticket, and the agent
resolves the ticket under the right intent → `learn tickets` turns that into a correction (with
labelled history from `learn import`) → accepted → exported → retrained → gated → swapped into the
running Rasa server, which now understands that message and a paraphrase, without a restart.

It trains a real model on a copy of the project's data in a temporary folder (the repository's
data and models/ are never written): its NLU part, about 5 minutes on 2 cores, while the dialogue
policies come from the training cache `make train` left, when it is there."""
from __future__ import annotations

import os
import shutil

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from supportbot.cli import main as cli
from supportbot.learning.store import LearningStore
from supportbot.ticketing.sql import TicketRow

# A word nobody wrote in data/nlu: the model cannot be sure it means cancelling an order.
MISSED = "please zorbify my order"
PARAPHRASE = "can you zorbify order 4817263 for me"
TAUGHT = [f"{verb} {thing}" for verb in ("zorbify", "I want to zorbify", "need to zorbify", "pls zorbify",
                                         "how do I zorbify", "could you zorbify")
          for thing in ("my order", "the order", "this purchase", "my last order", "what I bought")]


def intent_of(stack, text):
    return stack.api_post("/model/parse", {"text": text})["intent"]["name"]


@pytest.mark.timeout(1800)  # a real training and four scorings
def test_a_missed_message_is_learned_and_understood_after_the_swap(stack, sender, model, api_token, repo,
                                                                    tmp_path, monkeypatch):
    assert intent_of(stack, MISSED) != "cancel_order"
    stack.texts(sender, MISSED)
    assert "handing you over" in stack.texts(sender, "I want to talk to a real person")
    [handoff] = stack.handoffs().list(conversation_id=sender)
    tickets = stack.tickets()
    with Session(tickets.engine) as session:
        [ticket_id] = session.scalars(select(TicketRow.id).where(TicketRow.subject.contains(handoff.reference)))
    tickets.set_status(str(ticket_id), "resolved", category="cancel_order", by="dana")
    # The project as a designer has it, in a temporary folder.
    for name in ("config.yml", "domain", "data", "tests/nlu"):
        source, target = repo / name, tmp_path / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    # The gate's stories: the order flows the learned goal belongs to (`make test-core` runs all
    # 107 on the served model; here they would add two minutes and test nothing more of the loop).
    (tmp_path / "tests" / "stories").mkdir()
    shutil.copy2(repo / "tests" / "stories" / "test_orders.yml", tmp_path / "tests" / "stories")
    (tmp_path / "models").mkdir()
    shutil.copy2(model, tmp_path / "models" / "supportbot.tar.gz")
    monkeypatch.chdir(tmp_path)  # the CLI's and retrain's default paths are relative
    # Rasa's training cache is `.rasa/cache` under the working directory: the repository's, which
    # `make train` filled, lets the retrain restore the dialogue policies instead of training them
    # again (only NLU data changed), as a retrain in the project folder does.
    cache = os.environ.get("RASA_CACHE_DIRECTORY") or str(repo / ".rasa" / "cache")
    monkeypatch.setenv("RASA_CACHE_DIRECTORY", cache)
    learning = f"sqlite:///{tmp_path / 'learning.db'}"
    events = f"sqlite:///{stack.log_dir / 'events.db'}"
    assert cli(["learn", "collect", "--events", events, "--db", learning]) == 0
    [missed] = [t for t in LearningStore(learning).turns(sender) if t.text == MISSED]
    assert missed.reasons  # it is in the queue (the model fell back or was unsure)
    # The agent's resolution becomes the label of the turn that led to the handoff.
    for name in ("SUPPORTBOT_DB_URL", "SUPPORTBOT_TICKETING_DB_URL", "SUPPORTBOT_TICKETING"):
        if name in stack.env:
            monkeypatch.setenv(name, stack.env[name])
    assert cli(["learn", "tickets", "--db", learning]) == 0
    [missed] = [t for t in LearningStore(learning).turns(sender) if t.text == MISSED]
    assert missed.label == "cancel_order" and "ticket_recategorised" in missed.reasons
    # Labelled history for the same goal.
    history = tmp_path / "history.csv"
    history.write_text("text,intent\n" + "".join(f"{t},cancel_order\n" for t in TAUGHT))
    assert cli(["learn", "import", str(history), "--db", learning]) == 0
    assert cli(["learn", "accept", "--all", "--db", learning]) == 0
    # Export, retrain, gate, promote, swap.
    code = cli(["learn", "retrain", "--db", learning, "--rasa-url", stack.rasa_url, "--token", api_token])
    [report] = (tmp_path / "results" / "learn").glob("*/report.md")
    assert code == 0, report.read_text()
    assert "**Promoted.**" in report.read_text() and list((tmp_path / "models" / "previous").iterdir())
    assert (tmp_path / "data" / "nlu" / "learned" / "learned.yml").exists()
    # The running server understands the missed message and a paraphrase it never saw.
    assert intent_of(stack, MISSED) == "cancel_order"
    assert intent_of(stack, PARAPHRASE) == "cancel_order"
    # Rollback serves the previous model again.
    assert cli(["learn", "rollback", "--rasa-url", stack.rasa_url, "--token", api_token]) == 0
    assert intent_of(stack, MISSED) != "cancel_order"
