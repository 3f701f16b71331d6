"""The agent inbox (supportbot/admin/agents.py, docs/handoff.md#the-agent-inbox) through the real
servers: the session's stack (Rasa with the trained model), the demo store's widget and the admin
app, in two headless Chromium pages: the customer's and the agent's. Its JSON API: two agents
claiming at once, a designer refused, state kept across a reload, bad input answered clearly."""
from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
import requests
from chromium import Browser
from plugins.stack import API_TOKEN

from supportbot import processes
from supportbot.admin.accounts import hash_password
from supportbot.learning.collector import Collector
from supportbot.learning.corrections import routing_corrections
from supportbot.learning.store import LearningStore, TurnRow

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "results" / "web" / "agent-inbox.png"  # to look at the page; results/ is not committed
SECRET = "test-agent-inbox-session-secret-40-chars!"
ROLES = {"Sam": "agent", "Kim": "agent", "dana": "designer"}
PASSWORDS = {"Sam": "sam-the-agent", "Kim": "kim-the-agent", "dana": "dana-the-designer"}
TOKENS = {"Ana": "agent-desk-token-ana-1", "Bo": "agent-desk-token-bo-22", "robot": "designer-token-robot-3"}
LIVE = 1.0  # seconds: an agent's reply must be in the customer's chat within this
BOT = ".sbw-log .sbw-bot .sbw-bubble"


class Admin:
    def __init__(self, url: str, tmp: Path, stack) -> None:
        self.url, self.stack = url, stack
        self.db_url = f"sqlite:///{tmp / 'learning.db'}"
        self.store = LearningStore(self.db_url)

    def collect(self) -> None:
        """What Rasa's event broker recorded, into the admin app's learning store (the collector's job)."""
        Collector(self.store, f"sqlite:///{self.stack.log_dir / 'events.db'}", self.stack.store_db_url).run_once()

    def session(self, name: str) -> Tuple[requests.Session, str]:
        """A logged-in HTTP session and its CSRF token."""
        http = requests.Session()
        page = http.get(f"{self.url}/login", timeout=10)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        reply = http.post(f"{self.url}/login", data={"name": name, "password": PASSWORDS[name], "csrf": csrf},
                          allow_redirects=False, timeout=10)
        assert reply.status_code == 303, reply.text
        page = http.get(f"{self.url}/", timeout=10)
        return http, re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)

    def api(self, method: str, path: str, caller: str = "Ana", **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", timeout=30,
                                headers={"Authorization": f"Bearer {TOKENS[caller]}"}, **kwargs)


@pytest.fixture(scope="module")
def admin(stack, tmp_path_factory) -> Iterator[Admin]:
    tmp = tmp_path_factory.mktemp("agent-inbox")
    port = processes.free_port()
    admin = Admin(f"http://127.0.0.1:{port}", tmp, stack)
    env = {
        "SUPPORTBOT_ADMIN_ACCOUNTS": ",".join(f"{name}:{ROLES[name]}:{hash_password(password, 1000)}"
                                              for name, password in PASSWORDS.items()),
        "SUPPORTBOT_ADMIN_API_TOKENS": f"Ana:agent:{TOKENS['Ana']},Bo:agent:{TOKENS['Bo']},"
                                       f"robot:designer:{TOKENS['robot']}",
        "SUPPORTBOT_ADMIN_SECRET": SECRET,
        # The handoffs' store and the Rasa server holding the conversations (its relay).
        "SUPPORTBOT_DB_URL": stack.store_db_url,
        "RASA_URL": stack.rasa_url,
        "RASA_AUTH_TOKEN": API_TOKEN,
        # The tickets the handoffs were filed as: a move moves them too.
        "SUPPORTBOT_TICKETING": stack.env["SUPPORTBOT_TICKETING"],
        "SUPPORTBOT_TICKETING_DB_URL": stack.env["SUPPORTBOT_TICKETING_DB_URL"],
    }
    server = processes.admin_server(port, tmp / "logs", env, REPO, admin.db_url)
    with processes.running([server], timeout=60):
        yield admin


def handed_off(stack, sender: str) -> str:
    """A REST conversation that asked a question, then for a person; its handoff's reference."""
    stack.texts(sender, "how long does delivery take")
    assert "handing you over" in stack.texts(sender, "I want to talk to a real person")
    [record] = stack.handoffs().list(conversation_id=sender)
    return record.reference


# --- In the browser: the customer's widget and the agent's page ---

