"""The admin app's NLU inbox (supportbot/admin/, docs/learning.md#the-designer-page): a designer
logs in and reviews real captured turns in headless Chromium; its JSON API refuses the wrong
callers, forged or missing CSRF tokens and bad input, and tells the second of two decisions that
the item was already reviewed. One admin app process on a SQLite learning store per module;
each test writes its own turns through the collector, as Rasa's event broker would deliver them."""
from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import jwt
import pytest
import requests
import sqlalchemy
from chromium import Browser

from supportbot import processes
from supportbot.admin.accounts import hash_password
from supportbot.learning.collector import Collector
from supportbot.learning.store import LearningStore, TurnRow

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "results" / "web" / "admin-inbox.png"  # to look at the page; results/ is not committed
SECRET = "test-admin-session-secret-of-40-characters"
PASSWORDS = {"dana": "dana-the-designer", "sam": "sam-the-agent", "lee": "lee-the-designer"}
DESIGNER_TOKEN, AGENT_TOKEN = "designer-program-token-1", "agent-program-token-2"


class Admin:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.db_url = f"sqlite:///{tmp / 'learning.db'}"
        self.events_url = f"sqlite:///{tmp / 'events.db'}"
        self.store = LearningStore(self.db_url)
        self.collector = Collector(self.store, self.events_url, f"sqlite:///{tmp / 'feedback.db'}")
        self.events = sqlalchemy.create_engine(self.events_url)

    def capture(self, channel: str, *turns: Tuple[str, str, float]) -> List[int]:
        """Customer turns (text, the model's intent, its confidence) as Rasa publishes them, one
        conversation each, collected into the learning store; their ids."""
        conversations = [f"c-{uuid.uuid4().hex}" for _ in turns]
        with self.events.begin() as db:
            for conversation, (text, intent, confidence) in zip(conversations, turns):
                event = {"event": "user", "text": text, "input_channel": channel, "timestamp": time.time(),
                         "message_id": uuid.uuid4().hex,
                         "parse_data": {"intent": {"name": intent, "confidence": confidence},
                                        "intent_ranking": [{"name": intent, "confidence": confidence}],
                                        "entities": []}}
                db.exec_driver_sql("INSERT INTO events (sender_id, data) VALUES (?, ?)",
                                   (conversation, json.dumps(event)))
        self.collector.run_once()
        ids = [t.id for c in conversations for t in self.store.turns(c)]
        assert len(ids) == len(turns)
        return ids

    def turn(self, turn_id: int):
        return next(t for t in self.store.turns() if t.id == turn_id)

    def session(self, name: str) -> Tuple[requests.Session, str]:
        """A logged-in HTTP session and its CSRF token."""
        http = requests.Session()
        csrf = login_csrf(http, self.url)
        reply = http.post(f"{self.url}/login", data={"name": name, "password": PASSWORDS[name], "csrf": csrf},
                          allow_redirects=False, timeout=10)
        assert reply.status_code == 303, reply.text
        page = http.get(f"{self.url}/", timeout=10)
        return http, re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def login_csrf(http: requests.Session, url: str) -> str:
    page = http.get(f"{url}/login", timeout=10)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


@pytest.fixture(scope="module")
def admin(tmp_path_factory) -> Iterator[Admin]:
    tmp = tmp_path_factory.mktemp("admin")
    port = processes.free_port()
    admin = Admin(f"http://127.0.0.1:{port}", tmp)
    roles = {"dana": "designer", "sam": "agent", "lee": "designer"}
    env = {
        # Cheap hashes keep the tests quick; the app checks any iteration count alike.
        "SUPPORTBOT_ADMIN_ACCOUNTS": ",".join(f"{name}:{roles[name]}:{hash_password(password, 1000)}"
                                              for name, password in PASSWORDS.items()),
        "SUPPORTBOT_ADMIN_API_TOKENS": f"robot:designer:{DESIGNER_TOKEN},helpdesk:agent:{AGENT_TOKEN}",
        "SUPPORTBOT_ADMIN_SECRET": SECRET,
    }
    server = processes.admin_server(port, tmp / "logs", env, REPO, admin.db_url)
    with processes.running([server], timeout=60):
        yield admin


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api(admin: Admin, method: str, path: str, token: str = DESIGNER_TOKEN, **kwargs) -> requests.Response:
    return requests.request(method, f"{admin.url}{path}", headers=bearer(token), timeout=10, **kwargs)


