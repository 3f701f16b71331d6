// The agent inbox without reloads (supportbot/admin/agents.py). The queue refreshes itself; a
// conversation page asks for new lines every second (GET /api/handoffs/<ref>/conversation) and
// reloads itself when the handoff changes hands or ends; a reply is posted as JSON with an
// idempotency key, so a retry after an error sends it once. Without JavaScript the forms work.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = document.getElementById("status");
  let pollFailed = false;

  function say(text, kind) {
    status.textContent = text;
    status.className = "flash " + kind;
  }

  function toLogin() {
    window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
  }

  function newKey() {  // crypto.randomUUID needs a secure context; this does not
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // --- The queue ---
  const queue = document.getElementById("queue");
  if (queue) {
    let shown = queue.innerHTML;
    let pointed = 0;
    queue.addEventListener("pointermove", () => { pointed = Date.now(); });
    const refresh = async () => {
      try {
        const reply = await fetch("/agents/queue" + location.search, { credentials: "same-origin" });
        if (reply.status === 401) return toLogin();
        const html = await reply.text();
        // Never under the agent's focus or moving pointer: a Claim button must not move away.
        const busy = queue.contains(document.activeElement) || Date.now() - pointed < 2000;
        if (reply.ok && html !== shown && !busy) {
          queue.innerHTML = html;
          shown = html;
        }
      } catch (error) { /* the next round tries again */ }
      setTimeout(refresh, Number(queue.dataset.refresh) * 1000);
    };
    setTimeout(refresh, Number(queue.dataset.refresh) * 1000);
  }

  // --- One conversation ---
  const log = document.getElementById("lines");
  if (!log) return;
  const reference = log.dataset.reference;
  let next = Number(log.dataset.next);

  function append(line) {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const item = document.createElement("li");
    item.className = "line from-" + line.who;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = line.speaker;
    const at = document.createElement("time");
    at.dateTime = line.at;
    at.textContent = line.time;
    const said = document.createElement("p");
    said.className = "said";
    said.textContent = line.text;
    item.append(who, " ", at, said);
    log.append(item);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  async function poll() {
    try {
      const reply = await fetch("/api/handoffs/" + encodeURIComponent(reference) + "/conversation?after=" + next,
                                { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (reply.status === 401) return toLogin();
      const body = await reply.json();
      if (!reply.ok) throw new Error(body.error);
      if (body.from < next) log.replaceChildren();  // the chat restarted: all of it again
      body.lines.forEach(append);
      next = body.next;
      if (pollFailed) say("", "");
      pollFailed = false;
      if (body.status !== log.dataset.status || (body.agent || "") !== log.dataset.agent) {
        window.location.reload();  // claimed, handed back or closed elsewhere: show the new controls
        return;
      }
    } catch (error) {
      pollFailed = true;
      say("Could not fetch new messages (" + error.message + "): trying again.", "error");
    }
    setTimeout(poll, document.hidden ? 5000 : Number(log.dataset.poll) * 1000);
  }
  setTimeout(poll, Number(log.dataset.poll) * 1000);
  log.scrollTop = log.scrollHeight;

  const form = document.getElementById("reply-form");
  if (!form) return;
  const text = form.elements.text;
  const button = form.querySelector("button[type=submit]");

  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!text.value.trim()) {
      say("Type a message first.", "error");
      return;
    }
    button.disabled = true;
    try {
      const reply = await fetch("/api/handoffs/" + encodeURIComponent(reference) + "/messages", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ text: text.value, key: form.elements.key.value }),
      });
      if (reply.status === 401) return toLogin();
      const body = await reply.json();
      if (!reply.ok) {
        say(body.error, "error");  // text and key stay: sending again is the same message
        return;
      }
      text.value = "";
      form.elements.key.value = newKey();
      say(body.delivered ? "Sent." : "Saved: the customer's chat is not open; they get it when they come back.",
          "done");
    } catch (error) {
      say("The admin app did not answer (" + error.message + "): send again, it goes out once.", "error");
    } finally {
      button.disabled = false;
      text.focus();
    }
  });
})();
