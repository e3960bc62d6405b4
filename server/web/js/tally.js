/* tally.js: send page views and events from a web page to tally with a
 * publishable key. Served by tally at /js/tally.js.
 *
 *   <script src="https://TALLY/js/tally.js" data-key="tk_..." defer></script>
 *   tally.track("signup.started", {plan: "pro"}); tally.identify("u_42");
 *
 * Options (attributes of the script tag): data-key (required), data-host
 * (default: where the script came from), data-pageviews="false" (no
 * automatic page views). Events are batched (up to 20, or 1 s) and sent
 * with fetch(keepalive); on pagehide the queue goes by navigator.sendBeacon.
 * Bodies are text/plain so that no CORS preflight is needed. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.tally && window.tally._loaded) { return; }
  var key = script.getAttribute("data-key");
  var host = (script.getAttribute("data-host") || new URL(script.src).origin).replace(/\/$/, "");
  var url = host + "/api/analytics/events?key=" + encodeURIComponent(key || "");
  var queue = [], timer = null, userId = null, MAX = 20, WAIT = 1000;

  function id() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }
  function anonymousId() {
    try {
      var a = localStorage.getItem("tally_anonymous_id");
      if (!a) { a = "anon-" + id(); localStorage.setItem("tally_anonymous_id", a); }
      return a;
    } catch (e) { return null; }
  }
  function body() {
    var batch = queue.splice(0, queue.length);
    return batch.length ? JSON.stringify({batch: batch, sent_at: new Date().toISOString()}) : null;
  }
  function flush(beacon) {
    clearTimeout(timer); timer = null;
    var b = body();
    if (!b) { return; }
    if (beacon && navigator.sendBeacon && navigator.sendBeacon(url, new Blob([b], {type: "text/plain"}))) { return; }
    fetch(url, {method: "POST", body: b, keepalive: true, mode: "cors", credentials: "omit",
      headers: {"Content-Type": "text/plain"}}).catch(function () {});
  }
  function track(event, props, opts) {
    if (!key) { return; }
    opts = opts || {};
    var e = {event: event, event_id: opts.event_id || id(), source: "browser",
      timestamp: new Date().toISOString(), props: props || {}};
    var u = opts.user_id || userId || anonymousId();
    if (u) { e.user_id = u; }
    if (typeof opts.value === "number") { e.value = opts.value; }
    queue.push(e);
    if (queue.length >= MAX) { flush(false); } else if (!timer) { timer = setTimeout(function () { flush(false); }, WAIT); }
  }
  function page(props) {
    var p = {url: location.href, path: location.pathname, title: document.title, referrer: document.referrer};
    for (var k in props || {}) { p[k] = props[k]; }
    track("page.view", p);
  }
  var pending = Array.isArray(window.tally) ? window.tally : [];
  window.tally = {
    _loaded: true,
    track: track,
    page: page,
    identify: function (u) { userId = u ? String(u) : null; },
    flush: function () { flush(false); }
  };
  pending.forEach(function (call) { window.tally[call[0]].apply(null, call.slice(1)); });
  addEventListener("pagehide", function () { flush(true); });
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") { flush(true); } });
  if (script.getAttribute("data-pageviews") !== "false") { page(); }
})();
