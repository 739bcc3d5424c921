/* The job page: follow one job over its event stream (GET /api/jobs/<id>/events).
   The stream replays the job's timeline, then goes live, and ends after the terminal event;
   the page then reads the job once more for its result. No polling. */
"use strict";

(function () {
  var UI = window.JobUI;
  var job;
  var source = null;
  var seen = {};

  function $(id) { return document.getElementById(id); }

  function isTerminal(status) { return UI.TERMINAL.indexOf(status) >= 0; }

  function renderStatus(status) {
    var badge = $("status");
    badge.dataset.status = status || "unknown";
    badge.textContent = status || "unknown";
    var writable = UI.canWrite();
    $("cancel").hidden = !writable || !(status === "queued" || status === "started" || status === "deferred" || status === "scheduled");
    $("retry").hidden = !writable || !(status === "failed" || status === "canceled" || status === "stopped");
  }

  function renderProgress(progress) {
    if (!progress) return;
    var percent = Math.max(0, Math.min(100, Number(progress.percent) || 0));
    $("progress").value = percent;
    $("progress-percent").textContent = String(Math.round(percent));
    $("progress-message").textContent = progress.message || "";
  }

  function renderError(error) {
    var box = $("error-box");
    if (!error) { box.hidden = true; return; }
    $("error-type").textContent = error.type || "Error";
    $("error-message").textContent = error.message || "";
    box.hidden = false;
  }

  /* The result is data: JSON text in a <pre>, never markup. */
  function renderResult(view) {
    var box = $("result-box");
    if (view.status !== "finished") { box.hidden = true; return; }
    $("result").textContent = JSON.stringify(view.result, null, 2);
    box.hidden = false;
  }

  /* RQ's result history, one row per try: outcome, worker, when, and the error if any. */
  function renderAttempts(attempts) {
    var list = $("attempts");
    if (!attempts || !attempts.length) { $("attempts-card").hidden = true; return; }
    list.textContent = "";
    attempts.forEach(function (attempt) {
      var error = attempt.error ? (attempt.error.type || "Error") + ": " + (attempt.error.message || "") : "";
      list.appendChild(UI.el("li", {}, [
        UI.timeEl(attempt.ended_at || attempt.started_at), " ",
        UI.el("strong", { text: attempt.outcome }), " ",
        UI.el("span", { class: "hint", text: [attempt.worker ? "on " + attempt.worker : "", error].filter(Boolean).join(" · ") })
      ]));
    });
    $("attempts-card").hidden = false;
  }

  function renderJob(view) {
    job = view;
    renderStatus(view.status);
    if (view.status === "finished" && !view.progress) view.progress = { percent: 100 };
    renderProgress(view.progress);
    renderError(view.error);
    renderResult(view);
    $("queue").textContent = view.queue || "—";
    if (view.description !== undefined) $("description").textContent = view.description || "—";
    if (view.attempts !== undefined) renderAttempts(view.attempts);
    UI.setTime($("enqueued_at"), view.enqueued_at);
    UI.setTime($("started_at"), view.started_at);
    UI.setTime($("ended_at"), view.ended_at);
  }

  function describeEvent(event) {
    var parts = [];
    if (event.progress) {
      parts.push(Math.round(event.progress.percent) + "%");
      if (event.progress.message) parts.push(event.progress.message);
    }
    if (event.error) parts.push((event.error.type || "Error") + ": " + (event.error.message || ""));
    if (event.worker) parts.push("on " + event.worker);
    return parts.join(" · ");
  }

  function addToTimeline(event) {
    var timeline = $("timeline");
    var empty = $("timeline-empty");
    if (empty) empty.remove();
    // Progress events come many per second: keep the latest in one row instead of a row each.
    var last = timeline.lastElementChild;
    var item = UI.el("li", { dataset: { event: event.event } }, [
      UI.timeEl(event.at), " ",
      UI.el("strong", { text: event.event }), " ",
      UI.el("span", { class: "hint", text: describeEvent(event) })
    ]);
    if (event.event === "progress" && last && last.dataset.event === "progress") timeline.replaceChild(item, last);
    else timeline.appendChild(item);
  }

  function refresh() {
    return UI.request("GET", "/api/jobs/" + encodeURIComponent(job.id)).then(function (result) {
      if (result.status === 200) renderJob(result.body);
    });
  }

  function onEvent(message) {
    var event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    if (!event || !event.event) return;
    var key = event.id || message.lastEventId;
    if (key && seen[key]) return;
    if (key) seen[key] = true;
    addToTimeline(event);
    if (event.status) renderStatus(event.status);
    if (event.progress) renderProgress(event.progress);
    if (event.error) renderError(event.error);
    if (isTerminal(event.status)) {
      stop("ended");
      refresh();
    }
  }

  function stop(state) {
    if (source) { source.close(); source = null; }
    UI.setLive($("live-state"), state === "ended" ? "ended" : "off", state === "ended" ? "job ended" : state);
    var empty = $("timeline-empty");
    if (empty && state !== "ended") empty.textContent = "The timeline could not be loaded from this server.";
  }

  var EVENT_NAMES = ["queued", "started", "progress", "finished", "failed", "canceled", "stopped", "retrying",
    "scheduled", "deferred", "abandoned", "requeued", "retried", "message"];

  function follow(fromEventId) {
    if (!window.EventSource) { UI.setLive($("live-state"), "off", "this browser cannot follow live"); return; }
    var url = $("timeline").dataset.src;
    if (fromEventId) url += "?last_event_id=" + encodeURIComponent(fromEventId);
    source = new EventSource(url);
    UI.setLive($("live-state"), "connecting", "connecting…");
    source.onopen = function () { UI.setLive($("live-state"), "live", "live"); };
    source.onerror = function () {
      if (!source) return;
      if (source.readyState === EventSource.CLOSED) {
        stop("live updates unavailable");
        refresh();
      } else {
        UI.setLive($("live-state"), "connecting", "reconnecting…");
      }
    };
    EVENT_NAMES.forEach(function (name) { source.addEventListener(name, onEvent); });
  }

  function cancel() {
    var button = $("cancel");
    button.disabled = true;
    $("action-message").textContent = "Cancelling…";
    UI.request("POST", "/api/jobs/" + encodeURIComponent(job.id) + "/cancel").then(function (result) {
      button.disabled = false;
      if (result.status === 200) {
        $("action-message").textContent = result.body.status === "stopped" ? "Stopped." : "Cancelled.";
        renderJob(result.body);
        if (!source && !isTerminal(result.body.status)) follow(lastSeenId());
      } else if (result.status === 202) {
        // A running job: the worker has been asked to stop it; the stream tells when it has.
        $("action-message").textContent = "Stopping…";
      } else {
        $("action-message").textContent = UI.errorMessage(result, "Could not cancel");
      }
    });
  }

  function retry() {
    var button = $("retry");
    button.disabled = true;
    $("action-message").textContent = "Retrying…";
    UI.request("POST", "/api/jobs/" + encodeURIComponent(job.id) + "/retry", {}).then(function (result) {
      button.disabled = false;
      if (result.status !== 202) {
        $("action-message").textContent = UI.errorMessage(result, "Could not retry");
        return;
      }
      var id = result.body && result.body.id;
      if (id && id !== job.id) { window.location.assign("/jobs/" + encodeURIComponent(id)); return; }
      $("action-message").textContent = "Queued again.";
      renderError(null);
      renderResult({ status: "queued" });
      renderStatus(result.body.status || "queued");
      follow(lastSeenId() || job.last_event_id);
    });
  }

  function lastSeenId() {
    var ids = Object.keys(seen);
    return ids.length ? ids[ids.length - 1] : null;
  }

  document.addEventListener("DOMContentLoaded", function () {
    renderJob(JSON.parse($("job-data").textContent));
    $("cancel").addEventListener("click", cancel);
    $("retry").addEventListener("click", retry);
    follow(null);
    window.addEventListener("pagehide", function () { if (source) source.close(); });
  });
})();