def log_in(page: Browser, admin: Admin, name: str, target: str) -> None:
    assert page.goto(f"{admin.url}{target}") == 200
    assert page.evaluate("location.pathname") == "/login"  # and back to `target` after logging in
    page.fill("#name", name)
    page.fill("#password", PASSWORDS[name])
    page.click("button:has-text('Log in')")


def wait_bot(customer: Browser, text: str) -> None:
    try:
        customer.wait_text(BOT, text)
    except AssertionError as error:
        raise AssertionError(f"{error}\nThe chat: {customer.texts('.sbw-log .sbw-bubble')}") from None


def test_an_agent_answers_in_the_customers_widget_and_hands_back(admin, stack, demo, browser):
    agent, customer = Browser(), browser
    try:
        log_in(agent, admin, "Sam", "/agents")
        agent.wait_text("h1", "Agent inbox")
        agent.evaluate("window.samePage = true")  # the queue refreshes itself: no reload
        chat(admin, stack, agent, customer, demo)
    finally:
        agent.close()


def chat(admin: Admin, stack, agent: Browser, customer: Browser, demo: str) -> None:
    assert customer.goto(demo + "/") == 200
    customer.click(".sbw-launcher")
    for text, answer in (("where is my order 4817263", "Order 4817263 is on its way"),
                         ("I want to talk to a real person", "handing you over")):
        customer.fill(".sbw-input", text)
        customer.press(".sbw-input", "Enter")
        wait_bot(customer, answer)
    conversation = customer.evaluate("JSON.parse(sessionStorage.getItem('supportbot.widget.v1')).session_id")
    [record] = stack.handoffs().list(conversation_id=conversation)
    reference = record.reference

    item = f"li.handoff[data-reference='{reference}']"
    agent.wait_for(item)
    assert agent.evaluate("window.samePage") is True
    facts = agent.texts(item)[0]
    assert "customer request" in facts and "verified (C-1001)" in facts and "Waiting" in facts
    assert "order_status" in facts and "request_human" in facts  # what the assistant understood

    agent.click(f"{item} button:has-text('Claim {reference}')")
    agent.wait_text("#status", "You claimed this conversation")
    assert agent.evaluate("location.pathname") == f"/agents/{reference}"
    wait_bot(customer, "Sam from support joined the chat.")
    # The context the assistant recorded: each message with its intent, the slots, the steps.
    table = agent.texts(".context table")[0]
    assert "where is my order 4817263" in table and "order_status" in table and "request_human" in table
    assert "customer_verified" in agent.texts(".slots")[0]
    assert "action_handoff" in agent.texts(".steps")[0]
    agent.wait_text("#lines .from-customer", "I want to talk to a real person")  # the chat so far

    agent.evaluate("window.samePage = true")  # a reload would lose it
    agent.fill("#reply", "Hi, I'm Sam. Let me look at your order.")
    started = time.monotonic()
    agent.press("#reply", "Enter")
    wait_bot(customer, "Hi, I'm Sam. Let me look at your order.")
    assert time.monotonic() - started < LIVE
    agent.wait_text("#lines .from-agent", "Let me look at your order")
    assert agent.texts("#lines .from-agent .who")[-1] == "Sam (you)"
    assert agent.evaluate("document.querySelector('#reply').value") == ""
    assert agent.evaluate("document.activeElement.id") == "reply"  # ready for the next one
    assert agent.evaluate("window.samePage") is True

    customer.fill(".sbw-input", "It should have come yesterday, order 4817263")
    customer.press(".sbw-input", "Enter")
    agent.wait_text("#lines .from-customer", "It should have come yesterday")  # live, by polling
    assert agent.evaluate("window.samePage") is True

    agent.reload()  # mid-conversation: the state is the server's
    agent.wait_text("#lines .from-customer", "It should have come yesterday")
    assert agent.texts("#lines .from-agent .said") == ["Hi, I'm Sam. Let me look at your order."]
    assert "claimed by you" in agent.texts("#state")[0] and agent.count("#reply") == 1
    agent.screenshot(str(SCREENSHOT))

    # The bot's intent was wrong: a correction for the learning loop, by the agent's name.
    admin.collect()
    agent.evaluate("document.querySelector('#intent').value = 'complaint'")
    agent.click("button:has-text('Record the right intent')")
    agent.wait_text("#status", "Recorded: the customer wanted complaint")
    [corrected] = [t for t in admin.store.turns(conversation) if t.label == "complaint"]
    assert corrected.label_source == "agent_inbox" and "agent_corrected" in corrected.reasons
    with admin.store.session() as session:
        assert session.get(TurnRow, corrected.id).labelled_by == "Sam"

    agent.click("button:has-text('Hand back to the assistant')")
    agent.wait_text("#status", "Handed back")
    assert agent.count("#reply") == 0 and "handed back by Sam" in agent.texts("#state")[0]
    wait_bot(customer, "You're back with the assistant")
    customer.wait_for(".sbw-survey legend")  # asked for a rating, once
    answered = f"{BOT}:has-text('Order 4817263 is on its way')"
    before = customer.count(answered)
    customer.fill(".sbw-input", "where is my order 4817263")
    customer.press(".sbw-input", "Enter")
    customer.wait_for(f"{answered} >> nth={before}")  # the bot again, still knowing who this is
    assert not any("email address" in text for text in customer.texts(BOT))
    assert stack.handoffs().list(conversation_id=conversation)[0].status == "handed_back"
    assert agent.console_errors() == [] and customer.console_errors() == []


