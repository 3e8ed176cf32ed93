// taskqueue dashboard: live updates and actions. No framework, no build step.
//
// Live: the page listens to the API's event stream (/api/events, shared by
// every open dashboard of an API process) and, when something changed,
// fetches its own URL again and swaps the parts marked data-region. So the
// server renders every page one way only, with every value escaped, and this
// script never builds HTML from data (text goes in through textContent).
// The stream closes while the tab is hidden and reopens when it is shown.
"use strict";

(function () {
  const REFRESH_DELAY_MS = 250; // let a burst of events arrive first
  const MIN_REFRESH_INTERVAL_MS = 1000; // at most one reload a second per tab
  const RECONNECT_MS = 3000;

  const body = document.body;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  const liveStatus = document.getElementById("live-status");
  const flash = document.getElementById("flash");

  // -- talking to the API ------------------------------------------------------

  async function call(method, url, payload) {
    const headers = { Accept: "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const init = { method, headers, credentials: "same-origin" };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    const response = await fetch(url, init);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const message = data && data.message ? data.message : "HTTP " + response.status;
      throw new Error(message);
    }
    return data;
  }

  function say(text, isProblem) {
    if (!flash) return;
    flash.textContent = text;
    flash.hidden = false;
    flash.classList.toggle("problem", Boolean(isProblem));
  }

  // Bulk actions go chunk by chunk (the API changes up to 10,000 tasks per
  // statement and says where to continue).
  async function bulk(action, selection) {
    let matched = 0;
    let changed = 0;
    let after = null;
    for (;;) {
      const request = Object.assign({}, selection);
      if (after) request.after = after;
      const result = await call("POST", "/api/tasks/" + action, request);
      matched += result.matched;
      changed += result.changed;
      if (!result.next) break;
      after = result.next;
    }
    return { matched, changed };
  }

  // -- actions -----------------------------------------------------------------

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button");
    if (!button || button.disabled) return;
    try {
      if (button.dataset.post) {
        if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
        button.disabled = true;
        await call("POST", button.dataset.post);
        say(button.dataset.done || "Done");
        refreshSoon(0);
      } else if (button.dataset.bulkAction) {
        if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
        button.disabled = true;
        const filter = JSON.parse(button.dataset.bulkFilter);
        const result = await bulk(button.dataset.bulkAction, { filter });
        say(button.dataset.bulkAction + ": " + result.matched + " matched, " + result.changed + " changed");
        refreshSoon(0);
      } else if (button.dataset.bulk) {
        await tasksBulk(button);
      } else if (button.hasAttribute("data-sign-out")) {
        const result = await call("POST", "/logout");
        window.location.assign(result.next);
      }
    } catch (error) {
      say(error.message, true);
    } finally {
      if (button.isConnected) button.disabled = false;
    }
  });

  async function tasksBulk(button) {
    const form = document.getElementById("bulk");
    const action = button.dataset.bulk;
    const all = document.getElementById("all-matching");
    let selection;
    let what;
    if (all && all.checked) {
      selection = { filter: JSON.parse(form.dataset.filter) };
      what = "every task matching this filter";
    } else {
      const ids = Array.from(form.querySelectorAll('input[name="task"]:checked')).map((box) => box.value);
      if (ids.length === 0) {
        say("Select tasks first.", true);
        return;
      }
      selection = { ids };
      what = ids.length + (ids.length === 1 ? " task" : " tasks");
    }
    if (!window.confirm(action[0].toUpperCase() + action.slice(1) + " " + what + "?")) return;
    button.disabled = true;
    const result = await bulk(action, selection);
    say(action + ": " + result.matched + " matched, " + result.changed + " changed");
    form.querySelectorAll('input[type="checkbox"]').forEach((box) => (box.checked = false));
    countSelected();
    refreshSoon(0);
  }

  function countSelected() {
    const counter = document.getElementById("selected-count");
    if (!counter) return;
    const all = document.getElementById("all-matching");
    const n = document.querySelectorAll('input[name="task"]:checked').length;
    counter.textContent = all && all.checked ? "all matching" : n + " selected";
  }

  document.addEventListener("change", function (event) {
    const box = event.target;
    if (box.id === "select-page") {
      document.querySelectorAll('input[name="task"]').forEach((other) => (other.checked = box.checked));
    }
    if (box.matches && box.matches('input[type="checkbox"]')) countSelected();
  });

  document.addEventListener("submit", async function (event) {
    const form = event.target;
    if (form.id === "sign-in") {
      event.preventDefault();
      const problem = document.getElementById("sign-in-problem");
      try {
        const result = await call("POST", "/login", {
          token: form.elements.token.value,
          next: form.dataset.next || "/",
        });
        window.location.assign(result.next);
      } catch (error) {
        problem.textContent = error.message;
        problem.hidden = false;
      }
    } else if (form.dataset.limits || form.dataset.tenantLimits !== undefined) {
      // A queue's limits, or a tenant's (a new tenant's form names it). Only
      // what was changed is sent: a limit left out is kept, and one emptied
      // (null) is removed, so saving one limit never touches another.
      event.preventDefault();
      const value = (name) => form.elements[name].value.trim();
      const changed = (name) => form.elements[name] && form.elements[name].value !== form.elements[name].defaultValue;
      const limits = {};
      for (const name of ["concurrency_limit", "per_key_concurrency", "max_queued"]) {
        if (changed(name)) limits[name] = value(name) ? Number(value(name)) : null;
      }
      if (changed("rate_limit") || (changed("period_seconds") && value("rate_limit"))) {
        limits.rate_limit = value("rate_limit")
          ? { limit: Number(value("rate_limit")), period_seconds: Number(value("period_seconds") || "60") }
          : null;
      }
      if (Object.keys(limits).length === 0) {
        say("Nothing changed");
        return;
      }
      const target = form.dataset.limits || form.dataset.tenantLimits || "/api/tenants/" + encodeURIComponent(value("tenant"));
      try {
        await call("PATCH", target, limits);
        if (form.dataset.limits || form.dataset.tenantLimits) {
          form.querySelectorAll("input").forEach((input) => (input.defaultValue = input.value));
        } else {
          form.reset(); // the new-tenant form: empty again for the next tenant
        }
        say("Limits saved");
        refreshSoon(0);
      } catch (error) {
        say(error.message, true);
      }
    }
  });

  // -- live updates --------------------------------------------------------------

  let source = null;
  let eventsSinceRefresh = false;
  let refreshTimer = null;
  let lastRefresh = 0;
  let reconnectTimer = null;

  function setLive(text, state) {
    if (!liveStatus) return;
    liveStatus.textContent = text;
    liveStatus.dataset.state = state;
  }

  // A region the user is typing in, or has edited, is left alone this time.
  function busy(region) {
    const active = document.activeElement;
    if (active && region.contains(active) && active.matches("input, select, textarea")) return true;
    return Array.from(region.querySelectorAll("input:not([type=checkbox]), select, textarea")).some(
      (input) => input.value !== input.defaultValue
    );
  }

  async function refresh() {
    lastRefresh = Date.now();
    // The server may answer from a snapshot read just before the latest
    // events: after a refresh they caused, one more settles the page.
    const settle = eventsSinceRefresh;
    eventsSinceRefresh = false;
    let response;
    try {
      response = await fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
    } catch (_) {
      return; // the API is away: the stream reconnects and refreshes again
    }
    if (response.redirected && new URL(response.url).pathname === "/login") {
      window.location.assign(response.url); // the session ended
      return;
    }
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const checked = new Set(
      Array.from(document.querySelectorAll('input[name="task"]:checked')).map((box) => box.value)
    );
    const focusedKey = document.activeElement && document.activeElement.id;
    document.querySelectorAll("[data-region]").forEach(function (region) {
      const replacement = fresh.querySelector('[data-region="' + region.dataset.region + '"]');
      if (!replacement || busy(region)) return;
      const adopted = document.importNode(replacement, true);
      region.replaceWith(adopted);
    });
    document.querySelectorAll('input[name="task"]').forEach((box) => (box.checked = checked.has(box.value)));
    if (focusedKey && !document.activeElement.id) {
      const again = document.getElementById(focusedKey);
      if (again) again.focus();
    }
    countSelected();
    body.dataset.refreshed = String(Number(body.dataset.refreshed || "0") + 1);
    if (settle) refreshSoon(MIN_REFRESH_INTERVAL_MS);
    waitForPending();
  }

  // A figure the server is still counting: ask again shortly.
  function waitForPending() {
    if (document.querySelector("[data-pending]")) refreshSoon(MIN_REFRESH_INTERVAL_MS / 2);
  }

  function refreshSoon(delay) {
    if (refreshTimer !== null) return;
    const wait = Math.max(delay, lastRefresh + MIN_REFRESH_INTERVAL_MS - Date.now());
    refreshTimer = window.setTimeout(function () {
      refreshTimer = null;
      refresh();
    }, Math.max(wait, 0));
  }

  function connect() {
    const url = body.dataset.stream;
    if (!url || source || document.hidden) return;
    setLive("connecting…", "connecting");
    source = new EventSource(url);
    let opened = false;
    source.onopen = function () {
      setLive("live", "live");
      // After a gap (first open, API restart, tab shown again) catch up once.
      if (opened) refreshSoon(0);
      opened = true;
    };
    const changed = function () {
      eventsSinceRefresh = true;
      refreshSoon(REFRESH_DELAY_MS);
    };
    ["task", "queue", "action", "worker"].forEach((kind) => source.addEventListener(kind, changed));
    source.onerror = function () {
      if (!source) return;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (the API answered with an error): start over in a while.
        source.close();
        source = null;
        setLive("reconnecting…", "down");
        if (reconnectTimer === null) {
          reconnectTimer = window.setTimeout(function () {
            reconnectTimer = null;
            connect();
            refreshSoon(0);
          }, RECONNECT_MS);
        }
      } else {
        setLive("reconnecting…", "down"); // the browser retries by itself
        opened = true;
      }
    };
  }

  function disconnect() {
    if (source) source.close();
    source = null;
    setLive("paused", "paused");
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      disconnect();
    } else {
      connect();
      refreshSoon(0);
    }
  });

  connect();
  countSelected();
  waitForPending();
})();
