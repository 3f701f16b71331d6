/*
 * Northwind support chat widget: a small, dependency-free client for Rasa's socket.io
 * channel (socket.io-client 4, Engine.IO 4). See docs/web-widget.md.
 *
 *   <script src="/widget/socket.io.min.js"></script>
 *   <script src="/widget/widget.js"></script>
 *   <script>SupportWidget.mount({socketUrl: "https://bot.example.com", customerToken: "...",
 *                                page: {path: location.pathname, order_id: "4817263"}});</script>
 *
 * The conversation (session id, its session key and the messages) is kept in sessionStorage,
 * so it survives a reload and moving between pages of the same tab, and is gone when the tab
 * is closed. The server gives the session key with the session id; only a client presenting it
 * rejoins the session or reads its state and sends feedback (X-Session-Key).
 */
(function () {
  "use strict";

  var STORAGE_KEY = "supportbot.widget.v1";
  var TYPING_TIMEOUT_MS = 30000;
  var MAX_MESSAGE_CHARS = 2000;  // the server's default cap (SUPPORTBOT_MAX_MESSAGE_CHARS)

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

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  /* Simple formatting: **bold**, *italic* / _italic_, `code`, [text](https://...), bare
   * http(s) links and line breaks. Everything else is escaped text. */
  function format(text) {
    var html = escapeHtml(text);
    var links = [];
    function keep(anchor) { links.push(anchor); return "\u0000" + (links.length - 1) + "\u0000"; }
    html = html.replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+|\/[^\s)]*)\)/g, function (_, label, url) {
      return keep('<a href="' + url + '" target="_blank" rel="noopener noreferrer">' + label + "</a>");
    });
    html = html.replace(/\bhttps?:\/\/[^\s<]+[^\s<.,;:!?)]/g, function (url) {
      return keep('<a href="' + url + '" target="_blank" rel="noopener noreferrer">' + url + "</a>");
    });
    html = html
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[\s(])[*_]([^*_\s][^*_]*)[*_](?=[\s).,;:!?]|$)/g, "$1<em>$2</em>")
      .replace(/\n/g, "<br>");
    return html.replace(/\u0000(\d+)\u0000/g, function (_, i) { return links[Number(i)]; });
  }

  function load() {
    try {
      return JSON.parse(window.sessionStorage.getItem(STORAGE_KEY)) || {};
    } catch (e) {
      return {};
    }
  }

  function Widget(options) {
    this.options = options;
    this.state = load();
    this.state.messages = this.state.messages || [];
    this.pending = [];
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
    this.survey = el("div", { "class": "sbw-survey", hidden: "" });
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
                       onclick: function () { self.showSurvey(); } }),
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

    this.state.messages.forEach(function (message) { self.render(message); });
    this.setPaused(!!this.state.paused);
    if (this.state.open) this.toggle(true);
    this.connect();
  };

  Widget.prototype.toggle = function (open) {
    open = open === undefined ? this.panel.hidden : open;
    this.panel.hidden = !open;
    this.launcher.setAttribute("aria-expanded", String(open));
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
      // Only after a server restart or a lost session: ask again; the message is not retried.
      self.showTyping(false);
      self.add({ from: "bot", text: "Sorry, that message did not reach us. Please send it again." });
      self.requestSession();
    });
    socket.on("bot_uttered", function (message) { self.receive(message); });
    socket.on("bot_turn_done", function (turn) {
      self.showTyping(false);
      self.setPaused(!!turn.paused);
      if (turn.ended) self.showSurvey();
    });
    socket.on("disconnect", function () {
      self.confirmed = false;
      self.showTyping(false);
    });
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
    this.state.messages = [];
    this.state.rated = null;
    this.log.textContent = "";
    this.survey.hidden = true;
    this.setPaused(false);
  };

  Widget.prototype.keyHeaders = function (headers) {
    headers = headers || {};
    if (this.state.session_key) headers["X-Session-Key"] = this.state.session_key;
    return headers;
  };

  /* Whether a person has taken over (e.g. after a reload, or after `supportbot resume`). */
  Widget.prototype.refreshState = function () {
    var self = this;
    if (!this.state.session_id || !window.fetch) return;
    fetch(this.feedbackUrl + "/conversations/" + encodeURIComponent(this.state.session_id) + "/state",
          { headers: this.keyHeaders() })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (state) { if (state) self.setPaused(!!state.paused); })
      .catch(function () {});
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
    this.add({ from: "user", text: text });
    this.pending.push(payload || text);  // sent once the server has confirmed the session
    this.flush();
    this.showTyping(true);
  };

  Widget.prototype.flush = function () {
    if (!this.state.session_id || !this.confirmed || !this.socket.connected) return;
    while (this.pending.length) {
      this.socket.emit("user_uttered", { message: this.pending.shift(), session_id: this.state.session_id,
                                         metadata: this.metadata() });
    }
  };

  Widget.prototype.receive = function (message) {
    if (!message || (!message.text && !message.quick_replies && !message.buttons)) return;
    var meta = message.metadata || {};
    var key = meta.reply_to ? meta.reply_to + ":" + (meta.index || 0) : null;
    var last = this.state.messages[this.state.messages.length - 1];
    if (key && last && last.key === key) {
      last.continued = true;  // the channel splits long answers: rate the last part only
      var bar = this.log.lastChild && this.log.lastChild.querySelector(".sbw-feedback");
      if (bar) bar.remove();
    }
    var buttons = (message.quick_replies || message.buttons || []).map(function (b) {
      return { title: b.title, payload: b.payload };
    });
    this.add({ from: "bot", text: message.text || "", buttons: buttons, key: key,
               reply_to: meta.reply_to, index: meta.index || 0 });
  };

  Widget.prototype.add = function (message) {
    this.state.messages.push(message);
    this.save();
    this.render(message);
  };

  Widget.prototype.render = function (message) {
    var self = this;
    var bubble = el("div", { "class": "sbw-bubble" });
    bubble.innerHTML = format(message.text);
    var who = el("span", { "class": "sbw-sr", text: message.from === "bot" ? "Assistant said: " : "You said: " });
    var item = el("li", { "class": "sbw-msg sbw-" + message.from }, [who, bubble]);
    if (message.buttons && message.buttons.length && !message.answered) {
      item.appendChild(el("div", { "class": "sbw-buttons", role: "group", "aria-label": "Suggested replies" },
        message.buttons.map(function (button) {
          return el("button", { type: "button", "class": "sbw-quick", text: button.title, onclick: function () {
            message.answered = true;
            self.sendText(button.title, button.payload);
          } });
        })));
    }
    if (message.from === "bot" && message.reply_to && !message.continued) {
      item.appendChild(this.feedbackBar(message));
    }
    this.log.appendChild(item);
    this.scroll();
  };

  Widget.prototype.feedbackBar = function (message) {
    var self = this;
    var bar = el("div", { "class": "sbw-feedback", role: "group", "aria-label": "Was this answer helpful?" });
    [["up", "👍", "Helpful"], ["down", "👎", "Not helpful"]].forEach(function (choice) {
      var button = el("button", { type: "button", "class": "sbw-vote sbw-vote-" + choice[0],
                                  "aria-label": choice[2], title: choice[2],
                                  "aria-pressed": String(message.vote === choice[0]), text: choice[1] });
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

  Widget.prototype.showSurvey = function () {
    var self = this;
    if (this.state.rated || !this.state.session_id || !this.state.messages.length) return;
    this.survey.textContent = "";
    var fieldset = el("fieldset", {}, [el("legend", { text: "How satisfied are you with this chat?" })]);
    [[1, "Very unsatisfied"], [2, "Unsatisfied"], [3, "Neutral"], [4, "Satisfied"], [5, "Very satisfied"]]
      .forEach(function (choice) {
        fieldset.appendChild(el("button", { type: "button", "class": "sbw-rate", "aria-label": choice[1],
                                            title: choice[1], text: String(choice[0]), onclick: function () {
          self.state.rated = choice[0];
          self.save();
          self.post({ conversation_id: self.state.session_id, rating: choice[0] });
          self.survey.textContent = "";
          self.survey.appendChild(el("p", { role: "status", text: "Thank you for your feedback!" }));
          self.survey.appendChild(el("button", { type: "button", "class": "sbw-new", text: "Start a new chat",
                                                 onclick: function () { self.restart(); } }));
        } }));
      });
    this.survey.appendChild(fieldset);
    this.survey.hidden = false;
    fieldset.querySelector("button").focus();
  };

  Widget.prototype.restart = function () {
    this.state = { messages: [], open: true };
    this.pending = [];
    this.save();
    this.log.textContent = "";
    this.survey.hidden = true;
    this.setPaused(false);
    this.requestSession();
    this.input.focus();
  };

  Widget.prototype.setPaused = function (paused) {
    this.state.paused = paused;
    this.save();
    this.banner.hidden = !paused;
    this.banner.textContent = paused
      ? "A person from our support team has taken over this chat. The assistant is paused; " +
        "the team will answer here."
      : "";
    this.root.classList.toggle("sbw-is-paused", paused);
  };

  Widget.prototype.showTyping = function (on) {
    var self = this;
    clearTimeout(this.typingTimer);
    this.typing.hidden = !on;
    if (on) this.typingTimer = setTimeout(function () { self.showTyping(false); }, TYPING_TIMEOUT_MS);
    this.scroll();
  };

  Widget.prototype.clearButtons = function () {
    this.state.messages.forEach(function (m) { if (m.buttons && m.buttons.length) m.answered = true; });
    this.log.querySelectorAll(".sbw-buttons").forEach(function (group) { group.remove(); });
  };

  Widget.prototype.scroll = function () {
    this.log.scrollTop = this.log.scrollHeight;
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