# --- The JSON API and the forms ---

def test_two_agents_claiming_at_once_one_wins_the_other_gets_409(admin, stack, sender):
    reference = handed_off(stack, sender)
    start, answers = threading.Barrier(2), {}

    def claim(caller: str) -> None:
        start.wait()
        answers[caller] = admin.api("POST", f"/api/handoffs/{reference}/claim", caller)

    threads = [threading.Thread(target=claim, args=(caller,)) for caller in ("Ana", "Bo")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers.values()) == [200, 409], {k: a.text for k, a in answers.items()}
    [winner] = [caller for caller, a in answers.items() if a.status_code == 200]
    [loser] = [caller for caller, a in answers.items() if a.status_code == 409]
    assert answers[winner].json()["agent"] == winner and answers[winner].json()["yours"] is True
    assert answers[loser].json()["error"] == f"{reference} is claimed by {winner}."
    assert stack.handoffs().list(conversation_id=sender)[0].claimed_by == winner
    joined = [e["text"] for e in stack.tracker(sender)["events"] if e["event"] == "bot"
              and (e.get("metadata") or {}).get("kind") == "joined"]
    assert joined == [f"{winner} from support joined the chat."]  # the customer hears of one
    # The loser can neither write nor hand back; an agent on the page is told who was first.
    for path, body in (("messages", {"text": "me too"}), ("hand-back", None)):
        refused = admin.api("POST", f"/api/handoffs/{reference}/{path}", loser, json=body)
        assert refused.status_code == 409 and f"claimed by {winner}" in refused.json()["error"]
    kim, csrf = admin.session("Kim")
    page = kim.post(f"{admin.url}/agents/{reference}/claim", data={"csrf": csrf, "from": "queue"}, timeout=30)
    assert page.status_code == 409 and f"Someone else was first: {reference} is claimed by {winner}." in page.text
    assert "<h1>Agent inbox</h1>" in page.text


def test_a_designer_is_refused_and_sees_no_agent_inbox(admin, stack, sender):
    reference = handed_off(stack, sender)
    dana, csrf = admin.session("dana")
    page = dana.get(f"{admin.url}/agents", timeout=10)
    assert page.status_code == 403 and "this is for agents; dana is a designer" in page.text
    assert 'href="/agents"' not in dana.get(f"{admin.url}/", timeout=10).text  # not in the navigation
    claim = dana.post(f"{admin.url}/api/handoffs/{reference}/claim", headers={"X-CSRF-Token": csrf}, timeout=10)
    assert claim.status_code == 403
    assert admin.api("GET", "/api/handoffs", "robot").status_code == 403
    assert admin.api("POST", f"/api/handoffs/{reference}/claim", "robot").status_code == 403
    assert stack.handoffs().list(conversation_id=sender)[0].status == "open"
    sam, _ = admin.session("Sam")
    home = sam.get(f"{admin.url}/", timeout=10).text
    assert 'href="/agents"' in home and 'href="/inbox"' not in home  # and agents see only theirs


