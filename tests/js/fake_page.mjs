// A page for liveops.js in node: the few DOM calls its socket code makes, and sockets
// the test opens and closes. Anything else it asks for throws, so a test cannot pass on
// a part of the page that is not there. Timers and Date are node's, so node:test's mock
// timers drive the script's clock.
import { readFileSync } from "node:fs";
import vm from "node:vm";

const SCRIPT = new URL("../../src/liveops/static/liveops/liveops.js", import.meta.url);

class Text {
  constructor(data) {
    this.data = String(data);
  }

  get textContent() {
    return this.data;
  }

  set textContent(value) {
    this.data = String(value);
  }
}

export class Element {
  constructor(tag, attributes = {}, children = []) {
    this.tagName = tag.toUpperCase();
    this.attributes = new Map(Object.entries(attributes));
    this.childNodes = [];
    this.replaced = 0; // how often its children were replaced (a live region re-announces)
    this.append(...children);
  }

  get id() {
    return this.getAttribute("id") ?? "";
  }

  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }

  hasAttribute(name) {
    return this.attributes.has(name);
  }

  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }

  get className() {
    return this.getAttribute("class") ?? "";
  }

  set className(value) {
    this.setAttribute("class", value);
  }

  get classList() {
    return { contains: (name) => this.className.split(/\s+/).includes(name) };
  }

  get textContent() {
    return this.childNodes.map((node) => node.textContent).join("");
  }

  set textContent(value) {
    this.replaceChildren(String(value));
  }

  append(...nodes) {
    for (const node of nodes) this.childNodes.push(typeof node === "string" ? new Text(node) : node);
  }

  replaceChildren(...nodes) {
    this.childNodes = [];
    this.replaced += 1;
    this.append(...nodes);
  }

  *descendants() {
    for (const node of this.childNodes) {
      if (node instanceof Element) {
        yield node;
        yield* node.descendants();
      }
    }
  }

  querySelectorAll(selector) {
    const attribute = /^\[([\w-]+)\]$/.exec(selector);
    const className = /^\.([\w-]+)$/.exec(selector);
    if (!attribute && !className) throw new Error(`the fake page has no selector ${selector}`);
    return [...this.descendants()].filter((el) =>
      attribute ? el.hasAttribute(attribute[1]) : el.classList.contains(className[1]));
  }

  querySelector(selector) {
    return this.querySelectorAll(selector)[0] ?? null;
  }

  addEventListener() {}
}

/** A socket the page opened; the test plays the server. */
export class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url) {
    this.url = url;
    this.readyState = FakeSocket.CONNECTING;
    this.page.sockets.push(this);
  }

  /** The server accepts the socket. */
  accept() {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.({});
  }

  /** The server closes the socket (or, with 1006 before accept(), the handshake fails). */
  drop(code) {
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.({ code, reason: "" });
  }

  close() {
    this.readyState = FakeSocket.CLOSED;
  }
}

/**
 * Load liveops.js into a page holding one operation's container; return the page.
 * Enable node:test's mock timers (setTimeout, Date) first: the page uses them.
 */
export function loadPage({ pk, texts = {}, random = 0.999 }) {
  const connection = new Element("p", {
    id: `liveop-${pk}-connection`,
    class: "liveops-connection",
    role: "status",
    "aria-live": "polite",
  });
  const status = new Element("div", { id: `liveop-${pk}-status`, "data-liveop-attempt": "1" });
  const container = new Element(
    "section",
    {
      id: `liveop-${pk}`,
      "data-liveop": `testapp.endless:${pk}`,
      "data-liveop-ws": "/ws/liveops/",
      "data-liveop-texts": JSON.stringify(texts),
    },
    [connection, status],
  );
  const body = new Element("body", {}, [container]);
  const listeners = new Map();
  const page = { body, connection, sockets: [], listeners };
  const document = {
    readyState: "complete",
    body,
    createElement: (tag) => new Element(tag),
    getElementById: (id) => [...body.descendants()].find((el) => el.id === id) ?? null,
    querySelectorAll: (selector) => body.querySelectorAll(selector),
    addEventListener() {},
  };
  const context = vm.createContext({
    document,
    location: { protocol: "http:", host: "liveops.test", href: "http://liveops.test/" },
    WebSocket: class extends FakeSocket {
      get page() {
        return page;
      }
    },
    console,
    // Looked up at each call: the mocked ones, whenever the test enabled them.
    setTimeout: (...args) => globalThis.setTimeout(...args),
    clearTimeout: (...args) => globalThis.clearTimeout(...args),
    Date: globalThis.Date,
  });
  context.window = context;
  context.addEventListener = (type, listener) => listeners.set(type, listener);
  vm.runInContext(`Math.random = () => ${random};`, context);
  vm.runInContext(readFileSync(SCRIPT, "utf8"), context, { filename: SCRIPT.pathname });
  return page;
}
