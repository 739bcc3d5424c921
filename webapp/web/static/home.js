/* The home page: submit a job form to POST /api/jobs, show the API's validation messages next
   to their fields, run the two demos, and show the demo channel's messages as they arrive. */
"use strict";

(function () {
  var UI = window.JobUI;

  var clearErrors = UI.clearErrors;
  var showFieldError = UI.showFieldError;

  function submitJob(event) {
    event.preventDefault();
    var form = event.currentTarget;
    var button = form.querySelector("button[type=submit]");
    clearErrors(form);
    var kwargs = UI.collectArgs(form);
    if (kwargs === null) return;
    var queue = form.querySelector('[data-kind="queue"]');
    var payload = { name: form.dataset.job, kwargs: kwargs };
    if (queue) payload.queue = queue.value;
    button.disabled = true;
    UI.request("POST", form.getAttribute("action"), payload).then(function (result) {
      if (result.status === 202 && result.body && result.body.id) {
        window.location.assign("/jobs/" + encodeURIComponent(result.body.id));
        return;
      }
      button.disabled = false;
      var details = (result.body && result.body.error && result.body.error.details) || [];
      var unplaced = [];
      details.forEach(function (detail) {
        if (!showFieldError(form, detail.argument, detail.message)) unplaced.push(detail);
      });
      var formError = form.querySelector(".form-error");
      if (!details.length || unplaced.length) {
        formError.textContent = unplaced.length
          ? unplaced.map(function (d) { return (d.argument ? d.argument + ": " : "") + d.message; }).join("; ")
          : UI.errorMessage(result, "The job was not accepted");
      }
      var invalid = form.querySelector("[aria-invalid]");
      if (invalid) invalid.focus();
    }).catch(function (error) {
      button.disabled = false;
      form.querySelector(".form-error").textContent = "Could not reach the server: " + error.message;
    });
  }

  function addFeedItem(text, at) {
    var feed = document.getElementById("demo-feed");
    var empty = document.getElementById("demo-empty");
    if (empty) empty.remove();
    feed.insertBefore(UI.el("li", {}, [UI.timeEl(at), " ", UI.el("span", { text: text })]), feed.firstChild);
    while (feed.children.length > 30) feed.removeChild(feed.lastChild);
  }

  function runDemo(event) {
    event.preventDefault();
    var form = event.currentTarget;
    UI.request("POST", form.getAttribute("action")).then(function (result) {
      if (result.status >= 400) {
        addFeedItem(UI.errorMessage(result, "The demo failed"), new Date().toISOString());
        return;
      }
      if (result.body && result.body.id) {
        var item = UI.el("span", {}, ["Enqueued task_get(" + result.body.number + ") as job "]);
        item.appendChild(UI.el("a", { href: result.body.url, text: result.body.id.slice(0, 8) }));
        var feed = document.getElementById("demo-feed");
        var empty = document.getElementById("demo-empty");
        if (empty) empty.remove();
        feed.insertBefore(UI.el("li", { class: "mine" }, [UI.timeEl(new Date().toISOString()), " ", item]), feed.firstChild);
      }
    });
  }

  function followDemoChannel() {
    var feed = document.getElementById("demo-feed");
    var state = document.getElementById("demo-state");
    if (!feed || !window.EventSource) return;
    var source = new EventSource(feed.dataset.src);
    source.onopen = function () { UI.setLive(state, "live", "live"); };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) UI.setLive(state, "off", "live messages unavailable");
      else UI.setLive(state, "connecting", "reconnecting…");
    };
    source.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { data = { data: message.data }; }
      var text = (data.channel ? data.channel + ": " : "") + (typeof data.data === "string" ? data.data : JSON.stringify(data.data));
      addFeedItem(text, data.at || new Date().toISOString());
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.job-form").forEach(function (form) { form.addEventListener("submit", submitJob); });
    document.querySelectorAll("form.demo-form").forEach(function (form) { form.addEventListener("submit", runDemo); });
    followDemoChannel();
  });
})();
