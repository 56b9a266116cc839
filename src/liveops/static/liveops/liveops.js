/*
 * django-liveops client: keeps {% live_operation %} containers current over a WebSocket.
 * The wire protocol and DOM contract are in docs/protocol.md; change both sides together.
 *
 * Public API (window.liveops):
 *   connect()        (re)scan the page for [data-liveop] containers and (re)open sockets.
 *   applyFrame(text) apply one server frame as if received; returns the ids applied.
 *   sockets          a fresh Map of socket key -> WebSocket that is connecting or open;
 *                    the key is the data-liveop-ws path ("<path> #1"… past 50 operations).
 *
 * A container without data-liveop-ws is never connected: its server-rendered regions
 * stay as they are, its connection region is left alone, and applyFrame() still works.
 * An element identical to the one in the page is not applied again (no DOM change, no
 * event). liveops:finished fires once per attempt, and not for an attempt the page was
 * already rendered finished with; unless a listener prevents it, a success then follows
 * the operation's chain (the page switches in place, then liveops:chained fires on the
 * new container) or its success URL.
 *
 * Operations lists ({% live_operation_list %}): a [data-liveop-list] element (a tbody)
 * with data-liveop-ws joins that path's socket as list=<label>:<page>:<per_page>, so a
 * page with a list and no operation opens one socket too. Row elements
 * (data-liveop-row) apply only inside lists of their type: an existing row by the
 * region rules; a new one only into lists marked data-liveop-list-insert (page 1), in
 * order of data-liveop-sort, newest first, trimmed to data-liveop-list-per-page.
 * liveops:row fires on the list for each row inserted or replaced.
 */
