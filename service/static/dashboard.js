/* Reverie dashboard: charts as inline SVG, live run progress, and the buttons that call the admin API.
   No dependencies; every request carries the session's CSRF token. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var FINAL = ["published", "rejected", "failed", "cancelled"];

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function api(method, url, body) {
    var options = { method: method, credentials: "same-origin", headers: { "Accept": "application/json", "X-CSRF-Token": csrf() } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (response.status === 401) { window.location.href = "/admin/login?next=" + encodeURIComponent(window.location.pathname); }
        if (!response.ok) {
          throw new Error((data && data.error && data.error.message) || response.status + " " + response.statusText);
        }
        return data;
      });
    });
  }

  function toast(message, bad) {
    var box = document.getElementById("toast");
    if (!box) { return; }
    box.textContent = message;
    box.className = bad ? "bad" : "";
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { box.hidden = true; }, 6000);
  }

  /* ---- charts ------------------------------------------------------------------------------- */

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function fmt(value) {
    var size = Math.abs(value);
    if (size >= 1000) { return (value / 1000).toFixed(1) + "k"; }
    if (Number.isInteger(value)) { return String(value); }
    if (size < 0.01) { return value.toExponential(1); }
    return value.toFixed(size < 10 ? 2 : 1);
  }

  function drawChart(svg) {
    var points;
    try { points = JSON.parse(svg.getAttribute("data-points") || "[]"); } catch (e) { points = []; }
    points = points.filter(function (p) { return Array.isArray(p) && typeof p[1] === "number" && isFinite(p[1]); });
    // Drawn at the element's own pixel size, so text stays legible at any width; redrawn on resize.
    var W = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 320), H = 140;
    var left = 40, right = 10, top = 10, bottom = 22;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    if (!points.length) {
      el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", "class": "empty" }, svg, "no data yet");
      return;
    }
    var values = points.map(function (p) { return p[1]; });
    var counts = values.every(Number.isInteger);
    var min = Math.min(0, Math.min.apply(null, values));
    var max = Math.max.apply(null, values);
    if (max === min) { max = min + 1; }
    if (counts && max - min === 1) { max = min + 2; }
    var plotW = W - left - right, plotH = H - top - bottom;
    function y(v) { return top + plotH - (v - min) / (max - min) * plotH; }
    var ticks = [min, (min + max) / 2, max].filter(function (v) { return !counts || Number.isInteger(v); });
    ticks.forEach(function (v) {
      el("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), "class": "grid" }, svg);
      el("text", { x: left - 4, y: y(v) + 3, "text-anchor": "end", "class": "tick" }, svg, fmt(v));
    });
    var kind = svg.getAttribute("data-kind");
    if (kind === "bar") {
      var slot = plotW / points.length, barW = Math.max(1, slot * 0.7);
      points.forEach(function (p, i) {
        var x = left + i * slot + (slot - barW) / 2;
        var bar = el("rect", { x: x, y: y(p[1]), width: barW, height: Math.max(0, y(min) - y(p[1])), "class": "bar" }, svg);
        el("title", {}, bar, p[0] + ": " + p[1]);
      });
    } else {
      var step = points.length > 1 ? plotW / (points.length - 1) : 0;
      var coords = points.map(function (p, i) { return [left + i * step, y(p[1])]; });
      var line = coords.map(function (c) { return c[0].toFixed(1) + "," + c[1].toFixed(1); }).join(" ");
      el("polygon", { points: left + "," + y(min) + " " + line + " " + coords[coords.length - 1][0].toFixed(1) + "," + y(min), "class": "area" }, svg);
      el("polyline", { points: line, "class": "line" }, svg);
      coords.forEach(function (c, i) {
        var dot = el("circle", { cx: c[0], cy: c[1], r: points.length > 24 ? 1.2 : 2.5, "class": "dot" }, svg);
        el("title", {}, dot, points[i][0] + ": " + fmt(points[i][1]));
      });
    }
    el("text", { x: left, y: H - 6, "text-anchor": "start", "class": "tick" }, svg, String(points[0][0]));
    if (points.length > 1) {
      el("text", { x: W - right, y: H - 6, "text-anchor": "end", "class": "tick" }, svg, String(points[points.length - 1][0]));
    }
  }

  /* ---- a run's live progress ------------------------------------------------------------------ */

  function followRun(section) {
    var id = section.getAttribute("data-run-id");
    function set(idName, text) {
      var node = document.getElementById(idName);
      if (node) { node.textContent = text; }
    }
    function tick() {
      api("GET", "/sleep/" + encodeURIComponent(id)).then(function (run) {
        var state = document.getElementById("run-state");
        state.textContent = run.state;
        state.className = "badge state-" + run.state;
        set("run-phase", run.progress.phase || "—");
        set("run-step", run.progress.total ? String(run.progress.step) : "—");
        set("run-total", run.progress.total ? String(run.progress.total) : "—");
        var note = document.getElementById("run-note");
        if (note) { note.textContent = run.note || ""; note.hidden = !run.note; }
        set("run-worker", run.lease_owner ? run.lease_owner + " (epoch " + run.epoch + ")" : "—");
        if (run.state === "stalled") {
          set("run-duration", "stalled");
        } else if (run.started_at) {
          var started = Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(run.started_at) ? run.started_at : run.started_at + "Z");
          set("run-duration", ((Date.now() - started) / 1000).toFixed(1) + " s so far");
        }
        var bar = document.getElementById("run-progress");
        if (bar) {
          bar.max = run.progress.total || 1;
          bar.value = run.progress.total ? run.progress.step : 0;
        }
        if (FINAL.indexOf(run.state) >= 0) {
          window.location.reload();  // the finished run's metrics are rendered by the server
          return;
        }
        setTimeout(tick, 500);
      }).catch(function (error) {
        toast("Could not update the run: " + error.message, true);
        setTimeout(tick, 2000);
      });
    }
    tick();
  }

  /* ---- buttons -------------------------------------------------------------------------------- */

  function busy(button, promise) {
    button.disabled = true;
    return promise.catch(function (error) {
      toast(error.message, true);
      button.disabled = false;
    });
  }

  function onClick(event) {
    var button = event.target.closest("button[data-namespace], button[data-episode-id], button[data-key-id]");
    if (!button) { return; }
    var ns = button.getAttribute("data-namespace");
    if (button.classList.contains("cancel-run")) {
      if (!window.confirm("Cancel this sleep run? Nothing it learned is published; its episodes stay in the backlog.")) { return; }
      busy(button, api("POST", "/sleep/" + encodeURIComponent(button.getAttribute("data-run-id")) + "/cancel").then(function () {
        window.location.reload();
      }));
    } else if (button.classList.contains("sleep-now")) {
      busy(button, api("POST", "/sleep", { namespace: ns }).then(function (run) {
        window.location.href = "/admin/runs/" + run.id;
      }));
    } else if (button.classList.contains("activate")) {
      var version = button.getAttribute("data-version");
      if (!window.confirm("Serve version v" + version + " of '" + ns + "' now? The adapter serving it now is kept and can be activated again.")) { return; }
      busy(button, api("POST", "/admin/api/adapters/" + encodeURIComponent(version) + "/activate?namespace=" + encodeURIComponent(ns)).then(function (adapter) {
        toast("Now serving v" + adapter.version + " of " + adapter.namespace + ".");
        window.location.reload();
      }));
    } else if (button.classList.contains("revoke-key")) {
      if (!window.confirm("Revoke key " + button.getAttribute("data-prefix") + "…? Its next request is refused, on every replica. This cannot be undone.")) { return; }
      busy(button, api("DELETE", "/admin/api/keys/" + encodeURIComponent(button.getAttribute("data-key-id"))).then(function () {
        window.location.reload();
      }));
    } else if (button.classList.contains("delete-episode")) {
      if (!window.confirm("Delete this episode? Its text is erased and it leaves the backlog. This cannot be undone.")) { return; }
      busy(button, api("DELETE", "/admin/api/episodes/" + encodeURIComponent(button.getAttribute("data-episode-id"))).then(function () {
        window.location.href = button.getAttribute("data-return") || "/admin/episodes";
      }));
    } else if (button.classList.contains("delete-namespace")) {
      var typed = window.prompt("This deletes every episode of '" + ns + "' and cannot be undone. Type the namespace to confirm:");
      if (typed === null) { return; }
      if (typed !== ns) { toast("The name did not match; nothing was deleted.", true); return; }
      busy(button, api("DELETE", "/admin/api/namespaces/" + encodeURIComponent(ns) + "/episodes").then(function (result) {
        toast("Deleted " + result.deleted + " episodes of " + ns + ".");
        window.location.href = "/admin/episodes?namespace=" + encodeURIComponent(ns);
      }));
    }
  }

  /* A new key is shown once, in the page, from the API's reply; the store keeps only its hash. */
  function onCreateKey(event) {
    event.preventDefault();
    var form = event.target;
    var button = form.querySelector("button[type=submit]");
    var label = form.elements.label.value.trim();
    busy(button, api("POST", "/admin/api/keys", { namespace: form.elements.namespace.value.trim(), label: label || null }).then(function (created) {
      document.getElementById("new-key-namespace").textContent = created.namespace;
      document.getElementById("new-key-value").textContent = created.key;
      document.getElementById("new-key").hidden = false;
      var empty = document.getElementById("no-keys");  // there is a key now; the list shows it after "Done"
      if (empty) { empty.hidden = true; }
      form.reset();
      button.disabled = false;
    }));
  }

  document.addEventListener("DOMContentLoaded", function () {
    var charts = document.querySelectorAll("svg.chart");
    Array.prototype.forEach.call(charts, drawChart);
    var resizing = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizing);
      resizing = setTimeout(function () { Array.prototype.forEach.call(charts, drawChart); }, 100);
    });
    var run = document.getElementById("run");
    if (run && run.getAttribute("data-live") === "true") { followRun(run); }
    document.addEventListener("click", onClick);
    var createKey = document.getElementById("create-key");
    if (createKey) { createKey.addEventListener("submit", onCreateKey); }
  });
})();
