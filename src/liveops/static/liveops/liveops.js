/*
 * django-liveops client: keeps {% live_operation %} containers current over a WebSocket.
 * The wire protocol and DOM contract are in docs/protocol.md; change both sides together.
 *
 * Public API (window.liveops):
 *   connect()        (re)scan the page for containers (ATTR.op) and (re)open sockets.
 *   applyFrame(text) apply one server frame as if received; returns the ids applied.
 *   sockets          a fresh Map of socket key -> WebSocket that is connecting or open;
 *                    the key is the ATTR.ws path ("<path> #1"… past 50 operations).
 *
 * A container without ATTR.ws is never connected: its server-rendered regions stay as
 * they are, its connection region is left alone, and applyFrame() still works.
 * An element identical to the one in the page is not applied again (no DOM change, no
 * event). liveops:finished fires once per attempt, and not for an attempt the page was
 * already rendered finished with; unless a listener prevents it, a success then follows
 * the operation's chain (the page switches in place, then liveops:chained fires on the
 * new container) or its success URL.
 *
 * Operations lists ({% live_operation_list %}): an ATTR.list element (a tbody) with
 * ATTR.ws joins that path's socket as list=<label>:<page>:<per_page>, so a page with a
 * list and no operation opens one socket too. Row elements (ATTR.row) apply only inside
 * lists of their type: an existing row by the region rules; a new one only into lists
 * marked ATTR.list_insert (page 1), in order of ATTR.sort, newest first, trimmed to
 * ATTR.list_per_page. liveops:row fires on the list for each row inserted or replaced.
 */