(function () {
  "use strict";
  if (window.liveops) return; // included twice: keep the first, or every socket doubles

  var BACKOFF_BASE_MS = 500;
  var BACKOFF_FACTOR = 2;
  var BACKOFF_CAP_MS = 15000;
  var STABLE_MS = 10000; // a connection up this long resets the backoff
  var NEVER_OPENED_LIMIT = 3; // handshakes in a row that never opened, then ask why
  var SETTLE_MS = 500; // after a 4500, "Live" once a socket stayed up this long (or spoke)
  var NOT_CONFIGURED = 4500; // the server has no channel layer (its log says so)
  var MAX_OPS_PER_SOCKET = 50; // the server refuses longer op lists
  var MAX_LISTS_PER_SOCKET = 5; // ... and more lists,
  var MAX_ROWS_PER_LIST = 100; // ... or longer list pages
  // What the script says, in English; a container's data-liveop-texts holds them in
  // the page's language (rendered by the server: the script needs no catalogue).
  var TEXTS = {
    connecting: "Connecting…",
    live: "Live",
    retrying: "Connection lost. Retrying…",
    reconnecting: "Reconnecting in {seconds} s…",
    4400: "The page asked for operations in a form the server does not accept.",
    4401: "Please log in again to watch this operation.",
    4403: "You are not allowed to watch this operation.",
    4404: "This operation no longer exists.",
    4500: "Live updates are not set up on this server; its log says how to fix it.",
    nows: "This server does not accept WebSockets: serve the site with an ASGI server " +
      "(uvicorn or daphne); see “Reconnecting… forever” in django-liveops' " +
      "troubleshooting guide.",
    refused: "The server refused the live connection.",
    unwatchable: "This operation cannot be watched.",
    nosocket: "Cannot open a live connection for this page."
  };

  var connections = new Map(); // socket key -> connection record
  var containerStates = new WeakMap(); // container -> {finishedAttempt}

  // ---- DOM helpers -------------------------------------------------------

  function allContainers() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-liveop]"));
  }

  function containerFor(token) {
    return byAttribute(document, "data-liveop", token);
  }

  function pkOf(token) {
    return String(token).slice(String(token).indexOf(":") + 1);
  }

  function regionOf(token, name) {
    return document.getElementById("liveop-" + pkOf(token) + "-" + name);
  }

  function intAttr(el, name) {
    var n = parseInt(el.getAttribute(name), 10);
    return isNaN(n) ? 0 : n;
  }

  function isTerminal(el) {
    return el.hasAttribute("data-liveop-terminal");
  }

  function processWithHtmx(node) {
    // htmx 2 and 4 both need process() to wire hx-* attributes on nodes it did not insert.
    if (window.htmx && typeof window.htmx.process === "function") {
      try {
        window.htmx.process(node);
      } catch (err) {
        console.warn("liveops: htmx.process failed", err);
      }
    }
  }

  function stateOf(container) {
    var state = containerStates.get(container);
    if (!state) {
      // A page rendered already finished must not announce "finished" again on the
      // reconnect snapshot: seed from what the server rendered.
      var status = regionOf(container.getAttribute("data-liveop"), "status");
      var done = status && isTerminal(status);
      state = { finishedAttempt: done ? intAttr(status, "data-liveop-attempt") : null,
                texts: parseTexts(container) };
      containerStates.set(container, state);
    }
    return state;
  }

  function parseTexts(container) {
    try {
      var texts = JSON.parse(container.getAttribute("data-liveop-texts") || "{}");
      return texts && typeof texts === "object" ? texts : {};
    } catch (err) {
      return {};
    }
  }

  /** A message in the container's language: {key, seconds} from TEXTS, or a given text. */
  function textFor(container, message) {
    if (typeof message === "string") return message;
    var texts = stateOf(container).texts;
    var text = typeof texts[message.key] === "string" ? texts[message.key] : TEXTS[message.key];
    return String(text || "").replace("{seconds}", String(message.seconds));
  }

  // ---- applying regions (docs/protocol.md, "Applying a region element") ---

  function isStale(old, incoming) {
    var oldAttempt = intAttr(old, "data-liveop-attempt");
    var newAttempt = intAttr(incoming, "data-liveop-attempt");
    if (newAttempt !== oldAttempt) return newAttempt < oldAttempt; // rule 1
    if (isTerminal(old) !== isTerminal(incoming)) return isTerminal(old); // rule 2
    return intAttr(incoming, "data-liveop-v") < intAttr(old, "data-liveop-v"); // rule 3
  }

  function logLines(log) {
    return Array.prototype.slice.call(log.querySelectorAll(":scope > li"));
  }

  /** Put one log line in its place by id and seq; return whether the page changed. */
  function insertLine(log, line) {
    var existing = line.id ? document.getElementById(line.id) : null;
    if (existing && existing.parentNode === log) {
      if (existing.isEqualNode(line)) return false; // re-delivered: nothing to do
      existing.replaceWith(line);
    } else {
      // Lines mostly arrive in order, so walk back from the end to find the place.
      var seq = intAttr(line, "data-liveop-seq");
      var before = null;
      var lines = logLines(log);
      for (var i = lines.length - 1; i >= 0 && intAttr(lines[i], "data-liveop-seq") > seq; i--) {
        before = lines[i];
      }
      log.insertBefore(line, before);
    }
    processWithHtmx(line);
    return true;
  }

  function markers(el) {
    var v = el.getAttribute("data-liveop-v");
    return [v, el.getAttribute("data-liveop-attempt"), isTerminal(el)].join();
  }

  /** Rule 4: merge appended lines into the log; return whether the page changed. */
  function appendLog(old, incoming) {
    var before = markers(old);
    var changed = false;
    var newer = intAttr(incoming, "data-liveop-attempt") > intAttr(old, "data-liveop-attempt");
    if (newer && old.firstChild) {
      old.replaceChildren();
      changed = true;
    }
    logLines(incoming).forEach(function (line) {
      changed = insertLine(old, line) || changed;
    });
    var max = parseInt(old.getAttribute("data-liveop-log-max"), 10);
    if (!isNaN(max) && max >= 0) {
      var lines = logLines(old); // sorted by seq, so the oldest come first
      for (var i = 0; i < lines.length - max; i++) {
        old.removeChild(lines[i]);
        changed = true;
      }
    }
    // Keep the log's own markers in step, or later appends would be misjudged by rules 1-3.
    var v = intAttr(incoming, "data-liveop-v");
    if (!newer) v = Math.max(v, intAttr(old, "data-liveop-v"));
    old.setAttribute("data-liveop-v", String(v));
    old.setAttribute("data-liveop-attempt", String(intAttr(incoming, "data-liveop-attempt")));
    old.toggleAttribute("data-liveop-terminal", isTerminal(incoming));
    return changed || markers(old) !== before;
  }

  /** Apply one region; return the element now in the page, or null when dropped. */
  function applyRegion(old, incoming) {
    if (isStale(old, incoming)) return null;
    // A log follows its newest line unless the reader scrolled up to read.
    var scroll = old.classList.contains("liveops-log") ? scrollState(old) : null;
    var applied = replaceOrAppend(old, incoming);
    if (applied && scroll) restoreScroll(applied, scroll);
    return applied;
  }

  function replaceOrAppend(old, incoming) {
    if (incoming.getAttribute("hx-swap-oob") === "beforeend") {
      return appendLog(old, incoming) ? old : null;
    }
    // Same content again (e.g. a reconnect snapshot): leave the node, its focus and
    // its htmx wiring alone; the page is already what applying it would make it.
    if (old.isEqualNode(incoming)) return null;
    old.replaceWith(incoming);
    processWithHtmx(incoming);
    return incoming;
  }

  function scrollState(log) {
    return { top: log.scrollTop, atBottom: log.scrollHeight - log.scrollTop - log.clientHeight < 8 };
  }

  function restoreScroll(log, scroll) {
    log.scrollTop = scroll.atBottom ? log.scrollHeight : scroll.top;
  }

  function scrollLogsToEnd() {
    Array.prototype.forEach.call(document.querySelectorAll(".liveops-log"), function (log) {
      log.scrollTop = log.scrollHeight;
    });
  }

  /** The final state of an attempt: from its status region first, else any region of it. */
  function finishedState(token, attempt, applied) {
    var candidates = [regionOf(token, "status")].concat(applied);
    for (var i = 0; i < candidates.length; i++) {
      var el = candidates[i];
      if (el && isTerminal(el) && intAttr(el, "data-liveop-attempt") === attempt &&
          el.hasAttribute("data-liveop-state")) {
        return el.getAttribute("data-liveop-state");
      }
    }
    return null;
  }

  function announce(container, applied) {
    var token = container.getAttribute("data-liveop");
    var prefix = "liveop-" + pkOf(token) + "-";
    var regions = applied.map(function (el) {
      return el.id.indexOf(prefix) === 0 ? el.id.slice(prefix.length) : el.id;
    });
    container.dispatchEvent(
      new CustomEvent("liveops:update", { bubbles: true, detail: { op: token, regions: regions } })
    );
    var state = stateOf(container);
    applied.forEach(function (el) {
      var attempt = intAttr(el, "data-liveop-attempt");
      var seen = state.finishedAttempt !== null && attempt <= state.finishedAttempt;
      if (!isTerminal(el) || seen) return;
      state.finishedAttempt = attempt;
      var detail = { op: token, state: finishedState(token, attempt, applied) };
      var event = new CustomEvent("liveops:finished",
                                  { bubbles: true, cancelable: true, detail: detail });
      container.dispatchEvent(event);
      if (detail.state !== "FINISHED_OK" || event.defaultPrevented) return;
      var chain = container.querySelector("a[data-liveop-chain]");
      if (chain) followChain(container, chain);
      else continueTo(container);
    });
  }

  function byAttribute(root, name, value) {
    return Array.prototype.filter.call(root.querySelectorAll("[" + name + "]"), function (el) {
      return el.getAttribute(name) === value;
    });
  }

  /**
   * Switch the page in place to the operation this one continued in (p.chain_to): load
   * the next operation's page, take its container (with its grant and forms) and the
   * headings marked data-liveop-heading, and watch it. On the operation's own page the
   * address follows too. Anything unexpected falls back to going to that page.
   */
  function followChain(container, link) {
    var from = container.getAttribute("data-liveop");
    var token = link.getAttribute("data-liveop-chain");
    fetch(link.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var next = byAttribute(page, "data-liveop", token)[0];
        if (!next) throw new Error("no live container for " + token + " at " + link.href);
        if (!container.isConnected) return;
        var adopted = document.importNode(next, true);
        container.replaceWith(adopted);
        var ownPage = false;
        var heading = byAttribute(page, "data-liveop-heading", token)[0];
        byAttribute(document, "data-liveop-heading", from).forEach(function (old) {
          if (heading) old.replaceWith(document.importNode(heading, true));
          ownPage = true;
        });
        if (ownPage) {
          history.replaceState(history.state, "", link.href);
          if (page.title) document.title = page.title;
        }
        processWithHtmx(adopted);
        connect();
        adopted.dispatchEvent(new CustomEvent("liveops:chained",
                                              { bubbles: true, detail: { from: from, op: token } }));
      })
      .catch(function (err) {
        console.warn("liveops: could not switch in place; going to the next operation", err);
        window.location.assign(link.href);
      });
  }

  /** Follow the operation's success URL (LiveOperation.get_success_url), if it has one. */
  function continueTo(container) {
    var link = container.querySelector("a[data-liveop-continue]");
    if (link && link.href) window.location.assign(link.href);
  }

  // ---- operations lists (docs/protocol.md, "Operations lists") -------------

  function allLists() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-liveop-list]"));
  }

  function perPage(list) {
    var n = intAttr(list, "data-liveop-list-per-page");
    return n >= 1 ? n : 25;
  }

  /** What the socket asks for: "<label>:<page>:<per_page>" (a longer page: its first 100). */
  function listSpec(list) {
    var page = Math.max(1, intAttr(list, "data-liveop-list-page"));
    var size = Math.min(perPage(list), MAX_ROWS_PER_LIST);
    return list.getAttribute("data-liveop-list") + ":" + page + ":" + size;
  }

  function listRows(list) {
    return Array.prototype.filter.call(list.children, function (el) {
      return el.hasAttribute("data-liveop-row");
    });
  }

  /** Newest first: data-liveop-sort descending, then the id descending (as the server). */
  function rowOrder(a, b) {
    var sa = intAttr(a, "data-liveop-sort");
    var sb = intAttr(b, "data-liveop-sort");
    if (sa !== sb) return sb - sa;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  }

  /** Put a new row in its place, then trim the list to its page; return whether it stayed. */
  function insertRow(list, row) {
    var rows = listRows(list);
    var next = rows.filter(function (el) { return rowOrder(row, el) < 0; })[0];
    var last = rows[rows.length - 1];
    list.insertBefore(row, next || (last ? last.nextSibling : list.firstChild));
    listRows(list).sort(rowOrder).slice(perPage(list)).forEach(function (oldest) {
      list.removeChild(oldest);
    });
    return row.parentNode === list;
  }

  /** Apply a row element to every list of its type; return whether the page changed. */
  function applyRow(incoming) {
    var label = incoming.getAttribute("data-liveop-row");
    var changed = false;
    if (!incoming.id) return false;
    allLists().forEach(function (list) {
      if (list.getAttribute("data-liveop-list") !== label) return;
      var row = incoming.cloneNode(true);
      var old = listRows(list).filter(function (el) { return el.id === incoming.id; })[0];
      if (old) {
        if (isStale(old, row) || old.isEqualNode(row)) return;
        old.replaceWith(row);
      } else if (!list.hasAttribute("data-liveop-list-insert") || !insertRow(list, row)) {
        return; // only page 1 gains rows, and only rows new enough for it
      }
      Array.prototype.forEach.call(list.children, function (el) {
        if (el.hasAttribute("data-liveop-list-empty")) el.hidden = true;
      });
      processWithHtmx(row);
      changed = true;
      var detail = { op: label + ":" + incoming.id.replace(/^liveop-row-/, ""),
                     state: row.getAttribute("data-liveop-state") };
      list.dispatchEvent(new CustomEvent("liveops:row", { bubbles: true, detail: detail }));
    });
    return changed;
  }

  function applyHtml(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var byContainer = new Map(); // container -> [applied elements], for one event each
    var ids = [];
    Array.prototype.slice.call(template.content.children).forEach(function (incoming) {
      if (incoming.hasAttribute("data-liveop-row")) { // only ever into a list
        if (applyRow(incoming)) ids.push(incoming.id);
        return;
      }
      var old = incoming.id ? document.getElementById(incoming.id) : null;
      var container = old && old.closest("[data-liveop]");
      // Rule 6, and only server regions: the container itself and the connection
      // region belong to the page and to this script.
      if (!container || old === container || old.classList.contains("liveops-connection")) return;
      stateOf(container); // seed before the page changes
      var applied = applyRegion(old, incoming);
      if (!applied) return;
      ids.push(incoming.id);
      if (!byContainer.has(container)) byContainer.set(container, []);
      byContainer.get(container).push(applied);
    });
    byContainer.forEach(function (applied, container) {
      announce(container, applied);
    });
    return ids;
  }

  // ---- connection state shown to people ----------------------------------

  function showConnection(container, state, message) {
    if (container.hasAttribute("data-liveop-rejected")) return; // keep the reason visible
    var text = textFor(container, message);
    container.setAttribute("data-liveop-connection", state);
    var region = connectionRegion(container);
    if (region && region.textContent !== text) region.textContent = text;
  }

  /** Where a container, or a list (data-liveop-list-status), says how its connection is. */
  function connectionRegion(el) {
    if (!el.hasAttribute("data-liveop-list")) {
      return regionOf(el.getAttribute("data-liveop"), "connection");
    }
    var id = el.getAttribute("data-liveop-list-status");
    return id ? document.getElementById(id) : null;
  }

  /** Why the server refused: its code's text (in the page's language), else its reason. */
  function refusal(code, reason, fallbackKey) {
    if (TEXTS.hasOwnProperty(String(code))) return { key: String(code) };
    return (typeof reason === "string" && reason) || { key: fallbackKey };
  }

  /** Show the refusal on each element; close the sockets that carried it and have nothing left. */
  function markRejected(elements, rejection, carried) {
    var message = refusal(rejection.code, rejection.reason, "unwatchable");
    elements.forEach(function (el) {
      showConnection(el, "rejected", message);
      el.setAttribute("data-liveop-rejected", String(rejection.code || ""));
    });
    connections.forEach(function (conn) {
      if (carried(conn) && idle(conn)) stop(conn, "rejected", null);
    });
  }

  function rejectList(rejection) {
    var lists = allLists().filter(function (list) { return listSpec(list) === rejection.list; });
    markRejected(lists, rejection, function (conn) {
      return conn.lists.indexOf(rejection.list) >= 0;
    });
  }

  function rejectOperation(rejection) {
    var token = rejection.op;
    if (typeof token !== "string") return;
    markRejected(containerFor(token), rejection, function (conn) {
      return conn.tokens.indexOf(token) >= 0;
    });
  }

  /** Apply one frame string as if received from the server; return the ids applied. */
  function applyFrame(text) {
    try {
      var frame = JSON.parse(text);
      if (!frame || typeof frame !== "object") throw new TypeError("frame is not an object");
      var ids = typeof frame.liveop_html === "string" ? applyHtml(frame.liveop_html) : [];
      var rejection = frame.liveop_rejected;
      if (rejection && typeof rejection === "object") {
        if (typeof rejection.list === "string") rejectList(rejection);
        else rejectOperation(rejection);
      }
      return ids;
    } catch (err) {
      console.warn("liveops: ignored a frame that could not be applied", err);
      return [];
    }
  }

  // ---- sockets -------------------------------------------------------------

  function activeTokens(path, tokens) {
    return tokens.filter(function (token) {
      return containerFor(token).some(function (c) {
        return c.getAttribute("data-liveop-ws") === path && !c.hasAttribute("data-liveop-rejected");
      });
    });
  }

  function activeLists(path, specs) {
    return specs.filter(function (spec) {
      return allLists().some(function (l) {
        return l.getAttribute("data-liveop-ws") === path && listSpec(l) === spec &&
          !l.hasAttribute("data-liveop-rejected");
      });
    });
  }

  /** Whether nothing on this socket is left to watch (every op and list was rejected). */
  function idle(conn) {
    return activeTokens(conn.path, conn.tokens).length === 0 &&
      activeLists(conn.path, conn.lists).length === 0;
  }

  /** Call fn for each container, and each list, that this socket carries. */
  function eachContainer(conn, fn) {
    allContainers().forEach(function (c) {
      if (c.getAttribute("data-liveop-ws") === conn.path &&
          conn.tokens.indexOf(c.getAttribute("data-liveop")) >= 0) fn(c);
    });
    allLists().forEach(function (l) {
      if (l.getAttribute("data-liveop-ws") === conn.path &&
          conn.lists.indexOf(listSpec(l)) >= 0) fn(l);
    });
  }

  function allFinished(conn) {
    // A list never finishes: new operations can always start.
    return conn.lists.length === 0 && conn.tokens.every(function (token) {
      var status = regionOf(token, "status");
      return status && isTerminal(status);
    });
  }

  /** The page's view grant for a token ("~" + grant), or "" (docs/protocol.md, Connecting). */
  function grantOf(path, token) {
    var granted = containerFor(token).filter(function (c) {
      return c.getAttribute("data-liveop-ws") === path && c.getAttribute("data-liveop-grant");
    })[0];
    return granted ? "~" + granted.getAttribute("data-liveop-grant") : "";
  }

  function socketUrl(path, tokens, lists) {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var query = tokens.map(function (t) {
      return "op=" + encodeURIComponent(t + grantOf(path, t));
    }).concat(lists.map(function (spec) {
      return "list=" + encodeURIComponent(spec);
    })).join("&");
    return scheme + "//" + location.host + path + (path.indexOf("?") < 0 ? "?" : "&") + query;
  }

  function stop(conn, state, message) {
    conn.stopped = true;
    clearTimeout(conn.timer);
    clearTimeout(conn.liveTimer);
    if (conn.ws) {
      var ws = conn.ws;
      conn.ws = null; // detach first so its close event is not taken for a drop
      ws.close(1000);
    }
    if (state) eachContainer(conn, function (c) { showConnection(c, state, message || ""); });
  }

  function open(conn) {
    clearTimeout(conn.timer);
    conn.timer = null;
    conn.stopped = false;
    conn.tokens = activeTokens(conn.path, conn.tokens); // never ask again for a rejected op
    conn.lists = activeLists(conn.path, conn.lists); // nor for a rejected list
    if (conn.tokens.length === 0 && conn.lists.length === 0) return stop(conn, null);
    // A known problem stays in words while the page tries again; only the state changes.
    var connecting = conn.problem || { key: "connecting" };
    eachContainer(conn, function (c) { showConnection(c, "connecting", connecting); });
    var ws;
    try {
      ws = new WebSocket(socketUrl(conn.path, conn.tokens, conn.lists));
    } catch (err) {
      console.warn("liveops: cannot open a WebSocket for " + conn.path, err);
      stop(conn, "rejected", { key: "nosocket" });
      return;
    }
    conn.ws = ws;
    conn.openedAt = 0;
    conn.live = false;
    ws.onopen = function () {
      if (conn.ws !== ws) return;
      conn.openedAt = Date.now();
      conn.failures = 0;
      // A server without a channel layer accepts, then closes with 4500 at once: after
      // one, say "Live" when the socket speaks or stays up, not for a flash each retry.
      if (conn.problem && conn.problem.key === String(NOT_CONFIGURED)) {
        conn.liveTimer = setTimeout(function () { markLive(conn, ws); }, SETTLE_MS);
      } else {
        markLive(conn, ws);
      }
    };
    ws.onmessage = function (event) {
      if (conn.ws !== ws) return;
      markLive(conn, ws);
      if (typeof event.data === "string") applyFrame(event.data);
    };
    // An error is always followed by close, so close alone decides what happens next.
    ws.onclose = function (event) {
      if (conn.ws === ws) dropped(conn, event);
    };
  }

  /** The socket is up: say so, and forget the problems of earlier attempts. */
  function markLive(conn, ws) {
    if (conn.ws !== ws || conn.live) return;
    clearTimeout(conn.liveTimer);
    conn.live = true;
    conn.problem = null;
    conn.reported = false;
    eachContainer(conn, function (c) { showConnection(c, "open", { key: "live" }); });
  }

  function dropped(conn, event) {
    conn.ws = null;
    conn.live = false;
    clearTimeout(conn.liveTimer);
    if (event.code >= 4400 && event.code <= 4499) {
      stop(conn, "rejected", refusal(event.code, event.reason, "refused"));
      return;
    }
    if (allFinished(conn)) {
      stop(conn, "closed", ""); // nothing more can change
      return;
    }
    // Only a failed handshake closes with 1006 before opening: any other code came from
    // a server that speaks WebSocket (a 4500 may even arrive before "open" is seen).
    var opened = conn.openedAt > 0 || event.code !== 1006;
    conn.failures = opened ? 0 : conn.failures + 1;
    // 4500 (no channel layer) is not final, unlike the 44xx refusals: those answer this
    // page's request and would answer it the same way again, while this is the server's
    // set-up, fixed by a setting and a restart that a retry picks up without a reload.
    // The server logs the fix once per process, so retrying adds nothing to its log.
    if (event.code === NOT_CONFIGURED) conn.problem = { key: String(NOT_CONFIGURED) };
    else if (opened || (conn.problem && conn.problem.key !== "nows")) conn.problem = null;
    if (conn.openedAt && Date.now() - conn.openedAt >= STABLE_MS) conn.attempt = 0;
    // Full jitter spreads reconnects after a server restart instead of a stampede. A
    // server that is not set up for live updates will not be fixed in a second: the cap.
    var ceiling = conn.problem ? BACKOFF_CAP_MS
      : BACKOFF_BASE_MS * Math.pow(BACKOFF_FACTOR, conn.attempt);
    var delay = Math.random() * Math.min(BACKOFF_CAP_MS, ceiling);
    conn.attempt += 1;
    conn.waiting = delay < 1000 ? { key: "retrying" }
      : { key: "reconnecting", seconds: Math.ceil(delay / 1000) };
    var message = conn.problem || conn.waiting;
    eachContainer(conn, function (c) { showConnection(c, "closed", message); });
    conn.timer = setTimeout(function () { open(conn); }, delay);
    if (conn.failures >= NEVER_OPENED_LIMIT) probe(conn);
  }

  /**
   * Handshakes keep failing before the socket opens: ask the page's own server whether
   * it answers HTTP (any status will do). If it does, it is up but does not take
   * WebSockets there (WSGI, no "websocket" route, uvicorn without a WebSocket library, a
   * proxy that drops Upgrade), which no retry will change: say so, and keep retrying at
   * the cap so a fixed, restarted server is picked up. If it does not, it is just down.
   */
  function probe(conn) {
    if (typeof window.fetch !== "function") return;
    fetch(location.href, { method: "HEAD", cache: "no-store", credentials: "same-origin" })
      .then(function () { return true; }, function () { return false; })
      .then(function (answers) {
        // Late: the page stopped watching, or a socket reached the server meanwhile.
        if (conn.stopped || conn.openedAt || conn.failures < NEVER_OPENED_LIMIT) return;
        var before = conn.problem;
        var unsupported = before !== null && before.key === "nows";
        if (answers) {
          if (!unsupported) conn.problem = { key: "nows" };
          if (!conn.reported) {
            conn.reported = true;
            console.error("liveops: " + conn.failures + " WebSockets to " + socketBase(conn) +
              " never opened, while the page's server answers HTTP: it does not accept " +
              "WebSockets there. Serve the site with an ASGI server (uvicorn " +
              "yourproject.asgi:application, or \"daphne\" first in INSTALLED_APPS for " +
              "runserver), route \"websocket\" to liveops.routing.websocket_urlpatterns in " +
              "asgi.py, give uvicorn a WebSocket library (uvicorn[standard]), let a proxy " +
              "pass the Upgrade and Connection headers, and keep the page's host in " +
              "ALLOWED_HOSTS (the socket's Origin is checked). See “Reconnecting… forever” " +
              "in django-liveops' docs/troubleshooting.md.");
          }
        } else if (unsupported) {
          conn.problem = null; // a server that is down is not set up wrong
          conn.reported = false;
        }
        if (conn.problem === before) return;
        var message = conn.problem || (conn.ws ? { key: "connecting" } : conn.waiting);
        var state = conn.ws ? "connecting" : "closed";
        eachContainer(conn, function (c) { showConnection(c, state, message); });
      });
  }

  /** The socket's address without its query (which holds the operations and grants). */
  function socketBase(conn) {
    return socketUrl(conn.path, [], []).replace(/[?&]$/, "");
  }

  /** Group the page's operations and lists into socket keys: one per path, split every
   *  50 operations (or 5 lists); lists go on the first socket of their path. */
  function wantedSockets() {
    var byPath = new Map();
    allContainers().forEach(function (c) {
      var path = c.getAttribute("data-liveop-ws");
      var token = c.getAttribute("data-liveop");
      if (!path || !token || c.hasAttribute("data-liveop-rejected")) return;
      if (!byPath.has(path)) byPath.set(path, []);
      if (byPath.get(path).indexOf(token) < 0) byPath.get(path).push(token);
    });
    var listsByPath = new Map();
    allLists().forEach(function (l) {
      var path = l.getAttribute("data-liveop-ws");
      if (!path || !l.getAttribute("data-liveop-list") || l.hasAttribute("data-liveop-rejected")) {
        return;
      }
      if (!listsByPath.has(path)) listsByPath.set(path, []);
      if (!byPath.has(path)) byPath.set(path, []);
      if (listsByPath.get(path).indexOf(listSpec(l)) < 0) listsByPath.get(path).push(listSpec(l));
    });
    var wanted = new Map();
    byPath.forEach(function (tokens, path) {
      var lists = listsByPath.get(path) || [];
      var count = Math.max(Math.ceil(tokens.length / MAX_OPS_PER_SOCKET),
                           Math.ceil(lists.length / MAX_LISTS_PER_SOCKET));
      for (var n = 0; n < count; n++) {
        var key = n === 0 ? path : path + " #" + n;
        wanted.set(key, {
          path: path,
          tokens: tokens.slice(n * MAX_OPS_PER_SOCKET, (n + 1) * MAX_OPS_PER_SOCKET),
          lists: lists.slice(n * MAX_LISTS_PER_SOCKET, (n + 1) * MAX_LISTS_PER_SOCKET)
        });
      }
    });
    return wanted;
  }

  /** Scan the page and open, reopen or close sockets so each carries its operations. */
  function connect() {
    removeScriptNotices();
    var wanted = wantedSockets();
    connections.forEach(function (conn, key) {
      if (!wanted.has(key)) {
        stop(conn, null);
        connections.delete(key);
      }
    });
    wanted.forEach(function (want, key) {
      var conn = connections.get(key);
      var same = conn && conn.tokens.join("\n") === want.tokens.join("\n") &&
        conn.lists.join("\n") === want.lists.join("\n");
      if (same && (conn.ws || conn.stopped || conn.timer)) return; // already handled
      if (conn) stop(conn, null);
      conn = { path: want.path, tokens: want.tokens, lists: want.lists, ws: null, timer: null,
               attempt: 0, openedAt: 0, stopped: false, failures: 0, problem: null,
               reported: false, live: false, liveTimer: null, waiting: null };
      connections.set(key, conn);
      open(conn);
    });
  }

  /** The script runs: the DEBUG notice that says it did not (containers, lists) goes. */
  function removeScriptNotices() {
    var notices = document.querySelectorAll("[data-liveop-script-missing]");
    Array.prototype.forEach.call(notices, function (el) { el.remove(); });
  }

  // Close cleanly when the page goes away (and may enter the back/forward cache);
  // reconnect when it comes back, since the snapshot makes that safe.
  window.addEventListener("pagehide", function () {
    connections.forEach(function (conn) { stop(conn, null); });
    connections.clear();
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) connect();
  });

  // ---- cancel and retry ------------------------------------------------------

  /** Reopen the sockets of a token that were closed because it had finished. */
  function revive(token) {
    connections.forEach(function (conn) {
      if (conn.tokens.indexOf(token) >= 0 && conn.stopped && !conn.ws) {
        conn.stopped = false;
        conn.attempt = 0;
        open(conn);
      }
    });
  }

  // The forms work as a plain POST and redirect. With this script the page stays:
  // the request goes by fetch, and what it changed ("Cancelling…", a new attempt)
  // comes back over the socket like any other update, to every page watching.
  // Any failure falls back to the plain post.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var retry = form.classList.contains("liveops-retry");
    if (!retry && !form.classList.contains("liveops-cancel")) return;
    if (!window.fetch || !window.FormData) return;
    var container = form.closest("[data-liveop]");
    event.preventDefault();
    var button = form.querySelector("button");
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (response.status !== 202 && response.status !== 409) throw new Error(response.status);
      if (button) button.disabled = false; // shown again only when it applies again
      if (retry && response.status === 202 && container) {
        revive(container.getAttribute("data-liveop"));
      }
    }).catch(function () {
      form.submit(); // not re-dispatched as a submit event: the plain post
    });
  });

  var api = { connect: connect, applyFrame: applyFrame };
  Object.defineProperty(api, "sockets", {
    enumerable: true,
    get: function () {
      var live = new Map();
      connections.forEach(function (conn, key) {
        if (conn.ws && conn.ws.readyState <= WebSocket.OPEN) live.set(key, conn.ws);
      });
      return live;
    }
  });
  window.liveops = Object.freeze(api);

  function start() {
    scrollLogsToEnd();
    connect();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
