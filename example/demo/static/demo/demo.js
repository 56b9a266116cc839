/*
 * Keep each live log scrolled to its newest line, unless the reader scrolled up.
 *
 * A stop-gap until liveops.js does it: the log is a scrolling box, new lines land
 * below its fold, and a finished operation's log is replaced as a whole (which
 * scrolls it back to the top). liveops.js fires "liveops:update" after each change.
 */
(function () {
  "use strict";
  var scrolledUp = new Set(); // ids of the logs the reader moved away from the bottom
  var ours = new Map(); // log id -> the scrollTop we set last

  function follow() {
    document.querySelectorAll(".liveops-log").forEach(function (log) {
      if (scrolledUp.has(log.id)) return;
      log.scrollTop = log.scrollHeight;
      ours.set(log.id, log.scrollTop);
    });
  }

  // Scroll events do not bubble; listen in the capture phase to see every log's.
  document.addEventListener("scroll", function (event) {
    var log = event.target;
    if (!(log instanceof Element) || !log.classList.contains("liveops-log")) return;
    // Lines may have arrived since we scrolled: only moving up from where we put it
    // (or from the bottom) means the reader wants to stay where they are.
    var bottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
    if (bottom || log.scrollTop >= (ours.get(log.id) || 0) - 2) scrolledUp.delete(log.id);
    else scrolledUp.add(log.id);
  }, true);
  document.addEventListener("liveops:update", follow);
  document.addEventListener("DOMContentLoaded", follow);
})();
