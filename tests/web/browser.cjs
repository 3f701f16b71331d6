// Drives one headless Chromium page for the pytest browser tests (tests/web/chromium.py).
// Reads one JSON command per line on stdin, answers one JSON line on stdout:
//   {"op": "goto", "args": ["http://..."]}  ->  {"ok": true, "result": ...} | {"ok": false, "error": "..."}
// playwright-core comes from web/node_modules (pinned in web/package-lock.json) and uses the
// system Chromium (scripts/install-browser.sh): no browser is downloaded.
const path = require("path");
const readline = require("readline");
const { chromium } = require(path.join(__dirname, "..", "..", "web", "node_modules", "playwright-core"));

const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: FLAGS });
  const viewport = JSON.parse(process.env.VIEWPORT || '{"width": 1280, "height": 800}');
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  const timeout = Number(process.env.STEP_TIMEOUT_MS || 30000);
  const ops = {
    goto: (url) => page.goto(url, { waitUntil: "load" }).then((r) => r && r.status()),
    reload: () => page.reload({ waitUntil: "load" }).then(() => null),
    click: (sel) => page.locator(sel).click({ timeout }),
    fill: (sel, text) => page.locator(sel).fill(text, { timeout }),
    press: (sel, key) => page.locator(sel).press(key, { timeout }),
    keyboard: (key) => page.keyboard.press(key),
    type: (text) => page.keyboard.type(text),
    wait_for: (sel, state) => page.locator(sel).first().waitFor({ state: state || "visible", timeout }).then(() => true),
    wait_text: (sel, text) => page.locator(sel, { hasText: text }).first().waitFor({ timeout }).then(() => true),
    count: (sel) => page.locator(sel).count(),
    texts: (sel) => page.locator(sel).allInnerTexts(),
    attr: (sel, name) => page.locator(sel).first().getAttribute(name, { timeout }),
    evaluate: (js) => page.evaluate(js),
    focused: () => page.evaluate(() => {
      const a = document.activeElement;
      return a ? (a.getAttribute("aria-label") || a.textContent || a.id || a.tagName).trim() : null;
    }),
    screenshot: (file, sel) => (sel ? page.locator(sel).screenshot({ path: file }) : page.screenshot({ path: file }))
      .then(() => file),
    viewport: (width, height) => page.setViewportSize({ width, height }),
    // Runs before any page script, on every page load (e.g. to hand the widget a forged token).
    init_script: (js) => page.addInitScript(js),
    console_errors: () => consoleErrors.slice(),
    requests: () => requests.slice(),
  };
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    let reply;
    try {
      const { op, args } = JSON.parse(line);
      if (op === "close") break;
      if (!ops[op]) throw new Error(`unknown op ${op}`);
      const result = await ops[op](...(args || []));
      reply = { ok: true, result: result === undefined ? null : result };
    } catch (error) {
      reply = { ok: false, error: String(error && error.message ? error.message : error) };
    }
    process.stdout.write(JSON.stringify(reply) + "\n");
  }
  await browser.close();
}

main().catch((error) => { console.error(error); process.exit(1); });