def test_a_designer_relabels_one_entry_and_rejects_a_group_in_the_browser(admin, browser: Browser):
    wrong = admin.capture("browser", ("I want my money back for the broken lamp, card 4111 1111 1111 1111",
                                      "order_status", 0.45))[0]
    noise = admin.capture("browser", ("qwerty zxcv", "greet", 0.31), ("lorem ipsum dolor", "greet", 0.28),
                          ("Lorem ipsum, dolor!", "greet", 0.33))  # the last two are one entry
    elsewhere = admin.capture("slack", ("blorp blorp", "greet", 0.3))[0]  # filtered out below

    assert browser.goto(f"{admin.url}/inbox") == 200
    assert browser.evaluate("location.pathname") == "/login"  # redirected, and back after logging in
    browser.fill("#name", "dana")
    browser.fill("#password", PASSWORDS["dana"])
    browser.click("button:has-text('Log in')")
    browser.wait_text("h1", "NLU inbox")
    browser.evaluate("document.querySelector('#source').value = 'browser'")
    browser.click(".filter button:has-text('Show')")
    browser.wait_for("section.group")
    assert "source=browser" in browser.evaluate("location.search")
    assert browser.count("li.entry:has-text('blorp')") == 0

    # The text as stored (masked), what the model thought, why, how many messages it stands for.
    entry = "li.entry:has-text('broken lamp')"
    text = browser.texts(f"{entry} .text")[0]
    assert text == "I want my money back for the broken lamp, card [card number ending 1111]"
    facts = browser.texts(f"{entry} .facts")[0]
    assert "order_status, 45% sure" in facts and "low confidence" in facts and "1 message" in facts
    assert "2 messages" in browser.texts("li.entry:has-text('lorem ipsum')")[0]

    browser.screenshot(str(SCREENSHOT))
    browser.evaluate("window.samePage = true")  # a reload or redirect would lose it
    browser.evaluate(f"document.querySelector(\"li.entry[data-ids='{wrong}'] select\").value = 'request_refund'")
    browser.click(f"{entry} button:has-text('Relabel')")
    browser.wait_text("#status", "1 message relabelled as request_refund.")
    assert browser.count(entry) == 0  # gone without a reload

    group = "section.group:has(h2:text-is('greet'))"
    assert browser.texts(f"{group} .whole-group legend") == ["All 3 messages shown in this group"]
    browser.click(f"{group} button:has-text('Reject all')")
    browser.wait_text("#status", "3 messages rejected.")
    assert browser.count(group) == 0
    assert browser.evaluate("window.samePage") is True

    assert (admin.turn(wrong).status, admin.turn(wrong).label, admin.turn(wrong).label_source) == (
        "accepted", "request_refund", "reviewer")
    assert [admin.turn(i).status for i in noise] == ["rejected"] * 3
    assert admin.turn(elsewhere).status == "new"  # another source: not part of the group shown

    browser.reload()  # decided entries stay decided
    assert browser.count("li.entry:has-text('broken lamp')") == 0
    assert browser.count("li.entry:has-text('qwerty')") == 0
    assert browser.console_errors() == []  # no script or content-security-policy errors

    browser.click("button:has-text('Log out')")
    browser.wait_text("h1", "Log in")
    assert browser.goto(f"{admin.url}/inbox") == 200 and browser.evaluate("location.pathname") == "/login"


def test_the_queue_api_groups_entries_by_intent_with_what_the_page_shows(admin):
    ids = admin.capture("api-queue", ("where my parcel at", "order_status", 0.5),
                        ("Where my parcel at?", "order_status", 0.4), ("cancel it all", "cancel_order", 0.2))
    reply = api(admin, "GET", "/api/queue", params={"source": "api-queue"})
    assert reply.status_code == 200, reply.text
    queue = reply.json()
    assert queue["source"] == "api-queue" and "api-queue" in queue["sources"] and queue["messages"] == 3
    assert [g["label"] for g in queue["groups"]] == ["order_status", "cancel_order"]  # by value: 2 × 0.55
    parcel = queue["groups"][0]["entries"][0]
    assert parcel["ids"] == ids[:2] and parcel["messages"] == 2 and parcel["confidence"] == pytest.approx(0.45)
    assert (parcel["intent"], parcel["reasons"], parcel["acceptable"]) == (
        "order_status", ["low_confidence"], True)


def test_logging_in_sets_a_signed_http_only_strict_cookie(admin):
    http = requests.Session()
    csrf = login_csrf(http, admin.url)
    for name in ("dana", "nobody"):  # a wrong password or name: no hint which
        wrong = http.post(f"{admin.url}/login", data={"name": name, "password": "guess", "csrf": csrf}, timeout=10)
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    forged = requests.post(f"{admin.url}/login", data={"name": "dana", "password": PASSWORDS["dana"]},
                           allow_redirects=False, timeout=10)
    assert forged.status_code == 403  # no CSRF token: a login form posted from elsewhere
    data = {"name": "dana", "password": PASSWORDS["dana"], "csrf": csrf, "next": "//evil.example/"}
    reply = http.post(f"{admin.url}/login", data=data, allow_redirects=False, timeout=10)
    assert reply.status_code == 303 and reply.headers["Location"] == "/"  # never to another site
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    claims = jwt.decode(http.cookies["supportbot_admin"], SECRET, ["HS256"], audience="supportbot-admin")
    assert claims["sub"] == "dana" and claims["role"] == "designer" and claims["csrf"] != csrf  # a new token
    assert http.get(f"{admin.url}/api/queue", timeout=10).status_code == 200


