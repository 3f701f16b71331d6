// The NLU inbox without reloads: a decision button posts the same decision to /api/decisions as
// its form would to /inbox/decisions, then the decided entries leave the page and the status line
// says what happened. Without JavaScript the forms still work (the page comes back with the result).
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = document.getElementById("status");

  function say(text, kind) {
    status.textContent = text;
    status.className = "flash " + kind;
  }

  function idsOf(value) {
    return value.split(",").filter(Boolean).map(Number);
  }

  // Takes the decided entries off the page; a group left empty goes too.
  function remove(ids) {
    const decided = new Set(ids);
    let more = false;
    document.querySelectorAll("section.group").forEach((group) => {
      group.querySelectorAll("li.entry").forEach((entry) => {
        if (idsOf(entry.dataset.ids).some((id) => decided.has(id))) entry.remove();
      });
      const left = Array.from(group.querySelectorAll("li.entry"));
      if (!left.length) {
        more = more || group.dataset.more === "1";
        group.remove();
        return;
      }
      group.querySelector(".whole-group input[name=ids]").value = left.map((e) => e.dataset.ids).join(",");
      group.querySelector(".whole-group .count").textContent =
        left.reduce((sum, e) => sum + Number(e.dataset.messages), 0);
    });
    return more;
  }

  async function decide(form, button) {
    const ids = idsOf(form.elements.ids.value);
    const body = { ids: ids, decision: button.value === "relabel" ? "accepted" : button.value };
    if (button.value === "relabel") {
      if (!form.elements.label.value) {
        say("Choose the intent to relabel as.", "error");
        form.elements.label.focus();
        return;
      }
      body.label = form.elements.label.value;
    }
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    let reply, result;
    try {
      reply = await fetch("/api/decisions", {
        method: "POST", credentials: "same-origin", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      });
      result = await reply.json();
    } catch (error) {
      say("The admin app did not answer (" + error + "): try again.", "error");
      buttons.forEach((b) => { b.disabled = false; });
      return;
    }
    if (reply.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      return;
    }
    if (!reply.ok && reply.status !== 409) {
      say(result.error, "error");
      buttons.forEach((b) => { b.disabled = false; });
      return;
    }
    const more = remove(ids);
    let text = reply.ok ? result.message : "Someone had already reviewed these: " + result.error + ".";
    if (more) text += " Reload the page for the next entries.";
    say(text, reply.ok ? "done" : "error");
    status.focus();
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.classList.contains("decide") || !event.submitter) return;
    event.preventDefault();
    decide(form, event.submitter);
  });
})();