def test_a_reload_mid_conversation_shows_the_same_state(admin, stack, sender):
    reference = handed_off(stack, sender)
    sam, csrf = admin.session("Sam")
    claimed = sam.post(f"{admin.url}/agents/{reference}/claim", data={"csrf": csrf}, allow_redirects=False,
                       timeout=30)
    assert claimed.status_code == 303 and claimed.headers["Location"] == f"/agents/{reference}?done=claimed"
    stack.texts(sender, "hello? are you there")  # the bot stays quiet: a person has it
    for _ in range(2):  # the page, then the page again
        page = sam.get(f"{admin.url}/agents/{reference}", timeout=30)
        assert page.status_code == 200 and "claimed by you" in page.text and 'id="reply"' in page.text
        assert "Sam from support joined the chat." in page.text and "hello? are you there" in page.text
    kim, _ = admin.session("Kim")
    other = kim.get(f"{admin.url}/agents/{reference}", timeout=30).text
    assert "Sam is answering this conversation." in other and 'id="reply"' not in other
    state = admin.api("GET", f"/api/handoffs/{reference}").json()
    assert (state["status"], state["agent"], state["yours"], state["verified"]) == ("claimed", "Sam", False, False)
    assert state["context"]["turns"][-1]["intent"] == "request_human"
    lines = admin.api("GET", f"/api/handoffs/{reference}/conversation").json()
    assert (lines["status"], lines["agent"], lines["from"]) == ("claimed", "Sam", 0)
    assert [line["who"] for line in lines["lines"]][-2:] == ["support", "customer"]
    later = admin.api("GET", f"/api/handoffs/{reference}/conversation", params={"after": lines["next"] - 1}).json()
    assert [line["text"] for line in later["lines"]] == ["hello? are you there"]
    # A REST conversation has no open chat to reach: said plainly, and closing still works.
    reply = sam.post(f"{admin.url}/api/handoffs/{reference}/messages", json={"text": "hi"},
                     headers={"X-CSRF-Token": csrf}, timeout=30)
    assert reply.status_code == 400 and "only the web chat" in reply.json()["error"]
    closed = sam.post(f"{admin.url}/agents/{reference}/close", data={"csrf": csrf}, timeout=30)
    assert closed.status_code == 200 and "Closed: the assistant is back" in closed.text
    assert stack.handoffs().list(conversation_id=sender)[0].status == "closed"


@pytest.mark.parametrize("method, path, body, status, problem", [
    ("GET", "/api/handoffs/H-00000000", None, 404, "No handoff 'H-00000000'."),
    ("POST", "/api/handoffs/H-00000000/claim", None, 404, "No handoff"),
    ("GET", "/api/handoffs/{ref}/conversation?after=-1", None, 400, '"after" must be a line number'),
    ("POST", "/api/handoffs/{ref}/messages", "{not json", 400, "not valid JSON"),
    ("POST", "/api/handoffs/{ref}/messages", {"text": 5}, 400, '"text" must be the message'),
    ("POST", "/api/handoffs/{ref}/messages", {"text": "hi", "key": ""}, 400, '"key", when given'),
    ("POST", "/api/handoffs/{ref}/messages", {"text": "hi"}, 409, "is waiting: claim it first"),
    ("POST", "/api/handoffs/{ref}/hand-back", None, 409, "is waiting: claim it first"),
    ("POST", "/api/handoffs/{ref}/correction", {"intent": "invoice_pls"}, 400, "unknown intent 'invoice_pls'"),
    ("POST", "/api/handoffs/{ref}/correction", [], 400, "must be a JSON object"),
])
def test_bad_requests_get_a_clear_error(admin, stack, sender, method, path, body, status, problem):
    reference = handed_off(stack, sender) if "{ref}" in path else ""
    kwargs: Dict = {"data": body} if isinstance(body, str) else {"json": body}
    reply = admin.api(method, path.format(ref=reference), **kwargs)
    assert reply.status_code == status and problem in reply.json()["error"], reply.text


def test_posts_with_the_session_cookie_need_the_csrf_token_and_an_empty_reply_is_refused(admin, stack, sender):
    reference = handed_off(stack, sender)
    sam, csrf = admin.session("Sam")
    assert sam.post(f"{admin.url}/api/handoffs/{reference}/claim", timeout=10).status_code == 403
    guessed = sam.post(f"{admin.url}/agents/{reference}/claim", data={"csrf": "guessed"}, timeout=10)
    assert guessed.status_code == 403
    assert stack.handoffs().list(conversation_id=sender)[0].status == "open"
    assert sam.post(f"{admin.url}/api/handoffs/{reference}/claim", headers={"X-CSRF-Token": csrf},
                    timeout=30).status_code == 200
    empty = sam.post(f"{admin.url}/agents/{reference}/reply", data={"csrf": csrf, "text": "   ", "key": "k1"},
                     timeout=30)
    assert empty.status_code == 400 and "The message is empty." in empty.text
    corrected = sam.post(f"{admin.url}/agents/{reference}/correction", data={"csrf": csrf, "intent": ""},
                         timeout=30)
    assert corrected.status_code == 400 and "choose the intent the customer meant" in corrected.text


