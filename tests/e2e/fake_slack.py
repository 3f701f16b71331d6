"""A local fake of Slack's Web API, for the Slack channel tests.

Slack's cloud cannot be reached from here (and tests must not post to a real workspace), so
Slack's Web API — and only it — is faked: the Rasa server, the action server and the billing
service under test are the real ones, and the Slack events the tests send are signed exactly as
Slack signs them. The Rasa server is pointed at this fake through SLACK_API_URL.

It records every `chat.postMessage` call (channel, text, thread_ts, blocks, the bearer token
and whether `as_user` was sent) and answers `{"ok": true, "ts": ...}` like Slack does;
`chat.postEphemeral` is recorded the same way, with `ephemeral` naming the one user who sees it.
`auth.test` answers with a fixed bot identity and `users.info` with the people in USERS. Any
other method gets Slack's `unknown_method` error, so an unexpected call shows up in the Rasa log.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import parse_qsl, urlsplit

# The fake workspace's credentials (what Slack shows on the app's settings pages).
BOT_TOKEN = "xoxb-test-bot-token"
SIGNING_SECRET = "test-slack-signing-secret"
TEAM_ID = "T0TESTTEAM"
BOT_USER_ID = "U0SUPPORTBOT"
AGENTS_CHANNEL = "C0AGENTS01"  # SUPPORTBOT_AGENTS_SLACK_CHANNEL: where handoffs are posted
# The workspace's people (users.info): id -> (handle, display name).
USERS = {"U0DANA": ("dana.k", "Dana"), "U0SAM": ("sam.r", "Sam")}


class FakeSlack:
    def __init__(self) -> None:
        self.posts: List[Dict[str, Any]] = []
        self.calls: List[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))

    @property
    def url(self) -> str:
        """What SLACK_API_URL is set to: the base URL Slack's methods are appended to."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def start(self) -> FakeSlack:
        threading.Thread(target=self._server.serve_forever, name="fake-slack", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, method: str, params: Dict[str, Any], token: str) -> Dict[str, Any]:
        with self._lock:
            self.calls.append(method)
            if method == "auth.test":
                return {"ok": True, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "B0SUPPORTBOT"}
            if method == "users.info":
                if params.get("user") not in USERS:
                    return {"ok": False, "error": "user_not_found"}
                handle, display = USERS[params["user"]]
                return {"ok": True, "user": {"id": params["user"], "name": handle, "real_name": display.upper(),
                                             "profile": {"display_name": display}}}
            if method not in ("chat.postMessage", "chat.postEphemeral"):
                return {"ok": False, "error": "unknown_method"}
            ts = f"{time.time():.6f}"
            self.posts.append({
                "channel": params.get("channel"), "text": params.get("text"),
                "thread_ts": params.get("thread_ts"), "blocks": params.get("blocks"),
                "token": token, "as_user": "as_user" in params, "ts": ts,
                "ephemeral": params.get("user") if method == "chat.postEphemeral" else None,
            })
            if method == "chat.postEphemeral":
                return {"ok": True, "message_ts": ts}
            return {"ok": True, "channel": params.get("channel"), "ts": ts,
                    "message": {"text": params.get("text"), "ts": ts}}

    def posted(self, channel: str, thread_ts: Optional[str] = None) -> List[Dict[str, Any]]:
        """Messages posted to a channel (and thread), oldest first."""
        with self._lock:
            return [p for p in self.posts if p["channel"] == channel
                    and (thread_ts is None or p["thread_ts"] == thread_ts)]

    def wait_for(self, channel: str, until: Callable[[List[Dict[str, Any]]], bool],
                 thread_ts: Optional[str] = None, timeout: float = 30) -> List[Dict[str, Any]]:
        """Poll until `until(posted messages)` holds; the messages, or AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            posts = self.posted(channel, thread_ts)
            if until(posts):
                return posts
            if time.monotonic() > deadline:
                raise AssertionError(f"Slack never got the expected messages in {channel}: {posts}")
            time.sleep(0.1)


def _handler(fake: FakeSlack) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query))  # a GET method (users.info) takes its arguments here
            if "json" in (self.headers.get("Content-Type") or ""):
                params.update(json.loads(body or "{}"))
            else:
                params.update(parse_qsl(body))
            token = (self.headers.get("Authorization") or "").replace("Bearer ", "")
            answer = json.dumps(fake.record(url.path.rstrip("/").rsplit("/", 1)[-1], params, token))
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(answer.encode())))
            self.end_headers()
            self.wfile.write(answer.encode())

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