def test_callers_without_a_valid_session_or_token_get_401_and_the_wrong_role_403(admin):
    assert requests.get(f"{admin.url}/api/queue", timeout=10).status_code == 401
    bad = api(admin, "GET", "/api/queue", token="not-a-token-of-ours")
    assert bad.status_code == 401 and "bearer token is not valid" in bad.json()["error"]
    assert api(admin, "GET", "/api/queue", token=AGENT_TOKEN).status_code == 403
    agent, _ = admin.session("sam")
    page = agent.get(f"{admin.url}/inbox", timeout=10)
    assert page.status_code == 403 and "this is for designers" in page.text
    dana, _ = admin.session("dana")
    cookie = dana.cookies["supportbot_admin"]
    now = int(time.time())
    for forged in (
        cookie[:-3] + ("abc" if not cookie.endswith("abc") else "xyz"),  # tampered with
        jwt.encode({"aud": "supportbot-admin", "sub": "dana", "role": "designer", "csrf": "x", "exp": now + 60},
                   "another-secret-that-is-long-enough-32", algorithm="HS256"),
        jwt.encode({"aud": "supportbot-admin", "sub": "dana", "role": "designer", "csrf": "x", "exp": now - 1},
                   SECRET, algorithm="HS256"),  # expired
        jwt.encode({"aud": "supportbot-admin", "sub": "dana", "role": "designer", "csrf": "x", "ver": "old",
                    "exp": now + 60}, SECRET, algorithm="HS256"),  # signed before a password change
    ):
        reply = requests.get(f"{admin.url}/api/queue", cookies={"supportbot_admin": forged}, timeout=10)
        assert reply.status_code == 401, forged


def test_posts_with_the_session_cookie_need_its_csrf_token(admin):
    item = admin.capture("csrf", ("hmm what about that thing", "order_status", 0.3))[0]
    dana, csrf = admin.session("dana")
    body = {"ids": [item], "decision": "rejected"}
    url = f"{admin.url}/api/decisions"
    assert dana.post(url, json=body, timeout=10).status_code == 403
    assert dana.post(url, json=body, headers={"X-CSRF-Token": "guessed"}, timeout=10).status_code == 403
    other_site = dana.post(url, json=body, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
                           timeout=10)
    assert other_site.status_code == 403
    assert admin.turn(item).status == "new"
    ok = dana.post(url, json=body, headers={"X-CSRF-Token": csrf, "Origin": admin.url}, timeout=10)
    assert ok.status_code == 200 and ok.json()["message"] == "1 message rejected."
    assert admin.turn(item).status == "rejected"


@pytest.mark.parametrize("body, problem", [
    ("{not json", "not valid JSON"),
    ([1, 2], "must be a JSON object"),
    ({"ids": "1", "decision": "rejected"}, '"ids" must be a list'),
    ({"ids": [True], "decision": "rejected"}, '"ids" must be a list'),
    ({"ids": [], "decision": "rejected"}, '"ids" must be a list'),
    ({"ids": [1], "decision": "maybe"}, '"decision" must be one of accepted, rejected, out_of_scope'),
    ({"ids": [1], "decision": "accepted", "label": "order_stauts"}, "unknown intent 'order_stauts'"),
    ({"ids": [1], "decision": "rejected", "label": "order_status"}, '"label" goes only with'),
    ({"ids": [987654321], "decision": "rejected"}, "unknown item ids: 987654321"),
    ({"ids": [2**70], "decision": "rejected"}, '"ids" must be a list'),
])
def test_bad_decisions_are_refused_with_a_400_that_says_why(admin, body, problem):
    data = body if isinstance(body, str) else json.dumps(body)
    reply = api(admin, "POST", "/api/decisions", data=data)
    assert reply.status_code == 400 and problem in reply.json()["error"], reply.text


def test_the_second_decision_on_an_item_is_a_409(admin):
    first, second = admin.capture("twice", ("do the thing with the stuff", "order_status", 0.5),
                                  ("the other stuff thing", "order_status", 0.4))
    accept = {"ids": [first], "decision": "accepted", "label": "faq/gift_cards"}
    assert api(admin, "POST", "/api/decisions", json=accept).json()["changed"] == 1
    again = api(admin, "POST", "/api/decisions", json={"ids": [first], "decision": "rejected"})
    assert again.status_code == 409 and "already reviewed" in again.json()["error"]
    assert (admin.turn(first).status, admin.turn(first).label) == ("accepted", "faq/gift_cards")
    both = api(admin, "POST", "/api/decisions", json={"ids": [first, second], "decision": "out_of_scope"})
    assert both.status_code == 200  # the pending one is decided, the other named
    assert {**both.json(), "message": ""} == {"changed": 1, "already_reviewed": [first],
                                              "decision": "out_of_scope", "label": None, "message": ""}
    assert both.json()["message"] == "1 message marked out of scope; 1 had already been reviewed."