def test_a_correction_before_the_collector_read_the_conversation_says_so(admin, stack, sender):
    reference = handed_off(stack, sender)
    reply = admin.api("POST", f"/api/handoffs/{reference}/correction", json={"intent": "complaint"})
    assert reply.status_code == 409 and "no turns of conversation" in reply.json()["error"]
    admin.collect()
    reply = admin.api("POST", f"/api/handoffs/{reference}/correction", json={"intent": "complaint"})
    assert reply.status_code == 200, reply.text
    assert {k: reply.json()[k] for k in ("reference", "conversation_id", "label", "label_source")} == {
        "reference": reference, "conversation_id": sender, "label": "complaint", "label_source": "agent_inbox"}


def queue_of(admin: Admin) -> List[Dict]:
    return admin.api("GET", "/api/handoffs").json()["handoffs"]


def test_the_queue_lists_waiting_and_claimed_handoffs_with_their_context(admin, stack):
    waiting, claimed = (f"test-{uuid.uuid4().hex[:12]}" for _ in range(2))
    references = [handed_off(stack, sender) for sender in (waiting, claimed)]
    assert admin.api("POST", f"/api/handoffs/{references[1]}/claim", "Bo").status_code == 200
    items = {i["reference"]: i for i in queue_of(admin)}
    first, second = items[references[0]], items[references[1]]
    assert (first["status"], first["agent"], first["verified"], first["reason"]) == (
        "open", None, False, "customer_request")
    assert first["summary"]["intents"][-1]["intent"] == "request_human" and first["waiting_seconds"] >= 0
    assert (second["status"], second["agent"], second["yours"]) == ("claimed", "Bo", False)
    assert admin.api("POST", f"/api/handoffs/{references[1]}/close", "Bo").status_code == 200
    assert references[1] not in {i["reference"] for i in queue_of(admin)}  # over: off the queue


def test_the_queue_filters_by_team_and_a_move_takes_the_ticket_along_as_a_routing_correction(admin, stack, sender):
    reference = handed_off(stack, sender)  # no topic the map names: the default team, orders
    [record] = stack.handoffs().list(conversation_id=sender)
    def listed(team: str) -> Dict[str, Dict]:
        return {i["reference"]: i for i in admin.api("GET", f"/api/handoffs?team={team}").json()["handoffs"]}

    assert reference in listed("orders") and reference not in listed("billing")
    unknown = admin.api("GET", "/api/handoffs?team=sales")
    assert unknown.status_code == 400 and "Unknown team 'sales': one of billing, orders" in unknown.json()["error"]
    for body, problem in (({"team": "sales"}, "Unknown team 'sales'"), ({"team": 5}, '"team" must be')):
        refused = admin.api("POST", f"/api/handoffs/{reference}/move", json=body)
        assert refused.status_code == 400 and problem in refused.json()["error"], refused.text
    moved = admin.api("POST", f"/api/handoffs/{reference}/move", json={"team": "billing"})
    assert moved.status_code == 200, moved.text
    assert [moved.json()[k] for k in ("team", "team_name", "priority")] == ["billing", "Billing", "normal"]
    assert stack.tickets().queue_of(record.ticket_id) == ("billing", "normal")
    assert [listed("billing")[reference][k] for k in ("team", "priority")] == ["billing", "normal"]
    # The page: the team's queue, and a move back with the form (a correction each time).
    sam, csrf = admin.session("Sam")
    page = sam.get(f"{admin.url}/agents?team=billing", timeout=30).text
    assert reference in page and 'aria-current="page">Billing</a>' in page
    back = sam.post(f"{admin.url}/agents/{reference}/move", data={"csrf": csrf, "team": "orders"},
                    allow_redirects=False, timeout=30)
    assert back.status_code == 303 and back.headers["Location"] == f"/agents/{reference}?done=moved"
    moves = [(c.from_team, c.to_team, c.agent, c.source, c.reason) for c in routing_corrections(admin.store)
             if c.handoff_id == record.id]
    assert moves == [("orders", "billing", "Ana", "agent_inbox", "customer_request"),
                     ("billing", "orders", "Sam", "agent_inbox", "customer_request")]
