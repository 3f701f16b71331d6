/*
 * Northwind support chat widget: a small, dependency-free client for Rasa's socket.io
 * channel (socket.io-client 4, Engine.IO 4). See docs/web-widget.md.
 *
 *   <script src="/widget/socket.io.min.js"></script>
 *   <script src="/widget/widget.js"></script>
 *   <script>SupportWidget.mount({socketUrl: "https://bot.example.com", customerToken: "...",
 *                                page: {path: location.pathname, order_id: "4817263"}});</script>
 *
 * The conversation (session id, its session key, the messages and the handoff's state) is kept
 * in sessionStorage, so it survives a reload and moving between pages of the same tab, and is
 * gone when the tab is closed. The server gives the session key with the session id; only a
 * client presenting it rejoins the session or reads its state and sends feedback (X-Session-Key).
 */
(function () {
  "use strict";

  var STORAGE_KEY = "supportbot.widget.v1";
  var REPLY_TIMEOUT_MS = 30000;  // no answer by then: the message is shown as not delivered
  var MAX_MESSAGE_CHARS = 2000;  // the server's default cap (SUPPORTBOT_MAX_MESSAGE_CHARS)
  var LINK_LABEL_CHARS = 40;
  var SVG = "http://www.w3.org/2000/svg";
  // Feather icons (MIT): thumbs-up and thumbs-down. Inline, so no emoji font is needed.
  var ICONS = {
    up: "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 " +
        "1-2-2v-7a2 2 0 0 1 2-2h3",
    down: "M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 " +
          "2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17"
  };
  var RATINGS = [[1, "Very unsatisfied"], [2, "Unsatisfied"], [3, "Neutral"], [4, "Satisfied"],
                 [5, "Very satisfied"]];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), attrs[name]);
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function icon(name) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "sbw-icon");
    var path = document.createElementNS(SVG, "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  /* What a bare link shows: host and path, never the query (a signed link's signature), and
   * only the last part of a long path. `url` is already HTML-escaped. */
  function linkLabel(url) {
    var parts = /^https?:\/\/([^\/?#]+)([^?#]*)/.exec(url);
    var host = parts[1], path = parts[2].replace(/\/$/, "");
    if ((host + path).length <= LINK_LABEL_CHARS) return host + path;
    var last = path.split("/").pop();
    if (last.length > 24) last = last.slice(0, 23) + "…";
    return host + "/…/" + last;
  }

  /* Simple formatting: **bold**, *italic* / _italic_, `code`, [text](https://...), bare
   * http(s) links (shown by their label) and line breaks. Everything else is escaped text. */
  function format(text) {
    var html = escapeHtml(text);
    var links = [];
    function keep(anchor) { links.push(anchor); return "\u0000" + (links.length - 1) + "\u0000"; }
    html = html.replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+|\/[^\s)]*)\)/g, function (_, label, url) {
      return keep('<a href="' + url + '" target="_blank" rel="noopener noreferrer">' + label + "</a>");
    });
    html = html.replace(/\bhttps?:\/\/[^\s<]+[^\s<.,;:!?)]/g, function (url) {
      return keep('<a href="' + url + '" target="_blank" rel="noopener noreferrer">' + linkLabel(url) + "</a>");
    });
    html = html
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[\s(])[*_]([^*_\s][^*_]*)[*_](?=[\s).,;:!?]|$)/g, "$1<em>$2</em>")
      .replace(/\n/g, "<br>");
    return html.replace(/\u0000(\d+)\u0000/g, function (_, i) { return links[Number(i)]; });
  }

  /* What the banner says in each phase of a handoff (docs/handoff.md#what-the-customer-reads). */
  function bannerText(handoff) {
    switch (handoff.phase) {
      case "waiting":
        if (handoff.timedOut) {
          return "Still waiting for a person: nobody is free yet. A person will answer by email; " +
                 "you can keep writing here.";
        }
        return handoff.minutes
          ? "Waiting for a person (about " + handoff.minutes + " min). You can keep writing here."
          : "Waiting for a person. Our team is not in right now: a person will answer by email.";
      case "agent": return (handoff.agent || "Someone") + " from support joined. You're chatting with a person.";
      case "back": return "You're back with the assistant.";
      case "paused": return "A person from our support team has taken over this chat. The assistant is " +
                            "paused; the team will answer here.";
      default: return "";
    }
  }

  function load() {
    try {
      return JSON.parse(window.sessionStorage.getItem(STORAGE_KEY)) || {};
    } catch (e) {
      return {};
    }
  }

  function newId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return "c-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function Widget(options) {
    this.options = options;
    this.state = load();
    this.state.messages = this.state.messages || [];
    this.state.handoff = this.state.handoff || { phase: null };
    this.pending = [];  // messages to emit once the server has confirmed the session
    this.timers = {};  // message id -> its reply timeout
    this.items = {};  // message id -> its <li>
    this.relayDone = false;  // the next bot_turn_done closes a handoff, it answers no message
    this.replyTimeout = Number(options.replyTimeoutMs) || REPLY_TIMEOUT_MS;
    this.feedbackUrl = options.feedbackUrl || options.socketUrl.replace(/\/$/, "") + "/webhooks/socketio";
  }

  Widget.prototype.save = function () {
    try {
      window.sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.state));
    } catch (e) { /* private mode or full: the chat still works, it just won't survive a reload */ }
  };

  Widget.prototype.mount = function () {
    var self = this;
    var title = this.options.title || "Northwind support";
    this.launcher = el("button", {
      "class": "sbw-launcher", type: "button", "aria-expanded": "false", "aria-controls": "sbw-panel",
      text: "Chat with us", onclick: function () { self.toggle(); }
    });
    this.log = el("ol", { "class": "sbw-log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
                          "aria-label": "Conversation", tabindex: "0" });
    this.typing = el("div", { "class": "sbw-typing", role: "status", hidden: "" }, [
      el("span", { "class": "sbw-dot" }), el("span", { "class": "sbw-dot" }), el("span", { "class": "sbw-dot" }),
      el("span", { "class": "sbw-sr", text: "The assistant is typing" })
    ]);
    this.banner = el("div", { "class": "sbw-handoff", role: "status", hidden: "" });
    this.survey = el("div", { "class": "sbw-survey", "aria-live": "polite", hidden: "" });
    this.input = el("input", { "class": "sbw-input", type: "text", id: "sbw-input", autocomplete: "off",
                               maxlength: String(this.options.maxMessageChars || MAX_MESSAGE_CHARS),
                               placeholder: "Type your message…" });
    this.sendButton = el("button", { "class": "sbw-send", type: "submit", text: "Send" });
    this.form = el("form", { "class": "sbw-form", onsubmit: function (event) {
      event.preventDefault();
      self.sendText(self.input.value);
    } }, [
      el("label", { "for": "sbw-input", "class": "sbw-sr", text: "Message to the support assistant" }),
      this.input, this.sendButton
    ]);
    this.panel = el("section", { "class": "sbw-panel", id: "sbw-panel", role: "dialog", "aria-label": title,
                                 hidden: "" }, [
      el("header", { "class": "sbw-header" }, [
        el("h2", { "class": "sbw-title", text: title }),
        el("button", { "class": "sbw-end", type: "button", text: "End chat",
                       onclick: function () { self.showSurvey(true); } }),
        el("button", { "class": "sbw-close", type: "button", "aria-label": "Close chat", text: "×",
                       onclick: function () { self.toggle(false); } })
      ]),
      this.banner, this.log, this.typing, this.survey, this.form
    ]);
    this.panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") self.toggle(false);
    });
    this.root = el("div", { "class": "sbw-root" }, [this.panel, this.launcher]);
    document.body.appendChild(this.root);
    this.keepLastMessageInView();

    this.state.messages.forEach(function (message) { self.render(message); });
    this.showHandoff();
    this.state.messages.forEach(function (message) {
      if (message.status === "sending") self.awaitReply(message);  // sent before a reload
    });
    if (this.state.open) this.toggle(true);
    this.connect();
  };

  /* The conversation stays scrolled to its end when something above or below it takes room
   * (the banner, the rating question, a phone's keyboard), unless the customer scrolled up. */
  Widget.prototype.keepLastMessageInView = function () {
    var self = this;
    this.atEnd = true;
    this.log.addEventListener("scroll", function () {
      self.atEnd = self.log.scrollHeight - self.log.scrollTop - self.log.clientHeight < 24;
    });
    if (window.ResizeObserver) {
      new window.ResizeObserver(function () { if (self.atEnd) self.scroll(); }).observe(this.log);
    }
  };

  Widget.prototype.toggle = function (open) {
    open = open === undefined ? this.panel.hidden : open;
    this.panel.hidden = !open;
    this.launcher.setAttribute("aria-expanded", String(open));
    this.launcher.textContent = open ? "Close chat" : "Chat with us";
    this.launcher.classList.toggle("sbw-launcher-open", open);
    this.launcher.hidden = open && window.matchMedia("(max-width: 480px)").matches;
    this.state.open = open;
    this.save();
    if (open) {
      this.input.focus();
      this.scroll();
    } else {
      this.launcher.hidden = false;
      this.launcher.focus();
    }
  };

  Widget.prototype.connect = function () {
    var self = this;
    // socket.io's default: long-polling first, then upgrade to a WebSocket where one gets through.
    var socket = window.io(this.options.socketUrl, { path: this.options.socketPath || "/socket.io" });
    this.socket = socket;
    socket.on("connect", function () { self.requestSession(); });
    socket.on("session_confirm", function (session) {
      var id = typeof session === "string" ? session : (session || {}).session_id;
      if (self.state.session_id && self.state.session_id !== id) self.forget();  // the old one is gone
      self.state.session_id = id;
      self.state.session_key = (session || {}).session_key || null;
      self.confirmed = true;
      self.save();
      self.refreshState();
      self.flush();
    });
    socket.on("request_refused", function () {
      // Only after a server restart or a lost session: the message is offered for a retry.
      var refused = self.oldest("sending");
      if (refused) self.fail(refused);
      self.requestSession();
    });
    socket.on("bot_uttered", function (message) { self.receive(message); });
    socket.on("handoff_state", function (change) { self.handoffChanged(change || {}); });
    socket.on("bot_turn_done", function (turn) {
      turn = turn || {};
      if (turn.reply_to == null && self.relayDone) self.relayDone = false;
      else self.answered();
      self.setPaused(!!turn.paused);
      if (turn.ended) self.showSurvey(false);
    });
    socket.on("disconnect", function () { self.confirmed = false; });
  };

  /* Rejoin the stored session (with its key, for the same signed-in customer) or get a new one. */
  Widget.prototype.requestSession = function () {
    this.confirmed = false;
    this.socket.emit("session_request", { session_id: this.state.session_id || null,
                                          session_key: this.state.session_key || null,
                                          customer_token: this.options.customerToken || null });
  };

  /* The server gave a different session: the stored conversation is not this one. */
  Widget.prototype.forget = function () {
    var self = this;
    Object.keys(this.timers).forEach(function (id) { clearTimeout(self.timers[id]); });
    this.timers = {};
    this.items = {};
    this.state.messages = [];
    this.state.rated = null;
    this.state.paused = false;
    this.state.handoff = { phase: null };
    this.log.textContent = "";
    this.survey.hidden = true;
    this.showHandoff();
    this.updateTyping();
  };

  Widget.prototype.keyHeaders = function (headers) {
    headers = headers || {};
    if (this.state.session_key) headers["X-Session-Key"] = this.state.session_key;
    return headers;
  };

  /* The server's view of the handoff, on load and when the bot pauses: the banner matches
   * reality after a reload, a closed tab or `supportbot resume`. */
  Widget.prototype.refreshState = function () {
    var self = this;
    if (!this.state.session_id || !window.fetch) return;
    fetch(this.feedbackUrl + "/conversations/" + encodeURIComponent(this.state.session_id) + "/state",
          { headers: this.keyHeaders() })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (state) { if (state) self.applyState(state); })
      .catch(function () {});
  };

  Widget.prototype.applyState = function (state) {
    var handoff = state.handoff, mine = this.state.handoff;
    if (handoff && handoff.status === "claimed") {
      this.setHandoff({ phase: "agent", agent: handoff.agent, reference: handoff.reference });
    } else if (handoff) {
      var again = mine.phase === "waiting" && mine.reference === handoff.reference;
      this.setHandoff({ phase: "waiting", minutes: handoff.wait_minutes, reference: handoff.reference,
                        timedOut: again && !!mine.timedOut });
    } else if (state.paused) {
      this.setHandoff({ phase: "paused" });
    } else if (mine.phase && mine.phase !== "back") {
      this.setHandoff({ phase: "back" });  // handed back while this tab was away
    }
    this.state.paused = !!state.paused;
    this.save();
  };

  /* handoff_state from the relay: a person joined, handed back, closed, or nobody came in time. */
  Widget.prototype.handoffChanged = function (change) {
    var mine = this.state.handoff;
    if (change.kind === "joined") this.setHandoff({ phase: "agent", agent: change.agent, reference: mine.reference });
    else if (change.kind === "timeout") this.setHandoff({ phase: "waiting", minutes: mine.minutes,
                                                          reference: mine.reference, timedOut: true });
    else if (change.kind === "back" || change.kind === "closed") {
      this.relayDone = true;
      this.setHandoff({ phase: "back" });
    }
    if (change.paused !== undefined) this.state.paused = !!change.paused;
    this.save();
  };

  Widget.prototype.setPaused = function (paused) {
    var phase = this.state.handoff.phase;
    var withPerson = phase === "waiting" || phase === "agent" || phase === "paused";
    this.state.paused = paused;
    if (paused && !withPerson) {
      this.setHandoff({ phase: "waiting" });
      this.refreshState();  // the wait the customer was told, and whether a person has it yet
    } else if (!paused && withPerson) {
      this.setHandoff({ phase: "back" });
    }
    this.save();
    this.updateTyping();
  };

  Widget.prototype.setHandoff = function (handoff) {
    this.state.handoff = handoff;
    this.save();
    this.showHandoff();
  };

  Widget.prototype.showHandoff = function () {
    var handoff = this.state.handoff, text = bannerText(handoff);
    if (this.banner.textContent !== text) this.banner.textContent = text;
    this.banner.hidden = !text;
    this.banner.setAttribute("data-phase", handoff.phase || "");
    this.root.classList.toggle("sbw-is-paused", !!handoff.phase && handoff.phase !== "back");
  };

  Widget.prototype.metadata = function () {
    var metadata = { page: this.options.page || { path: window.location.pathname } };
    if (this.options.customerToken) metadata.customer_token = this.options.customerToken;
    return metadata;
  };

  Widget.prototype.sendText = function (text, payload) {
    text = (text || "").trim();
    if (!text) return;
    this.input.value = "";
    this.clearButtons();
    if (this.state.handoff.phase === "back") this.setHandoff({ phase: null });
    var message = { from: "user", text: text, id: newId() };
    if (payload && payload !== text) message.payload = payload;
    this.add(message);
    this.send(message);
  };

  /* Send (or send again) one message of the customer's, and wait for the server's answer. */
  Widget.prototype.send = function (message) {
    message.status = "sending";
    message.sentAt = Date.now();
    this.save();
    this.showStatus(message);
    this.pending.push(message);
    this.flush();
    this.awaitReply(message);
  };

  Widget.prototype.flush = function () {
    if (!this.state.session_id || !this.confirmed || !this.socket.connected) return;
    while (this.pending.length) {
      var message = this.pending.shift();
      // message_id: the same on a retry, for a server that drops a message it already has.
      this.socket.emit("user_uttered", { message: message.payload || message.text, message_id: message.id,
                                         session_id: this.state.session_id, metadata: this.metadata() });
    }
  };

  Widget.prototype.awaitReply = function (message) {
    var self = this;
    clearTimeout(this.timers[message.id]);
    var left = Math.max(0, (message.sentAt || 0) + this.replyTimeout - Date.now());
    this.timers[message.id] = setTimeout(function () { self.fail(message); }, left);
    this.updateTyping();
  };

  /* No answer in time (or refused): the customer can send it again. */
  Widget.prototype.fail = function (message) {
    clearTimeout(this.timers[message.id]);
    delete this.timers[message.id];
    this.pending = this.pending.filter(function (m) { return m !== message; });  // not sent late, unasked
    message.status = "failed";
    this.save();
    this.showStatus(message);
    this.updateTyping();
  };

  /* The server finished a turn. It names the answer by Rasa's message id, not ours, so the turn
   * is taken as the answer to the oldest message still waiting; failing that, a late answer to
   * the oldest one shown as not delivered. */
  Widget.prototype.answered = function () {
    var message = this.oldest("sending") || this.oldest("failed");
    if (!message) return;
    clearTimeout(this.timers[message.id]);
    delete this.timers[message.id];
    delete message.status;
    delete message.sentAt;
    this.save();
    this.showStatus(message);
    this.updateTyping();
  };

  Widget.prototype.oldest = function (status) {
    for (var i = 0; i < this.state.messages.length; i++) {
      if (this.state.messages[i].status === status) return this.state.messages[i];
    }
    return null;
  };

  Widget.prototype.showStatus = function (message) {
    var self = this, item = this.items[message.id];
    if (!item) return;
    var old = item.querySelector(".sbw-failed");
    if (old) old.remove();
    if (message.status !== "failed") return;
    var retry = el("button", { type: "button", "class": "sbw-retry", text: "Retry",
                               "aria-label": "Retry sending: " + message.text.slice(0, 80) });
    retry.addEventListener("click", function () {
      if (message.status !== "failed") return;  // resends once
      self.send(message);
      self.input.focus();
    });
    item.appendChild(el("p", { "class": "sbw-failed" }, [el("span", { text: "Not delivered — " }), retry]));
    this.scroll();
  };

  Widget.prototype.receive = function (message) {
    if (!message || (!message.text && !message.quick_replies && !message.buttons)) return;
    var meta = message.metadata || {};
    var key = meta.reply_to ? meta.reply_to + ":" + (meta.index || 0) : null;
    var text = message.text || "";
    if (key && this.state.messages.some(function (m) { return m.key === key && m.text === text; })) {
      return;  // shown already: the server sends an answer again when the widget retried its message
    }
    var last = this.state.messages[this.state.messages.length - 1];
    if (key && last && last.key === key) {
      last.continued = true;  // the channel splits long answers: rate the last part only
      var bar = this.log.lastChild && this.log.lastChild.querySelector(".sbw-feedback");
      if (bar) bar.remove();
    }
    var buttons = (message.quick_replies || message.buttons || []).map(function (b) {
      return { title: b.title, payload: b.payload };
    });
    var received = { from: "bot", text: message.text || "", buttons: buttons, key: key,
                     reply_to: meta.reply_to, index: meta.index || 0 };
    if (meta.from === "agent" || meta.from === "support") {  // from the handoff relay, not the bot
      received.source = meta.from;
      received.agent = meta.agent || null;
      received.kind = meta.kind || null;
    }
    this.add(received);
  };

  Widget.prototype.add = function (message) {
    this.state.messages.push(message);
    this.save();
    this.render(message);
  };

  function speaker(message) {
    if (message.from === "user") return "You said: ";
    if (message.source === "agent") return (message.agent || "Support") + " from support said: ";
    if (message.source === "support") return "Support: ";
    return "Assistant said: ";
  }

  Widget.prototype.render = function (message) {
    var self = this;
    var bubble = el("div", { "class": "sbw-bubble" });
    bubble.innerHTML = format(message.text);
    var classes = "sbw-msg sbw-" + message.from + (message.source ? " sbw-from-" + message.source : "");
    var item = el("li", { "class": classes }, [el("span", { "class": "sbw-sr", text: speaker(message) })]);
    if (message.source === "agent") {  // seen, not read twice: the hidden text above says who
      item.appendChild(el("span", { "class": "sbw-who", "aria-hidden": "true",
                                    text: (message.agent || "Support") + " · support" }));
    }
    item.appendChild(bubble);
    if (message.buttons && message.buttons.length && !message.answered) {
      item.appendChild(el("div", { "class": "sbw-buttons", role: "group", "aria-label": "Suggested replies" },
        message.buttons.map(function (button) {
          return el("button", { type: "button", "class": "sbw-quick", text: button.title, onclick: function () {
            message.answered = true;
            self.sendText(button.title, button.payload);
            self.input.focus();  // the buttons are gone: the customer stays in the chat
          } });
        })));
    }
    if (message.from === "bot" && message.reply_to && !message.continued) {
      item.appendChild(this.feedbackBar(message));
    }
    if (message.id) this.items[message.id] = item;
    this.log.appendChild(item);
    if (message.status === "failed") this.showStatus(message);
    this.scroll();
  };

  Widget.prototype.feedbackBar = function (message) {
    var self = this;
    var bar = el("div", { "class": "sbw-feedback", role: "group", "aria-label": "Was this answer helpful?" });
    [["up", "Helpful"], ["down", "Not helpful"]].forEach(function (choice) {
      var button = el("button", { type: "button", "class": "sbw-vote sbw-vote-" + choice[0], title: choice[1],
                                  "aria-pressed": String(message.vote === choice[0]) },
                      [icon(choice[0]), el("span", { "class": "sbw-sr", text: choice[1] })]);
      button.addEventListener("click", function () {
        if (message.vote === choice[0]) return;  // a double click sends once (the server is idempotent too)
        message.vote = choice[0];
        self.save();
        bar.querySelectorAll("button").forEach(function (b) {
          b.setAttribute("aria-pressed", String(b === button));
        });
        self.post({ conversation_id: self.state.session_id, message_id: message.reply_to,
                    index: message.index, vote: choice[0] });
      });
      bar.appendChild(button);
    });
    return bar;
  };

  Widget.prototype.post = function (body) {
    return fetch(this.feedbackUrl + "/feedback", {
      method: "POST", headers: this.keyHeaders({ "Content-Type": "application/json" }), body: JSON.stringify(body)
    }).catch(function () {});
  };

  /* The 1–5 question, below the conversation (never over it), nothing chosen in advance. Asked
   * by the customer (End chat: focus moves to the question) or by the conversation (goodbye, a
   * hand back: focus stays where the customer is typing). */
  Widget.prototype.showSurvey = function (asked) {
    var self = this;
    if (this.state.rated || !this.state.session_id || !this.state.messages.length) return;
    this.survey.textContent = "";
    var fieldset = el("fieldset", { tabindex: "-1" }, [el("legend", { text: "How satisfied are you with this chat?" })]);
    RATINGS.forEach(function (choice) {
      fieldset.appendChild(el("button", { type: "button", "class": "sbw-rate", "data-rating": String(choice[0]),
                                          onclick: function () { self.rate(choice[0]); } }, [
        el("span", { "class": "sbw-rate-n", text: String(choice[0]) }),
        el("span", { "class": "sbw-rate-label", text: choice[1] })
      ]));
    });
    this.survey.appendChild(fieldset);
    this.survey.hidden = false;
    this.scroll();
    if (asked) fieldset.focus();
  };

  Widget.prototype.rate = function (rating) {
    var self = this;
    this.state.rated = rating;
    this.save();
    this.post({ conversation_id: this.state.session_id, rating: rating });
    this.survey.textContent = "";
    this.survey.appendChild(el("p", { role: "status", text: "Thank you for your feedback!" }));
    this.survey.appendChild(el("button", { type: "button", "class": "sbw-new", text: "Start a new chat",
                                           onclick: function () { self.restart(); } }));
    this.input.focus();  // the rating buttons are gone: back to the conversation
    this.scroll();
  };

  Widget.prototype.restart = function () {
    this.forget();
    this.state = { messages: [], open: true, handoff: { phase: null } };
    this.pending = [];
    this.save();
    this.requestSession();
    this.input.focus();
  };

  /* The dots show while the assistant owes an answer; not while a person has the chat. */
  Widget.prototype.updateTyping = function () {
    var phase = this.state.handoff.phase;
    var withPerson = phase === "waiting" || phase === "agent" || phase === "paused";
    this.typing.hidden = withPerson || !this.oldest("sending");
    this.scroll();
  };

  Widget.prototype.clearButtons = function () {
    this.state.messages.forEach(function (m) { if (m.buttons && m.buttons.length) m.answered = true; });
    this.log.querySelectorAll(".sbw-buttons").forEach(function (group) { group.remove(); });
  };

  Widget.prototype.scroll = function () {
    this.log.scrollTop = this.log.scrollHeight;
    this.atEnd = true;
  };

  window.SupportWidget = {
    format: format,
    mount: function (options) {
      var widget = new Widget(options);
      if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", function () { widget.mount(); });
      } else {
        widget.mount();
      }
      return widget;
    }
  };
})();