def test_the_page_works_without_javascript(admin):
    item = admin.capture("no-js", ("tell me about the blue one", "order_status", 0.35))[0]
    dana, csrf = admin.session("dana")
    form = {"csrf": csrf, "ids": str(item), "decision": "relabel", "label": "", "source": "no-js"}
    missing = dana.post(f"{admin.url}/inbox/decisions", data=form, timeout=10)
    assert missing.status_code == 400 and "choose the intent to relabel as" in missing.text
    reply = dana.post(f"{admin.url}/inbox/decisions", data={**form, "label": "faq/delivery_options"},
                      allow_redirects=False, timeout=10)
    assert reply.status_code == 303 and reply.headers["Location"].startswith("/inbox?source=no-js&done=accepted")
    page = dana.get(admin.url + reply.headers["Location"], timeout=10)
    assert "1 message relabelled as faq/delivery_options." in page.text and "blue one" not in page.text
    assert admin.turn(item).label == "faq/delivery_options"
    twice = dana.post(f"{admin.url}/inbox/decisions", data={**form, "decision": "rejected"}, timeout=10)
    assert twice.status_code == 409 and "already reviewed" in twice.text


def test_logging_out_ends_the_session_even_for_a_copy_of_the_cookie(admin):
    dana, csrf = admin.session("dana")
    copy = dana.cookies["supportbot_admin"]
    out = dana.post(f"{admin.url}/logout", data={"csrf": csrf}, allow_redirects=False, timeout=10)
    assert out.status_code == 303 and out.headers["Location"] == "/login"
    assert dana.get(f"{admin.url}/api/queue", timeout=10).status_code == 401
    copied = requests.get(f"{admin.url}/api/queue", cookies={"supportbot_admin": copy}, timeout=10)
    assert copied.status_code == 401


def test_wrong_passwords_pause_logins_for_that_name(admin):
    http = requests.Session()
    csrf = login_csrf(http, admin.url)
    for _ in range(10):
        data = {"name": "lee", "password": "wrong", "csrf": csrf}
        assert http.post(f"{admin.url}/login", data=data, timeout=10).status_code == 401
    right = http.post(f"{admin.url}/login", data={"name": "lee", "password": PASSWORDS["lee"], "csrf": csrf},
                      timeout=10)
    assert right.status_code == 429 and "Too many wrong passwords" in right.text


def test_an_agent_corrects_a_conversations_intent(admin):
    turn = admin.capture("corrections", ("I need the invoice for march", "order_status", 0.9))[0]
    conversation = admin.turn(turn).conversation_id
    body = {"conversation_id": conversation, "intent": "faq/payment_methods", "turn_id": turn}
    reply = api(admin, "POST", "/api/corrections", token=AGENT_TOKEN, json=body)
    assert reply.status_code == 200, reply.text
    assert {**reply.json(), "confidence": None} == {
        "id": turn, "conversation_id": conversation, "text": "I need the invoice for march",
        "intent": "order_status", "confidence": None, "label": "faq/payment_methods", "label_source": "admin",
        "status": "new"}
    stored = admin.store.turns(conversation)[0]
    assert (stored.label, stored.label_source, "agent_corrected" in stored.reasons) == (
        "faq/payment_methods", "admin", True)
    with admin.store.session() as session:  # who corrected it: the token's caller
        assert session.get(TurnRow, turn).labelled_by == "helpdesk"
    # A corrected turn waits in the designers' queue under its new label.
    queue = api(admin, "GET", "/api/queue", params={"source": "admin"}).json()
    waiting = [e["ids"] for g in queue["groups"] if g["label"] == "faq/payment_methods" for e in g["entries"]]
    assert waiting == [[turn]]
    for bad, problem in (({**body, "intent": "invoice_please"}, "unknown intent 'invoice_please'"),
                         ({**body, "turn_id": turn + 1000}, f"no turn {turn + 1000} in conversation"),
                         ({"intent": "faq/payment_methods"}, '"conversation_id" must be'),
                         ({**body, "turn_id": "1"}, '"turn_id", when given, must be a positive integer'),
                         ({**body, "turn_id": 2**70}, '"turn_id", when given, must be a positive integer')):
        refused = api(admin, "POST", "/api/corrections", token=AGENT_TOKEN, json=bad)
        assert refused.status_code == 400 and problem in refused.json()["error"], refused.text
