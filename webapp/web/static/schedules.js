/* The schedules page: the list from GET /api/schedules, kept live from the schedule event
   stream (GET /api/schedule-events) and the job event stream (GET /api/events: a run's
   status), with pause/resume, run now, edit and delete; and the create/edit form built from
   the catalog's job forms (templates/_job_fields.html). */
"use strict";

(function () {
  var UI = window.JobUI;
  var RUNS_SHOWN = 5;
  var editing = null; // the name of the schedule being edited, or null
  var refreshTimers = {};

  function $(id) { return document.getElementById(id); }
  function api(name) { return "/api/schedules/" + encodeURIComponent(name); }

  function badge(status) {
    return UI.el("span", { class: "badge", dataset: { status: status || "unknown" }, text: status || "unknown" });
  }

  function when(s) {
    if (s.cron) return s.cron + (s.timezone && s.timezone !== "UTC" ? " (" + s.timezone + ")" : " (UTC)");
    return "every " + s.interval + " s" + (s.jitter ? " (+ up to " + s.jitter + " s)" : "");
  }

  function runItem(run) {
    var parts = [badge(run.status)];
    if (run.job_id) {
      parts.push(UI.el("a", { href: "/jobs/" + encodeURIComponent(run.job_id), class: "id", text: run.job_id.slice(0, 8) }));
    } else if (run.reason) {
      parts.push(UI.el("span", { class: "hint", text: run.reason.replace("_", " ") }));
    }
    if (run.kind === "manual") parts.push(UI.el("span", { class: "hint", text: "run now" }));
    if (run.kind === "catch_up") parts.push(UI.el("span", { class: "hint", text: "catch-up" }));
    parts.push(UI.timeEl(run.due_at));
    return UI.el("li", { dataset: { job: run.job_id || "" } }, parts);
  }

  function button(label, action, extra) {
    return UI.el("button", Object.assign({ type: "button", dataset: { action: action } }, extra || {}), [label]);
  }

  function row(s) {
    var runs = UI.el("ul", { class: "runs" }, s.runs.slice(0, RUNS_SHOWN).map(runItem));
    if (!s.runs.length) runs.appendChild(UI.el("li", { class: "empty", text: "no runs yet" }));
    var actions = [
      s.paused ? button("Resume", "resume") : button("Pause", "pause"),
      button("Run now", "run")
    ];
    if (s.source !== "code") {
      actions.push(button("Edit", "edit", { class: "secondary" }));
      actions.push(button("Delete", "delete", { class: "danger" }));
    }
    var title = [UI.el("strong", { text: s.name }), " ", UI.el("code", { text: s.job.name })];
    if (s.source === "code") title.push(" ", UI.el("span", { class: "hint", text: "(in code)" }));
    return UI.el("tr", { dataset: { schedule: s.name, paused: String(s.paused) } }, [
      UI.el("td", { class: "name" }, title),
      UI.el("td", { class: "when", text: when(s) + (s.no_overlap ? ", no overlap" : "") }),
      UI.el("td", { class: "next" }, [s.paused ? badge("paused") : UI.timeEl(s.next_run_at)]),
      UI.el("td", {}, [runs]),
      UI.el("td", {}, [UI.el("div", { class: "row-actions needs-write" }, actions)])
    ]);
  }

  function findRow(name) {
    return document.querySelector('#schedules-body tr[data-schedule="' + CSS.escape(name) + '"]');
  }

  function placeholder(text) {
    var body = $("schedules-body");
    body.textContent = "";
    body.appendChild(UI.el("tr", { class: "placeholder" }, [UI.el("td", { colspan: 5, class: "empty", text: text })]));
  }

  function render(schedule) {
    var existing = findRow(schedule.name);
    var fresh = row(schedule);
    var body = $("schedules-body");
    if (existing) { body.replaceChild(fresh, existing); return; }
    var holder = body.querySelector("tr.placeholder");
    if (holder) holder.remove();
    var after = Array.prototype.find.call(body.children, function (tr) { return tr.dataset.schedule > schedule.name; });
    body.insertBefore(fresh, after || null);
  }

  function remove(name) {
    var existing = findRow(name);
    if (existing) existing.remove();
    if (!$("schedules-body").children.length) placeholder("No schedules yet: create one below.");
  }

  function load() {
    return UI.request("GET", "/api/schedules").then(function (result) {
      if (result.status !== 200) { placeholder(UI.errorMessage(result, "Could not load the schedules")); return; }
      var list = result.body.schedules || [];
      $("schedules-body").textContent = "";
      if (!list.length) placeholder("No schedules yet: create one below.");
      list.forEach(render);
    });
  }

  /* Re-read one schedule (debounced: a burst of events costs one request). */
  function refresh(name) {
    if (refreshTimers[name]) return;
    refreshTimers[name] = setTimeout(function () {
      delete refreshTimers[name];
      UI.request("GET", api(name)).then(function (result) {
        if (result.status === 200) render(result.body);
        else if (result.status === 404) remove(name);
      });
    }, 150);
  }

  function act(event) {
    var target = event.target.closest("button[data-action]");
    if (!target) return;
    var name = target.closest("tr").dataset.schedule;
    var action = target.dataset.action;
    var error = $("list-error");
    error.textContent = "";
    var done = function (result) {
      target.disabled = false;
      if (result.status >= 400) { error.textContent = name + ": " + UI.errorMessage(result, "Refused"); return; }
      if (action === "delete") remove(name);
      else refresh(name);
    };
    if (action === "edit") { startEdit(name); return; }
    if (action === "delete" && !window.confirm("Delete schedule " + name + " and its history? Its jobs stay.")) return;
    target.disabled = true;
    var request = action === "pause" ? UI.request("PATCH", api(name), { paused: true })
      : action === "resume" ? UI.request("PATCH", api(name), { paused: false })
      : action === "run" ? UI.request("POST", api(name) + "/run", {})
      : UI.request("DELETE", api(name));
    request.then(done).catch(function (e) { target.disabled = false; error.textContent = e.message; });
  }

  /* -- the form ------------------------------------------------------------------------ */

  function form() { return $("schedule-form"); }

  function activeArgs() {
    return form().querySelector('fieldset.job-args[data-job="' + CSS.escape($("s-job").value) + '"]');
  }

  function showJob() {
    form().querySelectorAll("fieldset.job-args").forEach(function (set) {
      var active = set.dataset.job === $("s-job").value;
      set.hidden = !active;
      set.disabled = !active;
    });
  }

  function showKind() {
    var kind = $("s-kind").value;
    form().querySelectorAll("[data-timing]").forEach(function (node) { node.hidden = node.dataset.timing !== kind; });
  }

  function showError(argument, message) {
    var formNode = form();
    if (argument && argument.indexOf("job.") === 0 && argument !== "job.name") {
      if (UI.showFieldError(activeArgs(), argument.slice(4), message)) return true;
    }
    var key = argument === "job.name" ? "job" : (argument || "").split(".")[0];
    var field = key ? formNode.querySelector('[data-sfield="' + CSS.escape(key) + '"]') : null;
    if (!field || field.hidden) return false;
    var slot = field.querySelector(".field-error");
    slot.textContent = slot.textContent ? slot.textContent + "; " + message : message;
    var input = field.querySelector("input, select");
    if (input) input.setAttribute("aria-invalid", "true");
    return true;
  }

  function body() {
    var kwargs = UI.collectArgs(activeArgs());
    if (kwargs === null) return null;
    var kind = $("s-kind").value;
    var payload = {
      job: { name: $("s-job").value, kwargs: kwargs, queue: $("s-queue").value },
      misfire: $("s-misfire").value,
      no_overlap: $("s-no-overlap").checked,
      paused: $("s-paused").checked
    };
    if (kind === "cron") {
      payload.cron = $("s-cron").value.trim();
      payload.timezone = $("s-timezone").value.trim() || "UTC";
      payload.jitter = 0;
    } else {
      payload.interval = Number($("s-interval").value);
      payload.jitter = Number($("s-jitter").value || 0);
    }
    if (!editing) payload.name = $("s-name").value.trim();
    return payload;
  }

  function submit(event) {
    event.preventDefault();
    var formNode = form();
    UI.clearErrors(formNode);
    var payload = body();
    if (payload === null) return;
    var submitButton = $("s-submit");
    submitButton.disabled = true;
    var request = editing ? UI.request("PATCH", api(editing), payload) : UI.request("POST", "/api/schedules", payload);
    request.then(function (result) {
      submitButton.disabled = false;
      if (result.status === 200 || result.status === 201) {
        render(result.body);
        resetForm();
        return;
      }
      var details = (result.body && result.body.error && result.body.error.details) || [];
      var unplaced = details.filter(function (d) { return !showError(d.argument, d.message); });
      if (!details.length || unplaced.length) {
        formNode.querySelector(".form-error").textContent = unplaced.length
          ? unplaced.map(function (d) { return (d.argument ? d.argument + ": " : "") + d.message; }).join("; ")
          : UI.errorMessage(result, "The schedule was not accepted");
      }
      var invalid = formNode.querySelector("[aria-invalid]");
      if (invalid) invalid.focus();
    }).catch(function (e) {
      submitButton.disabled = false;
      formNode.querySelector(".form-error").textContent = "Could not reach the server: " + e.message;
    });
  }

  function resetForm() {
    editing = null;
    form().reset();
    $("s-name").disabled = false;
    $("form-title").textContent = "New schedule";
    $("s-submit").textContent = "Create schedule";
    $("s-cancel").hidden = true;
    showJob();
    showKind();
  }

  function startEdit(name) {
    UI.request("GET", api(name)).then(function (result) {
      if (result.status !== 200) return;
      var s = result.body;
      resetForm();
      editing = name;
      $("s-name").value = name;
      $("s-name").disabled = true;
      $("s-job").value = s.job.name;
      showJob();
      var args = activeArgs();
      var kwargs = s.job.kwargs || {};
      args.querySelectorAll("[data-field] [data-kind]").forEach(function (input) {
        if (!(input.name in kwargs)) return;
        var value = kwargs[input.name];
        if (input.dataset.kind === "boolean") input.checked = !!value;
        else input.value = input.dataset.kind === "json" ? JSON.stringify(value) : String(value);
      });
      $("s-queue").value = s.job.queue || $("s-queue").value;
      $("s-kind").value = s.cron ? "cron" : "interval";
      if (s.cron) { $("s-cron").value = s.cron; $("s-timezone").value = s.timezone; }
      else { $("s-interval").value = s.interval; $("s-jitter").value = s.jitter; }
      $("s-misfire").value = s.misfire;
      $("s-no-overlap").checked = s.no_overlap;
      $("s-paused").checked = s.paused;
      showKind();
      $("form-title").textContent = "Edit " + name;
      $("s-submit").textContent = "Save changes";
      $("s-cancel").hidden = false;
      form().scrollIntoView({ behavior: "smooth" });
    });
  }

  /* -- live ---------------------------------------------------------------------------- */

  function follow() {
    var state = $("live-state");
    if (!window.EventSource) { UI.setLive(state, "off", "not live"); return; }
    var schedules = new EventSource("/api/schedule-events");
    var jobs = new EventSource("/api/events");
    var open = 0;
    [schedules, jobs].forEach(function (source) {
      source.onopen = function () { open += 1; if (open >= 2) UI.setLive(state, "live", "live"); };
      source.onerror = function () {
        if (source.readyState === EventSource.CLOSED) UI.setLive(state, "off", "not live");
        else UI.setLive(state, "connecting", "reconnecting…");
      };
    });
    schedules.onmessage = null;
    ["schedule.created", "schedule.updated", "schedule.paused", "schedule.resumed", "schedule.run",
      "schedule.skipped", "schedule.deleted"].forEach(function (kind) {
      schedules.addEventListener(kind, function (message) {
        var data = JSON.parse(message.data);
        if (kind === "schedule.deleted") remove(data.schedule);
        else refresh(data.schedule);
      });
    });
    ["queued", "started", "finished", "failed", "canceled", "stopped", "retrying", "abandoned"].forEach(function (kind) {
      jobs.addEventListener(kind, function (message) {
        var data = JSON.parse(message.data);
        if (data.schedule) refresh(data.schedule);
      });
    });
    window.addEventListener("pagehide", function () { schedules.close(); jobs.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("schedules-body").addEventListener("click", act);
    $("s-job").addEventListener("change", showJob);
    $("s-kind").addEventListener("change", showKind);
    $("s-cancel").addEventListener("click", resetForm);
    form().addEventListener("submit", submit);
    showJob();
    showKind();
    load().then(follow);
  });
})();
