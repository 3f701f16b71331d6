"""Browser tests of the web widget: the session's stack (tests/plugins/stack.py: billing,
actions, Rasa with the trained model), plus the demo store, driven in headless Chromium
(chromium.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import chromium
import pytest
from plugins.stack import Stack

from supportbot import processes

WIDGET_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


@pytest.fixture(scope="session")
def demo(stack: Stack, repo: Path) -> Iterator[str]:
    """The demo store's URL, signing tokens with the secret the action server verifies."""
    if chromium.missing():
        pytest.fail(chromium.missing())
    if not (WIDGET_DIST / "widget.js").exists():
        pytest.fail("web/dist is missing: run `cd web && npm ci && npm run build` (make web)")
    # The port the stack reserved: Rasa allows this origin (SUPPORTBOT_ALLOWED_ORIGINS).
    server = processes.demo_server(stack.demo_port, stack.rasa_url, stack.billing_url, stack.log_dir,
                                   stack.env, repo)
    with processes.running([server], timeout=60):
        yield server.url


@pytest.fixture
def browser() -> Iterator[chromium.Browser]:
    reason = chromium.missing()
    if reason:
        pytest.fail(reason)
    page = chromium.Browser()
    yield page
    page.close()
