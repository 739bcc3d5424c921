/* The overview page: GET /api/stats and GET /api/queues every few seconds (the window from the
   address bar) and redraw the figures, the queues table and the four charts. Admins get a
   Pause/Resume button per queue (POST /api/queues/<name>/pause|resume). Stops polling while the
   tab is hidden. */
"use strict";

(function () {
  var UI = window.JobUI;
  var params = new URLSearchParams(window.location.search);
  var windowName = params.get("window") === "1d" ? "1d" : "1h";
  var EVERY = windowName === "1h" ? 5000 : 30000;
  var timer = null;

  function $(id) { return document.getElementById(id); }

  function count(n) { return n >= 1000 ? Math.round(n).toLocaleString() : String(Math.round(n * 10) / 10); }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 60) return (Math.round(seconds * 10) / 10) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
    return Math.floor(seconds / 3600) + " h " + Math.round((seconds % 3600) / 60) + " min";
  }

  function sum(values) { return values.reduce(function (a, b) { return a + (b || 0); }, 0); }

  function queueSeries(view, field) {
    return view.queues.map(function (name, index) {
      return { name: name, cls: "s-q" + (index % 6), values: view.points.map(function (p) { return p.queues[name][field]; }) };
    });
  }

  function draw(view) {
    var labels = view.points.map(function (p) { return p.at; });
    var finished = view.points.map(function (p) { return p.finished; });
    var failed = view.points.map(function (p) { return p.failed; });
    var step = view.step === 60 ? "minute" : (view.step / 60) + " minutes";
    var windowText = view.window === "1h" ? "in the last hour" : "in the last day";
    $("total-finished").textContent = String(sum(finished));
    $("total-failed").textContent = String(sum(failed));
    var depths = view.queues.map(function (q) { return view.now.queues[q].depth || 0; });
    var ages = view.queues.map(function (q) { return view.now.queues[q].oldest_age; }).filter(function (a) { return a !== null; });
    $("now-depth").textContent = String(sum(depths));
    $("now-age").textContent = ages.length ? duration(Math.max.apply(null, ages)) : "—";
    $("now-workers").textContent = String(view.now.workers);
    document.querySelectorAll(".window-name").forEach(function (n) { n.textContent = windowText; });
    document.querySelectorAll(".step-name").forEach(function (n) { n.textContent = "per " + step; });

    JobCharts.render($("chart-throughput"), "bars", labels, [
      { name: "finished", cls: "s-finished", values: finished },
      { name: "failed", cls: "s-failed", values: failed }
    ], count, "Jobs per " + step + " " + windowText + ": " + sum(finished) + " finished, " + sum(failed) + " failed");
    JobCharts.render($("chart-depth"), "lines", labels, queueSeries(view, "depth"), count,
      "Jobs waiting per queue; now " + view.queues.map(function (q, i) { return q + " " + depths[i]; }).join(", "), true);
    JobCharts.render($("chart-age"), "lines", labels, queueSeries(view, "oldest_age"), duration,
      "Wait of the oldest queued job per queue; now " + view.queues.map(function (q) {
        return q + " " + duration(view.now.queues[q].oldest_age);
      }).join(", "));
    JobCharts.render($("chart-workers"), "lines", labels, [
      { name: "workers", cls: "s-workers", values: view.points.map(function (p) { return p.workers; }) }
    ], count, "Workers alive; now " + view.now.workers, true);
  }

  function queueRow(queue, admin) {
    var state = queue.paused
      ? UI.el("span", { class: "badge", dataset: { status: "paused" }, title: queue.paused_by ? "by " + queue.paused_by : null }, ["paused"])
      : UI.el("span", { class: "badge", dataset: { status: "finished" } }, ["running"]);
    var cells = [
      UI.el("th", { scope: "row" }, [queue.name]),
      UI.el("td", { dataset: { field: "depth" } }, [String(queue.depth)]),
      UI.el("td", { dataset: { field: "oldest-age" } }, [duration(queue.oldest_age)]),
      UI.el("td", {}, [String(queue.counts.started)]),
      UI.el("td", { dataset: { field: "state" } }, [state, queue.paused ? " since " : null, queue.paused ? UI.timeEl(queue.paused_at) : null])
    ];
    if (admin) {
      var action = queue.paused ? "resume" : "pause";
      var button = UI.el("button", { type: "button", class: queue.paused ? null : "danger", dataset: { queue: queue.name, action: action } },
        [queue.paused ? "Resume" : "Pause"]);
      button.addEventListener("click", function () { setPaused(button, queue.name, action); });
      cells.push(UI.el("td", { class: "needs-write" }, [button]));
    }
    return UI.el("tr", { dataset: { queue: queue.name, paused: queue.paused ? "true" : "false" } }, cells);
  }

  function drawQueues(queues) {
    var table = $("queues-table");
    var admin = table.dataset.admin === "true" && UI.canWrite();
    var body = table.querySelector("tbody");
    var rows = body.querySelectorAll("tr[data-queue]");
    var same = rows.length === queues.length && queues.every(function (q, i) {
      return rows[i].dataset.queue === q.name && rows[i].dataset.paused === String(q.paused);
    });
    if (same) {  // update the figures in place: a focused button keeps its focus
      queues.forEach(function (q, i) {
        rows[i].querySelector('[data-field="depth"]').textContent = String(q.depth);
        rows[i].querySelector('[data-field="oldest-age"]').textContent = duration(q.oldest_age);
        rows[i].children[3].textContent = String(q.counts.started);
      });
      return;
    }
    body.replaceChildren.apply(body, queues.map(function (q) { return queueRow(q, admin); }));
  }

  function loadQueues() {
    return UI.request("GET", $("queues-table").dataset.src).then(function (result) {
      if (result.status === 200) drawQueues(result.body.queues);
    });
  }

  function setPaused(button, name, action) {
    button.disabled = true;
    $("queues-error").textContent = "";
    UI.request("POST", "/api/queues/" + encodeURIComponent(name) + "/" + action, {}).then(function (result) {
      if (result.status !== 200) $("queues-error").textContent = UI.errorMessage(result, "Could not " + action + " " + name);
      return loadQueues();
    }).catch(function () { button.disabled = false; });
  }

  function load() {
    loadQueues().catch(function () {});
    return UI.request("GET", $("charts").dataset.src + "?window=" + windowName).then(function (result) {
      if (result.status !== 200) {
        UI.setLive($("live-state"), "off", UI.errorMessage(result, "Could not load the figures"));
        return;
      }
      draw(result.body);
      UI.setLive($("live-state"), "live", "live");
    }).catch(function () { UI.setLive($("live-state"), "connecting", "reconnecting…"); });
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = document.hidden ? null : setInterval(load, EVERY);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var current = $("window-" + windowName);
    if (current) current.setAttribute("aria-current", "page");
    load();
    schedule();
    document.addEventListener("visibilitychange", function () { if (!document.hidden) load(); schedule(); });
  });
})();