(() => {
  "use strict";
  if (window.liveops) return; // included twice: keep the first, or every socket doubles

  // Every data attribute of the wire contract, spelled here only; liveops/_protocol.py holds
  // the server's table, with the same keys (tests/test_wire_contract.py checks both).
  const ATTR = Object.freeze({
    // a container: its operation, socket and grant, its texts, the state shown, its page
    op: "data-liveop",
    ws: "data-liveop-ws",
    grant: "data-liveop-grant",
    texts: "data-liveop-texts",
    connection: "data-liveop-connection",
    rejected: "data-liveop-rejected",
    script_missing: "data-liveop-script-missing",
    url: "data-liveop-url",
    // the rank of a region or a row (rules 1-3), and the phase it was rendered from
    version: "data-liveop-v",
    attempt: "data-liveop-attempt",
    terminal: "data-liveop-terminal",
    state: "data-liveop-state",
    // the log: a line's place, and how many lines the page keeps
    seq: "data-liveop-seq",
    log_max: "data-liveop-log-max",
    // where a success leads: its URL, the next operation of a chain, the headings to swap
    continue: "data-liveop-continue",
    chain: "data-liveop-chain",
    heading: "data-liveop-heading",
    // operations lists and their rows
    list: "data-liveop-list",
    list_page: "data-liveop-list-page",
    list_per_page: "data-liveop-list-per-page",
    list_insert: "data-liveop-list-insert",
    list_status: "data-liveop-list-status",
    list_empty: "data-liveop-list-empty",
    row: "data-liveop-row",
    sort: "data-liveop-sort",
  });

  const BACKOFF_BASE_MS = 500;
  const BACKOFF_FACTOR = 2;
  const BACKOFF_CAP_MS = 15000;
  const STABLE_MS = 10000; // a connection up this long resets the backoff
  const NEVER_OPENED_LIMIT = 3; // handshakes in a row that never opened, then ask why
  const SETTLE_MS = 500; // after a 4500, "Live" once a socket stayed up this long (or spoke)
  const NOT_CONFIGURED = 4500; // the server has no channel layer (its log says so)
  const COUNTDOWN = "liveops-countdown"; // the class of the seconds a countdown shows
  const MAX_OPS_PER_SOCKET = 50; // the server refuses longer op lists
  const MAX_LISTS_PER_SOCKET = 5; // ... and more lists,
  const MAX_ROWS_PER_LIST = 100; // ... or longer list pages
  // What the script says, in English; a container's ATTR.texts holds them in the
  // page's language (rendered by the server: the script needs no catalogue).
  const TEXTS = Object.freeze({
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
    nosocket: "Cannot open a live connection for this page.",
  });

  const connections = new Map(); // socket key -> Connection
  const containerStates = new WeakMap(); // container -> {finishedAttempt, texts}

  // ---- DOM helpers -------------------------------------------------------

  const having = (name) => `[${name}]`; // the selector of the elements that carry it
  const allContainers = () => [...document.querySelectorAll(having(ATTR.op))];
  const allLists = () => [...document.querySelectorAll(having(ATTR.list))];
  const byAttribute = (root, name, value) =>
    [...root.querySelectorAll(having(name))].filter((el) => el.getAttribute(name) === value);
  const containerFor = (token) => byAttribute(document, ATTR.op, token);
  const pkOf = (token) => String(token).slice(String(token).indexOf(":") + 1);
  const regionOf = (token, name) => document.getElementById(`liveop-${pkOf(token)}-${name}`);
  const isTerminal = (el) => el.hasAttribute(ATTR.terminal);

  /** The whole number an attribute holds, or null ("", "2x", missing: not a number). */
  const integerOf = (value) => (/^[+-]?\d+$/.test(value ?? "") ? Number(value) : null);

  /** Versions, attempts, seqs and sizes: missing or non-numeric counts as 0. */
  const intAttr = (el, name) => integerOf(el.getAttribute(name)) ?? 0;

  function processWithHtmx(node) {
    // htmx 2 and 4 both need process() to wire hx-* attributes on nodes it did not insert.
    if (typeof window.htmx?.process !== "function") return;
    try {
      window.htmx.process(node);
    } catch (err) {
      console.warn("liveops: htmx.process failed", err);
    }
  }

  function stateOf(container) {
    let state = containerStates.get(container);
    if (!state) {
      // A page rendered already finished must not announce "finished" again on the
      // reconnect snapshot: seed from what the server rendered.
      const status = regionOf(container.getAttribute(ATTR.op), "status");
      const done = status && isTerminal(status);
      state = { finishedAttempt: done ? intAttr(status, ATTR.attempt) : null,
                texts: parseTexts(container) };
      containerStates.set(container, state);
    }
    return state;
  }

  function parseTexts(container) {
    try {
      const texts = JSON.parse(container.getAttribute(ATTR.texts) || "{}");
      return texts && typeof texts === "object" ? texts : {};
    } catch {
      return {};
    }
  }

  /** One of TEXTS in the container's language (ATTR.texts), else in English. */
  function templateFor(container, key) {
    const own = stateOf(container).texts[key];
    return String((typeof own === "string" ? own : TEXTS[key]) || "");
  }

  /** A message in the container's language: {key, seconds} from TEXTS, or a given text. */
  function textFor(container, message) {
    if (typeof message === "string") return message;
    return templateFor(container, message.key).replace("{seconds}", String(message.seconds));
  }

  /** The nodes of a message: a countdown's seconds get a span of their own (COUNTDOWN). */
  function nodesFor(container, message) {
    const template = typeof message === "string" ? "" : templateFor(container, message.key);
    const at = message.seconds === undefined ? -1 : template.indexOf("{seconds}");
    if (at < 0) return [textFor(container, message)];
    const seconds = document.createElement("span");
    seconds.className = COUNTDOWN;
    // The region is aria-live: the whole text is announced once; the seconds that
    // follow only change on screen, or a screen reader would read out every one.
    seconds.setAttribute("aria-live", "off");
    seconds.textContent = String(message.seconds);
    return [template.slice(0, at), seconds, template.slice(at + "{seconds}".length)];
  }

  // ---- applying regions (docs/protocol.md, "Applying a region element") ---

  /** Rules 1-3: whether the element in the page outranks the incoming one. */
  function isStale(old, incoming) {
    const oldAttempt = intAttr(old, ATTR.attempt);
    const newAttempt = intAttr(incoming, ATTR.attempt);
    if (newAttempt !== oldAttempt) return newAttempt < oldAttempt; // rule 1
    if (isTerminal(old) !== isTerminal(incoming)) return isTerminal(old); // rule 2
    return intAttr(incoming, ATTR.version) < intAttr(old, ATTR.version); // rule 3
  }

  const logLines = (log) => [...log.querySelectorAll(":scope > li")];

  /** The most lines a log keeps: its ATTR.log_max, unlimited unless a whole number ≥ 0. */
  function logMax(log) {
    const max = integerOf(log.getAttribute(ATTR.log_max));
    return max !== null && max >= 0 ? max : Infinity;
  }

  /** The first line with a greater seq, or null: lines mostly arrive in order, so from the end. */
  function lineAfter(log, seq) {
    let after = null;
    for (const line of logLines(log).reverse()) {
      if (intAttr(line, ATTR.seq) <= seq) break;
      after = line;
    }
    return after;
  }

  /** Put one log line in its place by id, else by seq; return "added", "replaced" or "". */
  function placeLine(log, line) {
    const existing = line.id ? document.getElementById(line.id) : null;
    let outcome = "added";
    if (existing?.parentNode === log) {
      if (existing.isEqualNode(line)) return ""; // re-delivered: nothing to do
      existing.replaceWith(line);
      outcome = "replaced";
    } else {
      log.insertBefore(line, lineAfter(log, intAttr(line, ATTR.seq)));
    }
    processWithHtmx(line);
    return outcome;
  }

  const markers = (el) =>
    [el.getAttribute(ATTR.version), el.getAttribute(ATTR.attempt), isTerminal(el)].join();

  /** Rule 4: merge appended lines into the log; return whether the page changed. */
  function appendLog(old, incoming) {
    const before = markers(old);
    const newer = intAttr(incoming, ATTR.attempt) > intAttr(old, ATTR.attempt);
    let changed = newer && old.firstChild !== null;
    if (changed) old.replaceChildren();
    const added = new Set();
    for (const line of logLines(incoming)) {
      const outcome = placeLine(old, line);
      if (outcome === "added") added.add(line);
      changed ||= outcome === "replaced";
    }
    const lines = logLines(old); // sorted by seq, so the oldest come first
    for (const oldest of lines.slice(0, Math.max(0, lines.length - logMax(old)))) {
      oldest.remove();
      // A line this append brought and the trim took again leaves the page as it was.
      if (!added.delete(oldest)) changed = true;
    }
    // Keep the log's own markers in step, or later appends would be misjudged by rules 1-3.
    const version = intAttr(incoming, ATTR.version);
    const kept = newer ? version : Math.max(version, intAttr(old, ATTR.version));
    old.setAttribute(ATTR.version, String(kept));
    old.setAttribute(ATTR.attempt, String(intAttr(incoming, ATTR.attempt)));
    old.toggleAttribute(ATTR.terminal, isTerminal(incoming));
    return changed || added.size > 0 || markers(old) !== before;
  }

  /** Apply one region; return the element now in the page, or null when dropped. */
  function applyRegion(old, incoming) {
    if (isStale(old, incoming)) return null;
    // A log follows its newest line unless the reader scrolled up to read.
    const scroll = old.classList.contains("liveops-log") ? scrollState(old) : null;
    const applied = replaceOrAppend(old, incoming);
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

  const scrollState = (log) =>
    ({ top: log.scrollTop, atBottom: log.scrollHeight - log.scrollTop - log.clientHeight < 8 });

  const restoreScroll = (log, { atBottom, top }) => {
    log.scrollTop = atBottom ? log.scrollHeight : top;
  };

  function scrollLogsToEnd() {
    for (const log of document.querySelectorAll(".liveops-log")) log.scrollTop = log.scrollHeight;
  }

  /** The final state of an attempt: from its status region first, else any region of it. */
  function finishedState(token, attempt, applied) {
    const found = [regionOf(token, "status"), ...applied].find((el) =>
      el && isTerminal(el) && intAttr(el, ATTR.attempt) === attempt && el.hasAttribute(ATTR.state));
    return found ? found.getAttribute(ATTR.state) : null;
  }

  /** Tell listeners which regions changed, then whether an attempt just finished. */
  function announce(container, applied) {
    const token = container.getAttribute(ATTR.op);
    const prefix = `liveop-${pkOf(token)}-`;
    const regions = applied.map(({ id }) => (id.startsWith(prefix) ? id.slice(prefix.length) : id));
    container.dispatchEvent(
      new CustomEvent("liveops:update", { bubbles: true, detail: { op: token, regions } }));
    const state = stateOf(container);
    for (const el of applied) {
      const attempt = intAttr(el, ATTR.attempt);
      const seen = state.finishedAttempt !== null && attempt <= state.finishedAttempt;
      if (!isTerminal(el) || seen) continue;
      state.finishedAttempt = attempt;
      announceFinished(container, finishedState(token, attempt, applied));
    }
  }

  /** Fire liveops:finished; unless a listener prevents it, a success goes where it leads. */
  function announceFinished(container, state) {
    const detail = { op: container.getAttribute(ATTR.op), state };
    const event = new CustomEvent("liveops:finished", { bubbles: true, cancelable: true, detail });
    container.dispatchEvent(event);
    announceFinishedAs04(container, state);
    if (state !== "FINISHED_OK" || event.defaultPrevented) return;
    const chain = container.querySelector(`a${having(ATTR.chain)}`);
    if (chain) followChain(container, chain);
    else continueTo(container);
  }

  /** django-liveops 0.4's event, for the pages written for it: on document, not cancelable. */
  function announceFinishedAs04(container, state) {
    const ok = state === "FINISHED_OK";
    const link = ok ? container.querySelector(`a${having(ATTR.continue)}`) : null;
    const detail = {
      pk: pkOf(container.getAttribute(ATTR.op)),
      state,
      url: container.getAttribute(ATTR.url) ?? "", // its live page ("": none routed)
      success_url: link?.getAttribute("href") ?? null,
    };
    document.dispatchEvent(new CustomEvent("liveop:finished", { detail }));
  }

  /**
   * Switch the page in place to the operation this one continued in (p.chain_to): load
   * the next operation's page, take its container (with its grant and forms) and the
   * headings marked ATTR.heading, and watch it. On the operation's own page the
   * address follows too. Anything unexpected falls back to going to that page.
   */
  async function followChain(container, link) {
    const from = container.getAttribute(ATTR.op);
    const token = link.getAttribute(ATTR.chain);
    try {
      const request = { credentials: "same-origin", headers: { Accept: "text/html" } };
      const response = await fetch(link.href, request);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const next = byAttribute(page, ATTR.op, token)[0];
      if (!next) throw new Error(`no live container for ${token} at ${link.href}`);
      if (!container.isConnected) return;
      const adopted = document.importNode(next, true);
      container.replaceWith(adopted);
      if (replaceHeadings(page, from, token)) {
        history.replaceState(history.state, "", link.href);
        if (page.title) document.title = page.title;
      }
      processWithHtmx(adopted);
      connect();
      adopted.dispatchEvent(
        new CustomEvent("liveops:chained", { bubbles: true, detail: { from, op: token } }));
    } catch (err) {
      console.warn("liveops: could not switch in place; going to the next operation", err);
      window.location.assign(link.href);
    }
  }

  /** Swap the headings of `from` for the fetched page's of `token`; return whether it had any. */
  function replaceHeadings(page, from, token) {
    const heading = byAttribute(page, ATTR.heading, token)[0];
    const old = byAttribute(document, ATTR.heading, from);
    if (heading) for (const el of old) el.replaceWith(document.importNode(heading, true));
    return old.length > 0; // only the operation's own page has them
  }

  /** Follow the operation's success URL (LiveOperation.get_success_url), if it has one. */
  function continueTo(container) {
    const link = container.querySelector(`a${having(ATTR.continue)}`);
    if (link?.href) window.location.assign(link.href);
  }

  // ---- operations lists (docs/protocol.md, "Operations lists") -------------

  const perPage = (list) => {
    const n = intAttr(list, ATTR.list_per_page);
    return n >= 1 ? n : 25;
  };

  /** What the socket asks for: "<label>:<page>:<per_page>" (a longer page: its first 100). */
  function listSpec(list) {
    const page = Math.max(1, intAttr(list, ATTR.list_page));
    const size = Math.min(perPage(list), MAX_ROWS_PER_LIST);
    return `${list.getAttribute(ATTR.list)}:${page}:${size}`;
  }

  const listRows = (list) => [...list.children].filter((el) => el.hasAttribute(ATTR.row));

  /** Newest first: ATTR.sort descending, then the id descending (as the server). */
  function rowOrder(a, b) {
    const sa = intAttr(a, ATTR.sort);
    const sb = intAttr(b, ATTR.sort);
    if (sa !== sb) return sb - sa;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  }

  /** Put a new row in its place, then trim the list to its page; return whether it stayed. */
  function insertRow(list, row) {
    const rows = listRows(list);
    const next = rows.find((el) => rowOrder(row, el) < 0);
    const last = rows.at(-1);
    list.insertBefore(row, next || (last ? last.nextSibling : list.firstChild));
    for (const oldest of listRows(list).sort(rowOrder).slice(perPage(list))) oldest.remove();
    return row.parentNode === list;
  }

  /** Apply a row element to every list of its type; return whether the page changed. */
  function applyRow(incoming) {
    if (!incoming.id) return false;
    const label = incoming.getAttribute(ATTR.row);
    let changed = false;
    for (const list of allLists()) {
      if (list.getAttribute(ATTR.list) !== label) continue;
      changed = applyRowTo(list, incoming.cloneNode(true)) || changed;
    }
    return changed;
  }

  /** Replace the list's row of that id by the region rules, or insert it; fire liveops:row. */
  function applyRowTo(list, row) {
    const old = listRows(list).find((el) => el.id === row.id);
    if (old) {
      if (isStale(old, row) || old.isEqualNode(row)) return false;
      old.replaceWith(row);
    } else if (!list.hasAttribute(ATTR.list_insert) || !insertRow(list, row)) {
      return false; // only page 1 gains rows, and only rows new enough for it
    }
    for (const el of list.children) if (el.hasAttribute(ATTR.list_empty)) el.hidden = true;
    processWithHtmx(row);
    const detail = { op: `${row.getAttribute(ATTR.row)}:${row.id.replace(/^liveop-row-/, "")}`,
                     state: row.getAttribute(ATTR.state) };
    list.dispatchEvent(new CustomEvent("liveops:row", { bubbles: true, detail }));
    return true;
  }

  function applyHtml(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    const byContainer = new Map(); // container -> [applied elements], for one event each
    const ids = [];
    for (const incoming of [...template.content.children]) {
      if (incoming.hasAttribute(ATTR.row)) { // only ever into a list
        if (applyRow(incoming)) ids.push(incoming.id);
        continue;
      }
      const old = incoming.id ? document.getElementById(incoming.id) : null;
      const container = old?.closest(having(ATTR.op));
      // Rule 6, and only server regions: the container itself and the connection
      // region belong to the page and to this script.
      if (!container || old === container || old.classList.contains("liveops-connection")) {
        continue;
      }
      stateOf(container); // seed before the page changes
      const applied = applyRegion(old, incoming);
      if (!applied) continue;
      ids.push(incoming.id);
      if (!byContainer.has(container)) byContainer.set(container, []);
      byContainer.get(container).push(applied);
    }
    byContainer.forEach((applied, container) => announce(container, applied));
    return ids;
  }

  // ---- connection state shown to people ----------------------------------

  function showConnection(container, state, message) {
    if (container.hasAttribute(ATTR.rejected)) return; // keep the reason visible
    const text = textFor(container, message);
    container.setAttribute(ATTR.connection, state);
    const region = connectionRegion(container);
    if (region && region.textContent !== text) {
      region.replaceChildren(...nodesFor(container, message));
    }
  }

  /** Move a countdown that is shown on by a second: only its number changes. */
  function showSeconds(container, seconds) {
    if (container.hasAttribute(ATTR.rejected)) return;
    const number = connectionRegion(container)?.querySelector(`.${COUNTDOWN}`);
    if (number) number.textContent = String(seconds);
  }

  /** Where a container, or a list (ATTR.list_status), says how its connection is. */
  function connectionRegion(el) {
    if (!el.hasAttribute(ATTR.list)) return regionOf(el.getAttribute(ATTR.op), "connection");
    const id = el.getAttribute(ATTR.list_status);
    return id ? document.getElementById(id) : null;
  }

  /** Why the server refused: its code's text (in the page's language), else its reason. */
  function refusal(code, reason, fallbackKey) {
    if (Object.hasOwn(TEXTS, String(code))) return { key: String(code) };
    return (typeof reason === "string" && reason) || { key: fallbackKey };
  }

  /** Show the refusal on each element; close the sockets that carried it and have nothing left. */
  function markRejected(elements, rejection, carried) {
    const message = refusal(rejection.code, rejection.reason, "unwatchable");
    for (const el of elements) {
      showConnection(el, "rejected", message);
      el.setAttribute(ATTR.rejected, String(rejection.code || ""));
    }
    for (const conn of connections.values()) {
      if (carried(conn) && conn.idle()) conn.stop("rejected", null);
    }
  }

  function rejectList(rejection) {
    const lists = allLists().filter((list) => listSpec(list) === rejection.list);
    markRejected(lists, rejection, (conn) => conn.lists.includes(rejection.list));
  }

  function rejectOperation(rejection) {
    const token = rejection.op;
    if (typeof token !== "string") return;
    markRejected(containerFor(token), rejection, (conn) => conn.tokens.includes(token));
  }

  /** Apply one frame string as if received from the server; return the ids applied. */
  function applyFrame(text) {
    try {
      const frame = JSON.parse(text);
      if (!frame || typeof frame !== "object") throw new TypeError("frame is not an object");
      const ids = typeof frame.liveop_html === "string" ? applyHtml(frame.liveop_html) : [];
      const rejection = frame.liveop_rejected;
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

  const activeTokens = (path, tokens) => tokens.filter((token) => containerFor(token).some((c) =>
    c.getAttribute(ATTR.ws) === path && !c.hasAttribute(ATTR.rejected)));

  const activeLists = (path, specs) => specs.filter((spec) => allLists().some((l) =>
    l.getAttribute(ATTR.ws) === path && listSpec(l) === spec && !l.hasAttribute(ATTR.rejected)));

  /** The page's view grant for a token ("~" + grant), or "" (docs/protocol.md, Connecting). */
  function grantOf(path, token) {
    const granted = containerFor(token).find((c) =>
      c.getAttribute(ATTR.ws) === path && c.getAttribute(ATTR.grant));
    return granted ? `~${granted.getAttribute(ATTR.grant)}` : "";
  }

  function socketUrl(path, tokens, lists) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = [
      ...tokens.map((t) => `op=${encodeURIComponent(t + grantOf(path, t))}`),
      ...lists.map((spec) => `list=${encodeURIComponent(spec)}`),
    ].join("&");
    return `${scheme}//${location.host}${path}${path.includes("?") ? "&" : "?"}${query}`;
  }

  /** One socket key's WebSocket: what it carries, its retries and what it tells people. */
  class Connection {
    ws = null;
    timer = null; // the pending reconnect
    attempt = 0; // reconnects since the backoff was last reset
    openedAt = 0;
    stopped = false;
    failures = 0; // handshakes in a row that never opened
    problem = null; // a known reason to say while retrying: {key}
    reported = false; // the console was told why sockets never open
    live = false;
    liveTimer = null;
    waiting = null; // what the countdown says: {key, seconds}
    tick = null; // the countdown's next second

    constructor({ path, tokens, lists }) {
      Object.assign(this, { path, tokens, lists });
    }

    carries(want) {
      return this.tokens.join("\n") === want.tokens.join("\n") &&
        this.lists.join("\n") === want.lists.join("\n");
    }

    /** Each container, and each list, that this socket carries. */
    watchers() {
      const containers = allContainers().filter((c) =>
        c.getAttribute(ATTR.ws) === this.path && this.tokens.includes(c.getAttribute(ATTR.op)));
      const lists = allLists().filter((l) =>
        l.getAttribute(ATTR.ws) === this.path && this.lists.includes(listSpec(l)));
      return [...containers, ...lists];
    }

    show(state, message) {
      for (const el of this.watchers()) showConnection(el, state, message);
    }

    /** Whether nothing on this socket is left to watch (every op and list was rejected). */
    idle() {
      return activeTokens(this.path, this.tokens).length === 0 &&
        activeLists(this.path, this.lists).length === 0;
    }

    allFinished() {
      // A list never finishes: new operations can always start.
      return this.lists.length === 0 && this.tokens.every((token) => {
        const status = regionOf(token, "status");
        return status && isTerminal(status);
      });
    }

    stop(state, message) {
      this.stopped = true;
      clearTimeout(this.timer);
      clearTimeout(this.liveTimer);
      clearTimeout(this.tick);
      if (this.ws) {
        const ws = this.ws;
        this.ws = null; // detach first so its close event is not taken for a drop
        ws.close(1000);
      }
      if (state) this.show(state, message || "");
    }

    open() {
      clearTimeout(this.timer);
      clearTimeout(this.tick);
      this.timer = null;
      this.stopped = false;
      this.tokens = activeTokens(this.path, this.tokens); // never ask again for a rejected op
      this.lists = activeLists(this.path, this.lists); // nor for a rejected list
      if (this.tokens.length === 0 && this.lists.length === 0) return this.stop(null);
      // A known problem stays in words while the page tries again; only the state changes.
      this.show("connecting", this.problem || { key: "connecting" });
      let ws;
      try {
        ws = new WebSocket(socketUrl(this.path, this.tokens, this.lists));
      } catch (err) {
        console.warn(`liveops: cannot open a WebSocket for ${this.path}`, err);
        this.stop("rejected", { key: "nosocket" });
        return;
      }
      this.ws = ws;
      this.openedAt = 0;
      this.live = false;
      ws.onopen = () => this.opened(ws);
      ws.onmessage = (event) => {
        if (this.ws !== ws) return;
        this.markLive(ws);
        if (typeof event.data === "string") applyFrame(event.data);
      };
      // An error is always followed by close, so close alone decides what happens next.
      ws.onclose = (event) => { if (this.ws === ws) this.dropped(event); };
    }

    opened(ws) {
      if (this.ws !== ws) return;
      this.openedAt = Date.now();
      this.failures = 0;
      // A server without a channel layer accepts, then closes with 4500 at once: after
      // one, say "Live" when the socket speaks or stays up, not for a flash each retry.
      if (this.problem?.key !== String(NOT_CONFIGURED)) this.markLive(ws);
      else this.liveTimer = setTimeout(() => this.markLive(ws), SETTLE_MS);
    }

    /** The socket is up: say so, and forget the problems of earlier attempts. */
    markLive(ws) {
      if (this.ws !== ws || this.live) return;
      clearTimeout(this.liveTimer);
      this.live = true;
      this.problem = null;
      this.reported = false;
      this.show("open", { key: "live" });
    }

    dropped(event) {
      this.ws = null;
      this.live = false;
      clearTimeout(this.liveTimer);
      if (event.code >= 4400 && event.code <= 4499) {
        this.stop("rejected", refusal(event.code, event.reason, "refused"));
        return;
      }
      if (this.allFinished()) {
        this.stop("closed", ""); // nothing more can change
        return;
      }
      // Only a failed handshake closes with 1006 before opening: any other code came from
      // a server that speaks WebSocket (a 4500 may even arrive before "open" is seen).
      const opened = this.openedAt > 0 || event.code !== 1006;
      this.failures = opened ? 0 : this.failures + 1;
      // 4500 (no channel layer) is not final, unlike the 44xx refusals: those answer this
      // page's request and would answer it the same way again, while this is the server's
      // set-up, fixed by a setting and a restart that a retry picks up without a reload.
      // The server logs the fix once per process, so retrying adds nothing to its log.
      if (event.code === NOT_CONFIGURED) this.problem = { key: String(NOT_CONFIGURED) };
      else if (opened || (this.problem && this.problem.key !== "nows")) this.problem = null;
      if (this.openedAt && Date.now() - this.openedAt >= STABLE_MS) this.attempt = 0;
      const delay = this.backoff();
      this.waiting = delay < 1000 ? { key: "retrying" }
        : { key: "reconnecting", seconds: Math.ceil(delay / 1000) };
      this.show("closed", this.problem || this.waiting);
      this.timer = setTimeout(() => this.open(), delay);
      this.countDown(Date.now() + delay);
      if (this.failures >= NEVER_OPENED_LIMIT) this.probe();
    }

    /** Until the attempt at `retryAt`, lower the seconds shown each time a whole one passes. */
    countDown(retryAt) {
      if (this.waiting?.key !== "reconnecting") return;
      const seconds = Math.ceil((retryAt - Date.now()) / 1000);
      if (seconds < 1) return; // the attempt itself says "Connecting…"
      if (seconds !== this.waiting.seconds) {
        this.waiting = { key: "reconnecting", seconds };
        if (!this.problem) for (const el of this.watchers()) showSeconds(el, seconds);
      }
      // Timed from the clock, not counted: a throttled background tab still shows the truth.
      const next = retryAt - Date.now() - (seconds - 1) * 1000;
      if (seconds > 1) this.tick = setTimeout(() => this.countDown(retryAt), next);
    }

    /** The delay before the next attempt, which it counts. */
    backoff() {
      // Full jitter spreads reconnects after a server restart instead of a stampede. A
      // server that is not set up for live updates will not be fixed in a second: the cap.
      const ceiling = this.problem ? BACKOFF_CAP_MS
        : BACKOFF_BASE_MS * BACKOFF_FACTOR ** this.attempt;
      this.attempt += 1;
      return Math.random() * Math.min(BACKOFF_CAP_MS, ceiling);
    }

    /**
     * Handshakes keep failing before the socket opens: ask the page's own server whether
     * it answers HTTP (any status will do). If it does, it is up but does not take
     * WebSockets there (WSGI, no "websocket" route, uvicorn without a WebSocket library, a
     * proxy that drops Upgrade), which no retry will change: say so, and keep retrying at
     * the cap so a fixed, restarted server is picked up. If it does not, it is just down.
     */
    async probe() {
      if (typeof window.fetch !== "function") return;
      const answers = await fetch(location.href,
                                  { method: "HEAD", cache: "no-store", credentials: "same-origin" })
        .then(() => true, () => false);
      // Late: the page stopped watching, or a socket reached the server meanwhile.
      if (this.stopped || this.openedAt || this.failures < NEVER_OPENED_LIMIT) return;
      const before = this.problem;
      const unsupported = before?.key === "nows";
      if (answers) {
        if (!unsupported) this.problem = { key: "nows" };
        this.reportNoWebSockets();
      } else if (unsupported) {
        this.problem = null; // a server that is down is not set up wrong
        this.reported = false;
      }
      if (this.problem === before) return;
      const message = this.problem || (this.ws ? { key: "connecting" } : this.waiting);
      this.show(this.ws ? "connecting" : "closed", message);
    }

    /** Say once, to the developer, why sockets never open and how to fix it. */
    reportNoWebSockets() {
      if (this.reported) return;
      this.reported = true;
      console.error(`liveops: ${this.failures} WebSockets to ${this.socketBase()}` +
        " never opened, while the page's server answers HTTP: it does not accept " +
        "WebSockets there. Serve the site with an ASGI server (uvicorn " +
        "yourproject.asgi:application, or \"daphne\" first in INSTALLED_APPS for " +
        "runserver), route \"websocket\" to liveops.routing.websocket_urlpatterns in " +
        "asgi.py, give uvicorn a WebSocket library (uvicorn[standard]), let a proxy " +
        "pass the Upgrade and Connection headers, and keep the page's host in " +
        "ALLOWED_HOSTS (the socket's Origin is checked). See “Reconnecting… forever” " +
        "in django-liveops' docs/troubleshooting.md.");
    }

    /** The socket's address without its query (which holds the operations and grants). */
    socketBase() {
      return socketUrl(this.path, [], []).replace(/[?&]$/, "");
    }
  }

  const entryOf = (map, key) => map.get(key) ?? map.set(key, []).get(key);
  const addOnce = (array, value) => array.includes(value) || array.push(value);

  /** Group the page's operations and lists into socket keys: one per path, split every
   *  50 operations (or 5 lists); lists go on the first socket of their path. */
  function wantedSockets() {
    const tokensByPath = new Map();
    const listsByPath = new Map();
    for (const c of allContainers()) {
      const path = c.getAttribute(ATTR.ws);
      const token = c.getAttribute(ATTR.op);
      if (!path || !token || c.hasAttribute(ATTR.rejected)) continue;
      addOnce(entryOf(tokensByPath, path), token);
    }
    for (const l of allLists()) {
      const path = l.getAttribute(ATTR.ws);
      if (!path || !l.getAttribute(ATTR.list) || l.hasAttribute(ATTR.rejected)) continue;
      addOnce(entryOf(listsByPath, path), listSpec(l));
      entryOf(tokensByPath, path); // a path with lists only still gets its socket
    }
    const wanted = new Map();
    for (const [path, tokens] of tokensByPath) {
      const lists = listsByPath.get(path) || [];
      const count = Math.max(Math.ceil(tokens.length / MAX_OPS_PER_SOCKET),
                             Math.ceil(lists.length / MAX_LISTS_PER_SOCKET));
      for (let n = 0; n < count; n++) {
        wanted.set(n === 0 ? path : `${path} #${n}`, {
          path,
          tokens: tokens.slice(n * MAX_OPS_PER_SOCKET, (n + 1) * MAX_OPS_PER_SOCKET),
          lists: lists.slice(n * MAX_LISTS_PER_SOCKET, (n + 1) * MAX_LISTS_PER_SOCKET),
        });
      }
    }
    return wanted;
  }

  /** Scan the page and open, reopen or close sockets so each carries its operations. */
  function connect() {
    removeScriptNotices();
    const wanted = wantedSockets();
    for (const [key, conn] of connections) {
      if (wanted.has(key)) continue;
      conn.stop(null);
      connections.delete(key);
    }
    for (const [key, want] of wanted) {
      const conn = connections.get(key);
      if (conn?.carries(want) && (conn.ws || conn.stopped || conn.timer)) continue; // handled
      conn?.stop(null);
      const fresh = new Connection(want);
      connections.set(key, fresh);
      fresh.open();
    }
  }

  /** The script runs: the DEBUG notice that says it did not (containers, lists) goes. */
  function removeScriptNotices() {
    for (const el of document.querySelectorAll(having(ATTR.script_missing))) el.remove();
  }

  // Close cleanly when the page goes away (and may enter the back/forward cache);
  // reconnect when it comes back, since the snapshot makes that safe.
  window.addEventListener("pagehide", () => {
    for (const conn of connections.values()) conn.stop(null);
    connections.clear();
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) connect();
  });

  // ---- cancel and retry ------------------------------------------------------

  /** Reopen the sockets of a token that were closed because it had finished. */
  function revive(token) {
    for (const conn of connections.values()) {
      if (!conn.tokens.includes(token) || !conn.stopped || conn.ws) continue;
      conn.stopped = false;
      conn.attempt = 0;
      conn.open();
    }
  }

  // The forms work as a plain POST and redirect. With this script the page stays:
  // the request goes by fetch, and what it changed ("Cancelling…", a new attempt)
  // comes back over the socket like any other update, to every page watching.
  // Any failure falls back to the plain post.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const retry = form.classList.contains("liveops-retry");
    if (!retry && !form.classList.contains("liveops-cancel")) return;
    if (!window.fetch || !window.FormData) return;
    event.preventDefault();
    sendForm(form, retry);
  });

  async function sendForm(form, retry) {
    const container = form.closest(having(ATTR.op));
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      const response = await fetch(form.action, { method: "POST", body: new FormData(form),
        credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.status !== 202 && response.status !== 409) throw new Error(response.status);
      if (button) button.disabled = false; // shown again only when it applies again
      if (retry && response.status === 202 && container) revive(container.getAttribute(ATTR.op));
    } catch {
      form.submit(); // not re-dispatched as a submit event: the plain post
    }
  }

  window.liveops = Object.freeze({
    connect,
    applyFrame,
    get sockets() {
      const open = [...connections].filter(([, conn]) => conn.ws?.readyState <= WebSocket.OPEN);
      return new Map(open.map(([key, conn]) => [key, conn.ws]));
    },
  });

  const start = () => {
    scrollLogsToEnd();
    connect();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
