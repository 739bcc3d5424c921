/* The job list: one page from GET /api/jobs (filters and cursor from the address bar), kept
   current from the all-jobs event stream (GET /api/events). */
"use strict";

(function () {
  var UI = window.JobUI;
  var PAGE_SIZE = 25;
  var params = new URLSearchParams(window.location.search);
  var filters = { status: params.get("status") || "", queue: params.get("queue") || "", name: params.get("name") || "" };
  var cursor = params.get("cursor") || "";
  var source = null;

  function $(id) { return document.getElementById(id); }

  function badge(status) {
    return UI.el("span", { class: "badge", dataset: { status: status || "unknown" }, text: status || "unknown" });
  }

  function row(job) {
    var link = UI.el("a", { href: "/jobs/" + encodeURIComponent(job.id) }, [
      UI.el("code", { text: job.name || "?" }), " ", UI.el("span", { class: "id", text: job.id.slice(0, 8) })
    ]);
    return UI.el("tr", { dataset: { job: job.id } }, [
      UI.el("td", {}, [link]),
      UI.el("td", { class: "status" }, [badge(job.status)]),
      UI.el("td", { text: job.queue || "—" }),
      UI.el("td", {}, [UI.timeEl(job.enqueued_at)]),
      UI.el("td", { class: "ended" }, [job.ended_at ? UI.timeEl(job.ended_at) : "—"])
    ]);
  }

  function showMessage(text) {
    var body = $("jobs-body");
    body.textContent = "";
    body.appendChild(UI.el("tr", { class: "placeholder" }, [UI.el("td", { colspan: 5, class: "empty", text: text })]));
  }

  function query(extra) {
    var q = new URLSearchParams();
    Object.keys(filters).forEach(function (key) { if (filters[key]) q.set(key, filters[key]); });
    Object.keys(extra || {}).forEach(function (key) { if (extra[key]) q.set(key, extra[key]); });
    return q.toString();
  }

  /* One page of the API; a page may hold fewer jobs than asked (filters), so follow
     next_cursor a few times until the table is full or the jobs run out. */
  function fetchPage(from, collected, hops) {
    return UI.request("GET", "/api/jobs?" + query({ limit: String(PAGE_SIZE), cursor: from })).then(function (result) {
      if (result.status !== 200) return { error: result };
      var jobs = collected.concat(result.body.jobs || []);
      var next = result.body.next_cursor;
      if (next && jobs.length < PAGE_SIZE && hops < 5) return fetchPage(next, jobs, hops + 1);
      return { jobs: jobs, next: next };
    });
  }

  function load() {
    return fetchPage(cursor, [], 0).then(function (page) {
      if (page.error) {
        showMessage(page.error.status === 404 || page.error.status === 405
          ? "This server has no job list API yet (GET /api/jobs)."
          : UI.errorMessage(page.error, "Could not load the jobs"));
        return;
      }
      var body = $("jobs-body");
      body.textContent = "";
      if (!page.jobs.length) {
        var filtered = filters.status || filters.queue || filters.name;
        showMessage(page.next ? "No jobs on this page: see older ones below."
          : cursor ? "No older jobs."
          : filtered ? "No jobs match these filters." : "No jobs yet: submit one from the home page.");
      }
      page.jobs.forEach(function (job) { body.appendChild(row(job)); });
      var next = $("next-page");
      if (page.next) {
        next.href = "/jobs?" + query({ cursor: page.next });
        next.hidden = false;
      } else {
        next.hidden = true;
      }
    }).catch(function (error) { showMessage("Could not reach the server: " + error.message); });
  }

  function matches(event) {
    return (!filters.queue || event.queue === filters.queue) && (!filters.name || event.name === filters.name);
  }

  function onEvent(message) {
    var event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    if (!event || !event.job_id || !matches(event)) return;
    var existing = document.querySelector('tr[data-job="' + CSS.escape(event.job_id) + '"]');
    if (existing) {
      var cell = existing.querySelector(".status");
      cell.textContent = "";
      cell.appendChild(badge(event.status));
      if (UI.TERMINAL.indexOf(event.status) >= 0) {
        var ended = existing.querySelector(".ended");
        ended.textContent = "";
        ended.appendChild(UI.timeEl(event.at));
      }
      existing.classList.remove("flash");
      void existing.offsetWidth; // restart the highlight animation
      existing.classList.add("flash");
      return;
    }
    // A job new to this page: only the first page shows the newest jobs.
    if (cursor || event.event !== "queued") return;
    if (filters.status && filters.status !== event.status) return;
    var body = $("jobs-body");
    var placeholder = body.querySelector("tr.placeholder");
    if (placeholder) placeholder.remove();
    var fresh = row({ id: event.job_id, name: event.name, queue: event.queue, status: event.status, enqueued_at: event.at });
    fresh.classList.add("flash");
    body.insertBefore(fresh, body.firstChild);
    while (body.children.length > PAGE_SIZE) body.removeChild(body.lastChild);
  }

  function follow() {
    var live = $("live-state");
    if (!window.EventSource) { UI.setLive(live, "off", "not live"); return; }
    var q = new URLSearchParams();
    if (filters.queue) q.set("queue", filters.queue);
    if (filters.name) q.set("name", filters.name);
    source = new EventSource("/api/events" + (q.toString() ? "?" + q.toString() : ""));
    source.onopen = function () { UI.setLive(live, "live", "live"); };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) UI.setLive(live, "off", "live updates unavailable");
      else UI.setLive(live, "connecting", "reconnecting…");
    };
    ["queued", "started", "progress", "finished", "failed", "canceled", "stopped", "retrying", "scheduled",
      "deferred", "abandoned", "message"].forEach(function (name) {
      source.addEventListener(name, function (message) { if (name !== "progress") onEvent(message); });
    });
    source.addEventListener("gap", function () { load(); });
  }

  /* -- bulk actions: a dry run gives the count to confirm, then the action runs, following
     the cursor call after call (POST /api/jobs/bulk answers within its time budget). ------ */

  var BULK_WORDS = { retry: ["Retry", "retried"], cancel: ["Cancel", "canceled"] };

  function bulkFilter(status) {
    var wanted = { status: status };
    if (filters.queue) wanted.queue = filters.queue;
    if (filters.name) wanted.name = filters.name;
    return wanted;
  }

  function describeFilter(wanted) {
    var parts = [wanted.status];
    if (wanted.name) parts.push(wanted.name);
    parts.push("job" + (wanted.queue ? "s in queue " + wanted.queue : "s"));
    return parts.join(" ");
  }

  /* Calls until next_cursor is null, adding up the counts; `each` sees the running totals. */
  function bulkRun(action, wanted, dryRun, each) {
    var totals = { matched: 0, eligible: 0, done: 0 };
    function step(cursor) {
      var body = { action: action, filter: wanted, dry_run: dryRun };
      if (cursor) body.cursor = cursor;
      return UI.request("POST", "/api/jobs/bulk", body).then(function (result) {
        if (result.status !== 200) throw new Error(UI.errorMessage(result, "The bulk action failed"));
        totals.matched += result.body.matched;
        totals.eligible += result.body.eligible;
        totals.done += result.body.done;
        if (each) each(totals);
        return result.body.next_cursor ? step(result.body.next_cursor) : totals;
      });
    }
    return step(null);
  }

  function setupBulk() {
    var panel = $("bulk");
    if (!panel || !UI.canWrite()) return;
    var confirmBox = $("bulk-confirm"), question = $("bulk-question"), go = $("bulk-go"), status = $("bulk-status");
    var buttons = panel.querySelectorAll("button[data-action]");
    var pending = null;

    function busy(flag) { Array.prototype.forEach.call(buttons, function (b) { b.disabled = flag; }); }

    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () {
        var action = button.dataset.action, wanted = bulkFilter(button.dataset.status);
        busy(true);
        confirmBox.hidden = true;
        status.textContent = "Counting " + describeFilter(wanted) + "…";
        bulkRun(action, wanted, true).then(function (totals) {
          busy(false);
          if (!totals.eligible) {
            status.textContent = "No " + describeFilter(wanted) + " to " + action + ".";
            return;
          }
          status.textContent = "";
          pending = { action: action, wanted: wanted, count: totals.eligible };
          question.textContent = BULK_WORDS[action][0] + " " + totals.eligible + " " + describeFilter(wanted) + "?";
          go.textContent = BULK_WORDS[action][0] + " " + totals.eligible + " job" + (totals.eligible === 1 ? "" : "s");
          go.className = action === "cancel" ? "danger" : "";
          confirmBox.hidden = false;
          go.focus();
        }).catch(function (error) { busy(false); status.textContent = error.message; });
      });
    });

    $("bulk-back").addEventListener("click", function () { confirmBox.hidden = true; pending = null; });

    go.addEventListener("click", function () {
      if (!pending) return;
      var job = pending;
      pending = null;
      confirmBox.hidden = true;
      busy(true);
      var word = BULK_WORDS[job.action][1];
      bulkRun(job.action, job.wanted, false, function (totals) {
        status.textContent = totals.done + " of about " + job.count + " " + word + "…";
      }).then(function (totals) {
        busy(false);
        status.textContent = totals.done + " job" + (totals.done === 1 ? "" : "s") + " " + word + ".";
        load();
      }).catch(function (error) { busy(false); status.textContent = error.message; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupBulk();
    load().then(follow);
    window.addEventListener("pagehide", function () { if (source) source.close(); });
  });
})();
