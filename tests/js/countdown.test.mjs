// "Reconnecting in N s…" counts down to the next attempt (liveops.js, Connection.countDown).
//
//     node --test tests/js/
//
// Math.random() is 0.999, so each backoff delay lands just under its ceiling: after a
// live socket drops, the retries wait 499.5 ms, 999 ms, 1998 ms, 3996 ms…
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";

import { loadPage } from "./fake_page.mjs";

const PK = "0b7f5c1e-2f4a-4c59-9b8e-3d2a1f6e7a01";
const LOST = "Connection lost. Retrying…";

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 }));
afterEach(() => mock.timers.reset());

/** Drop the live socket, then fail the next attempts: the page then waits `attempts` long. */
function failUntilTheWaitIs(page, attempts) {
  page.sockets.at(-1).accept();
  page.sockets.at(-1).drop(1012); // a server that stops
  for (const delay of attempts) {
    mock.timers.tick(delay);
    page.sockets.at(-1).drop(1006); // it is not back yet
  }
}

/** Move the clock 1 ms at a time until the page opens a socket; return what it showed, when. */
function watchUntilTheNextAttempt(page) {
  const shown = [[0, page.connection.textContent]];
  const sockets = page.sockets.length;
  for (let ms = 1; page.sockets.length === sockets; ms++) {
    assert.ok(ms <= 20_000, "no new attempt within 20 s");
    mock.timers.tick(1);
    const text = page.connection.textContent;
    if (text !== shown.at(-1)[1]) shown.push([ms, text]);
  }
  return shown;
}

test("the seconds count down until the next attempt, which says Connecting…", () => {
  const page = loadPage({ pk: PK });
  failUntilTheWaitIs(page, [500, 1000, 2000]);
  assert.deepEqual(watchUntilTheNextAttempt(page), [
    [0, "Reconnecting in 4 s…"],
    [996, "Reconnecting in 3 s…"],
    [1996, "Reconnecting in 2 s…"],
    [2996, "Reconnecting in 1 s…"],
    [3996, "Connecting…"],
  ]);
});

test("a wait under a second says it retries, with no countdown", () => {
  const page = loadPage({ pk: PK });
  failUntilTheWaitIs(page, []);
  assert.deepEqual(watchUntilTheNextAttempt(page), [[0, LOST], [500, "Connecting…"]]);
});

test("the region is announced once a wait; then only the number changes, unannounced", () => {
  const page = loadPage({ pk: PK });
  failUntilTheWaitIs(page, [500, 1000, 2000]);
  const region = page.connection;
  const replaced = region.replaced;
  const [before, number, after] = region.childNodes;
  assert.equal(number.className, "liveops-countdown");
  assert.equal(number.getAttribute("aria-live"), "off"); // inside the polite region
  assert.deepEqual([before.textContent, number.textContent, after.textContent], [
    "Reconnecting in ",
    "4",
    " s…",
  ]);
  mock.timers.tick(2996);
  assert.equal(region.textContent, "Reconnecting in 1 s…");
  assert.equal(region.replaced, replaced, "the region's text was set again");
  assert.deepEqual(region.childNodes, [before, number, after]);
});

test("the countdown is in the container's language", () => {
  const page = loadPage({ pk: PK, texts: { reconnecting: "Neuer Versuch in {seconds} s…" } });
  failUntilTheWaitIs(page, [500, 1000]);
  assert.deepEqual(watchUntilTheNextAttempt(page).map(([, text]) => text), [
    "Neuer Versuch in 2 s…",
    "Neuer Versuch in 1 s…",
    "Connecting…",
  ]);
});

test("a known problem stays in words while the seconds run", () => {
  const page = loadPage({ pk: PK });
  page.sockets[0].accept();
  page.sockets[0].drop(4500); // no channel layer: retried at the cap, 15 s
  const problem = "Live updates are not set up on this server; its log says how to fix it.";
  assert.deepEqual(watchUntilTheNextAttempt(page), [[0, problem]]);
});

test("a page that stops watching stops counting", () => {
  const page = loadPage({ pk: PK });
  failUntilTheWaitIs(page, [500, 1000, 2000]);
  page.listeners.get("pagehide")();
  mock.timers.tick(60_000);
  assert.equal(page.connection.textContent, "Reconnecting in 4 s…");
  assert.equal(page.sockets.length, 4, "it tried again");
});
