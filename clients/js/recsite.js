/*! recsite.js: a browser snippet for the recsite API. No build step, no dependencies.
 *
 * Fetches a user's list with a shopper token and reports what the shopper saw and opened:
 * impressions of the items actually on screen (IntersectionObserver, half visible) and
 * clicks, each with the list's recommendation_id and the item's 1-based position. It
 * renders nothing itself. See clients/js/README.md.
 *
 *   const rs = Recsite.client({ baseUrl: "/api/v1", token: (user) => tokenFor(user) });
 *   const list = await rs.fetchList({ user: "u-1", k: 12, lang: "zh" });
 *   const cards = render(list.items);            // your own markup, in list order
 *   rs.observe(list, cards, { clicks: "a[href]" });
 */
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.Recsite = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  const VERSION = "1.0.0";
  const BATCH_LIMIT = 100; // events per POST (a keepalive body must stay under 64 KB)

  function uuid() {
    const c = typeof crypto !== "undefined" ? crypto : null;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    const bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
    else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function errorText(payload, status) {
    if (payload && typeof payload === "object") {
      if (payload.detail) return String(payload.detail);
      return Object.keys(payload)
        .map((field) => `${field}: ${[].concat(payload[field]).join(" ")}`)
        .join("; ");
    }
    return `HTTP ${status}`;
  }

  function client(options) {
    const opts = options || {};
    const base = String(opts.baseUrl || "/api/v1").replace(/\/+$/, "");
    const debounceMs = opts.debounceMs === undefined ? 500 : opts.debounceMs;
    const threshold = opts.threshold === undefined ? 0.5 : opts.threshold;
    const context = opts.context || {};
    const queue = [];
    const seen = new Map(); // recommendation_id -> Set of reported positions
    let timer = 0;

    // The token: a string, or a function (user, fresh) returning one (or a promise of
    // one); `fresh` is true after a 401, when a cached token has expired.
    async function tokenFor(user, fresh) {
      const token = typeof opts.token === "function" ? await opts.token(user, fresh) : opts.token;
      return token || "";
    }

    async function send(path, { method = "GET", params, json, user, keepalive = false } = {}) {
      const url = new URL(base + path, typeof location !== "undefined" ? location.href : undefined);
      for (const key of Object.keys(params || {})) {
        const value = params[key];
        if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
      }
      const attempt = async (fresh) => {
        const extra = typeof opts.headers === "function" ? opts.headers() : opts.headers;
        const headers = Object.assign({ Accept: "application/json" }, extra || {});
        const token = await tokenFor(user, fresh);
        if (token) headers.Authorization = `Shopper ${token}`;
        const init = { method, headers, keepalive, credentials: opts.credentials || "same-origin" };
        if (json !== undefined) {
          headers["Content-Type"] = "application/json";
          init.body = JSON.stringify(json);
        }
        return fetch(url.toString(), init);
      };
      let response = await attempt(false);
      if (response.status === 401 && typeof opts.token === "function") response = await attempt(true);
      const payload = response.status === 204 ? null : await response.json().catch(() => null);
      if (!response.ok) {
        const error = new Error(errorText(payload, response.status));
        error.status = response.status;
        error.payload = payload;
        throw error;
      }
      return payload;
    }

    // GET users/{user}/recommendations with the other fields as query parameters.
    function fetchList(params) {
      const query = Object.assign({}, params || {});
      const user = query.user;
      delete query.user;
      if (!user) return Promise.reject(new Error("fetchList needs a user"));
      return send(`/users/${encodeURIComponent(user)}/recommendations`, { params: query, user });
    }

    function event(list, position, kind, user) {
      const item = list.items[position - 1];
      return {
        event_id: uuid(),
        user: user || list.user,
        item: item && item.id,
        kind,
        recommendation_id: list.recommendation_id,
        position,
        context: Object.assign({ device: "web" }, context),
      };
    }

    // Sends what is queued: one batch per user, BATCH_LIMIT events at most per request.
    function flush() {
      clearTimeout(timer);
      timer = 0;
      const sent = [];
      while (queue.length) {
        const user = queue[0].user;
        const events = [];
        for (let i = 0; i < queue.length && events.length < BATCH_LIMIT; ) {
          if (queue[i].user === user) events.push(queue.splice(i, 1)[0]);
          else i++;
        }
        sent.push(
          send("/behaviours/batch", { method: "POST", json: { events }, user, keepalive: true }).catch(
            (error) => {
              if (typeof opts.onError === "function") opts.onError(error, events);
            },
          ),
        );
      }
      return Promise.all(sent).then(() => undefined);
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(flush, debounceMs);
    }

    function impression(list, position, user) {
      const id = list.recommendation_id;
      if (!seen.has(id)) seen.set(id, new Set());
      const positions = seen.get(id);
      if (positions.has(position)) return;
      positions.add(position);
      queue.push(event(list, position, "impression", user));
      schedule();
    }

    // Watches the rendered items (elements in list order) and reports each one once per
    // list when at least `threshold` of it is visible. Returns {flush, disconnect}.
    function observe(list, elements, observeOptions) {
      const o = observeOptions || {};
      const nodes = Array.from(elements || []);
      const noop = { flush, disconnect() {} };
      if (!list || !list.recommendation_id || !Array.isArray(list.items)) return noop;
      const positions = new Map(nodes.map((node, index) => [node, index + 1]));
      let observer = null;
      if (typeof IntersectionObserver === "function") {
        observer = new IntersectionObserver(
          (entries) => {
            for (const entry of entries) {
              if (!entry.isIntersecting || entry.intersectionRatio < threshold) continue;
              observer.unobserve(entry.target);
              impression(list, positions.get(entry.target), o.user);
            }
          },
          { threshold },
        );
        nodes.forEach((node) => observer.observe(node));
      } else {
        nodes.forEach((node, index) => impression(list, index + 1, o.user)); // no observer: all
      }
      // The delegated click option: one listener for the list's items; `clicks` is true
      // (any click inside an item) or a selector the click must fall in (e.g. "a[href]").
      let onClick = null;
      const container = o.root || (typeof document !== "undefined" ? document : null);
      if (o.clicks && container) {
        onClick = (domEvent) => {
          const target = domEvent.target;
          if (!target || typeof target.closest !== "function") return;
          if (typeof o.clicks === "string" && !target.closest(o.clicks)) return;
          for (let node = target; node; node = node.parentElement) {
            if (positions.has(node)) {
              click(list, positions.get(node), { user: o.user }).catch(() => {});
              return;
            }
          }
        };
        container.addEventListener("click", onClick, true);
      }
      return {
        flush,
        disconnect() {
          if (observer) observer.disconnect();
          if (onClick) container.removeEventListener("click", onClick, true);
        },
      };
    }

    // A click on the item at `position` (1-based) of `list`: sent at once, and it
    // survives the page being left (keepalive), as a click on a link usually does.
    function click(list, position, clickOptions) {
      const o = clickOptions || {};
      if (!list || !list.recommendation_id) return Promise.resolve(null);
      const body = event(list, position, "click", o.user);
      return send("/behaviours", { method: "POST", json: body, user: body.user, keepalive: true });
    }

    if (typeof document !== "undefined") {
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "hidden") flush();
      });
    }
    if (typeof addEventListener === "function") addEventListener("pagehide", flush);

    return { fetchList, observe, click, flush, request: send };
  }

  return { client, uuid, version: VERSION };
});
