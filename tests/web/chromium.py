"""A headless Chromium page driven from Python: pytest talks JSON lines to browser.cjs, a
small Playwright (playwright-core, npm) script using the system Chromium."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
PLAYWRIGHT = HERE.parent.parent / "web" / "node_modules" / "playwright-core"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def missing() -> Optional[str]:
    """Why the browser tests cannot run here, or None."""
    if not shutil.which("node"):
        return "node is not installed"
    if not PLAYWRIGHT.is_dir():
        return "web/node_modules is missing: run `cd web && npm ci && npm run build` (make web)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: run scripts/install-browser.sh (make browser)"
    return None


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, viewport: Optional[Dict[str, int]] = None, step_timeout_ms: int = 30000) -> None:
        env = {**os.environ, "CHROMIUM": CHROMIUM, "STEP_TIMEOUT_MS": str(step_timeout_ms)}
        if viewport:
            env["VIEWPORT"] = json.dumps(viewport)
        self.process = subprocess.Popen(["node", str(HERE / "browser.cjs")], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env, text=True, bufsize=1)

    def call(self, op: str, *args: Any) -> Any:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"op": op, "args": list(args)}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise BrowserError(f"the browser driver exited with {self.process.wait(timeout=10)}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise BrowserError(f"{op}{args}: {reply['error']}")
        return reply["result"]

    def __getattr__(self, op: str) -> Any:
        return lambda *args: self.call(op, *args)

    def texts(self, selector: str) -> List[str]:
        return self.call("texts", selector)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write('{"op": "close"}\n')
                self.process.stdin.close()
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
