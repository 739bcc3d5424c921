/* Shared helpers for the pages: safe DOM building, local times, JSON requests.
   Nothing here ever assigns HTML: text goes in with textContent only. */
"use strict";

(function () {
  var TERMINAL = ["finished", "failed", "canceled", "stopped"];

  /* Build an element: el("li", {class: "x", dataset: {id: "1"}}, ["text", childNode]). */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "dataset") {
        Object.keys(value).forEach(function (d) { node.dataset[d] = value[d]; });
      } else if (key === "text") {
        node.textContent = value;
      } else {
        node.setAttribute(key, value === true ? "" : String(value));
      }
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  /* "2026-11-24T01:02:03.456Z" → the viewer's local date and time. */
  function localTime(iso) {
    if (!iso) return "—";
    var date = new Date(iso);
    if (isNaN(date.getTime())) return iso;
    return date.toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit"
    });
  }

  /* A <time> element with the ISO value kept in its datetime attribute. */
  function timeEl(iso) {
    var node = el("time", iso ? { datetime: iso, title: iso } : {}, [localTime(iso)]);
    return node;
  }

  function setTime(node, iso) {
    if (!node) return;
    if (iso) {
      node.setAttribute("datetime", iso);
      node.setAttribute("title", iso);
    } else {
      node.removeAttribute("datetime");
    }
    node.textContent = localTime(iso);
  }

  /* Turn every server-rendered <time datetime> under root into local time. */
  function localizeTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (node) {
      var iso = node.getAttribute("datetime");
      node.setAttribute("title", iso);
      node.textContent = localTime(iso);
    });
  }

  /* The sign-in session's CSRF token (empty without a session): every state-changing request
     a page makes carries it, or the server refuses the request (webapp/web/sessions.py). */
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* False for a read-only (viewer) key: pages leave out what would change state. */
  function canWrite() { return document.body.dataset.canWrite !== "false"; }

  /* fetch() that returns {status, body} with the body parsed as JSON when it is JSON. */
  function request(method, url, body) {
    var options = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (["GET", "HEAD", "OPTIONS"].indexOf(method) < 0 && csrfToken()) options.headers["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 401 && csrfToken()) {
        // The sign-in session ended (expired, signed out elsewhere, key removed): sign in again.
        window.location.assign("/signin?next=" + encodeURIComponent(window.location.pathname + window.location.search));
      }
      var type = response.headers.get("Content-Type") || "";
      var parse = type.indexOf("application/json") >= 0 ? response.json() : response.text();
      return parse.then(function (parsed) { return { status: response.status, body: parsed }; });
    });
  }

  /* The message of an API error body, or a fallback. */
  function errorMessage(result, fallback) {
    var body = result && result.body;
    if (body && body.error && body.error.message) return body.error.message;
    return fallback + " (HTTP " + (result ? result.status : "?") + ")";
  }

  /* A live indicator: data-state drives its colour, the text says it in words. */
  function setLive(node, state, text) {
    if (!node) return;
    node.dataset.state = state;
    node.textContent = text;
  }

  /* -- job argument forms (templates/_job_fields.html) ------------------------------------ */

  function clearErrors(form) {
    form.querySelectorAll(".field-error, .form-error").forEach(function (node) { node.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (node) { node.removeAttribute("aria-invalid"); });
  }

  /* Show `message` under the field named by an API error's argument ("a", "a.b"); false if none. */
  function showFieldError(root, argument, message) {
    var field = argument ? root.querySelector('[data-field="' + CSS.escape(argument.split(".")[0]) + '"]') : null;
    if (!field) return false;
    var slot = field.querySelector(".field-error");
    slot.textContent = slot.textContent ? slot.textContent + "; " + message : message;
    var input = field.querySelector("input, textarea, select");
    if (input) input.setAttribute("aria-invalid", "true");
    return true;
  }

  /* The kwargs from the argument inputs under `root`; a parse problem is reported on its field
     (and null returned). Inputs left empty are left out: the API applies the default. */
  function collectArgs(root) {
    var kwargs = {};
    var ok = true;
    root.querySelectorAll("[data-field] [data-kind]").forEach(function (input) {
      var kind = input.dataset.kind;
      if (kind === "boolean") { kwargs[input.name] = input.checked; return; }
      var raw = input.value.trim();
      if (raw === "") return;
      if (kind === "integer" || kind === "number") {
        var value = Number(raw);
        if (!isFinite(value)) { ok = showFieldError(root, input.name, "Enter a number.") && false; return; }
        kwargs[input.name] = value;
      } else if (kind === "json") {
        try { kwargs[input.name] = JSON.parse(raw); }
        catch (e) { ok = showFieldError(root, input.name, "Enter a JSON value, e.g. [1, 2] or \"text\".") && false; }
      } else {
        kwargs[input.name] = input.value;
      }
    });
    return ok ? kwargs : null;
  }

  window.JobUI = {
    clearErrors: clearErrors,
    showFieldError: showFieldError,
    collectArgs: collectArgs,
    TERMINAL: TERMINAL,
    el: el,
    localTime: localTime,
    timeEl: timeEl,
    setTime: setTime,
    localizeTimes: localizeTimes,
    request: request,
    csrfToken: csrfToken,
    canWrite: canWrite,
    errorMessage: errorMessage,
    setLive: setLive
  };

  document.addEventListener("DOMContentLoaded", function () { localizeTimes(document); });
})();
