/* The audit page: one page of GET /api/audit (filters and cursor from the address bar). */
"use strict";

(function () {
  var UI = window.JobUI;
  var params = new URLSearchParams(window.location.search);
  var filters = { actor: params.get("actor") || "", action: params.get("action") || "", target: params.get("target") || "" };
  var cursor = params.get("cursor") || "";

  function $(id) { return document.getElementById(id); }

  function query(extra) {
    var q = new URLSearchParams();
    Object.keys(filters).forEach(function (key) { if (filters[key]) q.set(key, filters[key]); });
    Object.keys(extra || {}).forEach(function (key) { if (extra[key]) q.set(key, extra[key]); });
    return q.toString();
  }

  function describe(values) {
    return Object.keys(values || {}).map(function (key) {
      var value = values[key];
      return key + "=" + (typeof value === "string" ? value : JSON.stringify(value));
    }).join(" ");
  }

  /* The target: a job id links to its page (shortened, full id in the title); the rest as key=value. */
  function targetCell(entry) {
    var parts = [];
    var rest = {};
    Object.keys(entry.target || {}).forEach(function (key) {
      if (key === "job_id") {
        var id = entry.target[key];
        parts.push(UI.el("a", { href: "/jobs/" + encodeURIComponent(id), title: id }, ["job ", UI.el("code", { text: id.slice(0, 8) })]));
      } else {
        rest[key] = entry.target[key];
      }
    });
    var text = [describe(rest), describe(entry.details)].filter(Boolean).join(" · ");
    if (text) parts.push(UI.el("span", { text: (parts.length ? " " : "") + text }));
    return UI.el("td", { class: "target" }, parts.length ? parts : ["—"]);
  }

  function row(entry) {
    var who = entry.actor || "(open API)";
    return UI.el("tr", { dataset: { action: entry.action, actor: entry.actor || "" } }, [
      UI.el("td", {}, [UI.timeEl(entry.at)]),
      UI.el("td", {}, [UI.el("strong", { text: who }), " ", UI.el("span", { class: "hint", text: [entry.role, entry.via].filter(Boolean).join(", ") })]),
      UI.el("td", {}, [UI.el("code", { text: entry.action })]),
      targetCell(entry),
      UI.el("td", {}, [UI.el("span", { class: "badge", dataset: { status: entry.ok ? "finished" : "failed" }, text: String(entry.status) })]),
      UI.el("td", { class: "hint", text: entry.client || "—" })
    ]);
  }

  function show(text) {
    var body = $("audit-body");
    body.textContent = "";
    body.appendChild(UI.el("tr", { class: "placeholder" }, [UI.el("td", { colspan: 6, class: "empty", text: text })]));
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("first-page").hidden = !cursor;
    UI.request("GET", "/api/audit?" + query({ limit: "50", cursor: cursor })).then(function (result) {
      if (result.status !== 200) { show(UI.errorMessage(result, "Could not load the audit log")); return; }
      var body = $("audit-body");
      body.textContent = "";
      if (!result.body.entries.length) show(cursor ? "No older entries." : "Nothing recorded yet (or nothing matches).");
      result.body.entries.forEach(function (entry) { body.appendChild(row(entry)); });
      var next = $("next-page");
      next.hidden = !result.body.next_cursor;
      if (result.body.next_cursor) next.href = "/audit?" + query({ cursor: result.body.next_cursor });
    }).catch(function (error) { show("Could not reach the server: " + error.message); });
  });
})();
