"""Browser tests of the web widget: the real stack (billing, actions, Rasa with the trained
model) from tests/e2e, plus the demo store, driven in headless Chromium (browser.py)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Iterator

import pytest

from supportbot import processes

HERE = Path(__file__).resolve().parent
E2E = HERE.parent / "e2e"
WIDGET_DIST = HERE.parent.parent / "web" / "dist"

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(E2E))  # the e2e conftest imports fake_slack
import browser as browser_driver  # noqa: E402

# Reuse the e2e suite's stack fixture rather than copy it. (It is defined per directory, so a
# full run starts one stack for tests/e2e and one for tests/web.)
_spec = importlib.util.spec_from_file_location("e2e_stack_fixtures", E2E / "conftest.py")
e2e = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)
stack, slack_api, identity_secret, sender = e2e.stack, e2e.slack_api, e2e.identity_secret, e2e.sender
IDENTITY_SECRET, Stack = e2e.IDENTITY_SECRET, e2e.Stack


@pytest.fixture(scope="session")
def demo(stack: Stack, repo: Path) -> Iterator[str]:
    """The demo store's URL, signing tokens with the secret the action server verifies."""
    if browser_driver.missing():
        pytest.fail(browser_driver.missing())
    if not (WIDGET_DIST / "widget.js").exists():
        pytest.fail("web/dist is missing: run `cd web && npm ci && npm run build` (make web)")
    # The port the stack reserved: Rasa allows this origin (SUPPORTBOT_ALLOWED_ORIGINS).
    server = processes.demo_server(stack.demo_port, stack.rasa_url, stack.billing_url, stack.log_dir,
                                   stack.env, repo)
    with processes.running([server], timeout=60):
        yield server.url


@pytest.fixture
def browser() -> Iterator[browser_driver.Browser]:
    reason = browser_driver.missing()
    if reason:
        pytest.fail(reason)
    page = browser_driver.Browser()
    yield page
    page.close()
