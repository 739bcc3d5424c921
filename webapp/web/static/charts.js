/* Small SVG charts for the overview page: stacked bars and lines over time, drawn with DOM calls
   only (no markup strings, no inline styles: colours come from app.css classes), so the page
   keeps its strict Content-Security-Policy. Each bar or point carries a <title> with its value,
   and each chart an aria-label that says what it shows and the latest values. */
"use strict";

(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var WIDTH = 640, HEIGHT = 200, LEFT = 52, RIGHT = 10, TOP = 10, BOTTOM = 26;

  function node(tag, attrs, text) {
    var el = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (key) { el.setAttribute(key, String(attrs[key])); });
    if (text !== undefined) el.textContent = text;
    return el;
  }

  /* The smallest of 1, 2, 2.5, 5 × 10^n at or above `value`: round numbers on the axis. */
  function niceMax(value, whole) {
    if (!(value > 0)) return whole ? 2 : 1;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    var top = 10 * power;
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= value) { top = steps[i] * power; break; }
    // Counts: the middle line must be a whole number too (2, 4, 6, 10, 26...).
    return whole ? Math.max(2, 2 * Math.ceil(top / 2)) : top;
  }

  function clock(iso) {
    var date = new Date(iso);
    return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  function frame(svg, yMax, labels, format) {
    var plotWidth = WIDTH - LEFT - RIGHT, plotHeight = HEIGHT - TOP - BOTTOM;
    [0, 0.5, 1].forEach(function (fraction) {
      var y = TOP + plotHeight * (1 - fraction);
      svg.appendChild(node("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: y, y2: y, class: "grid" }));
      svg.appendChild(node("text", { x: LEFT - 6, y: y + 4, class: "tick", "text-anchor": "end" }, format(yMax * fraction)));
    });
    var last = labels.length - 1;
    [0, Math.floor(last / 2), last].forEach(function (index, position) {
      if (index < 0) return;
      var x = LEFT + plotWidth * (last > 0 ? index / last : 0);
      var anchor = position === 0 ? "start" : position === 2 ? "end" : "middle";
      svg.appendChild(node("text", { x: x, y: HEIGHT - 6, class: "tick", "text-anchor": anchor }, clock(labels[index])));
    });
    return { width: plotWidth, height: plotHeight };
  }

  /* Stacked bars: series [{name, cls, values}], one bar per label. */
  function bars(svg, labels, series, format) {
    var totals = labels.map(function (_, i) {
      return series.reduce(function (sum, s) { return sum + (s.values[i] || 0); }, 0);
    });
    var yMax = niceMax(Math.max.apply(null, totals.concat([0])), true);
    var area = frame(svg, yMax, labels, format);
    var slot = area.width / Math.max(1, labels.length);
    labels.forEach(function (label, i) {
      var base = TOP + area.height;
      series.forEach(function (s) {
        var value = s.values[i] || 0;
        if (!value) return;
        var height = area.height * value / yMax;
        base -= height;
        var rect = node("rect", { x: LEFT + i * slot + slot * 0.1, y: base, width: Math.max(1, slot * 0.8), height: height, class: "bar " + s.cls });
        rect.appendChild(node("title", {}, clock(label) + ": " + format(value) + " " + s.name));
        svg.appendChild(rect);
      });
    });
  }

  /* Lines: series [{name, cls, values}] where null is a gap (no sample). */
  function lines(svg, labels, series, format, whole) {
    var all = [];
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v !== undefined) all.push(v); }); });
    var yMax = niceMax(Math.max.apply(null, all.concat([0])), whole);
    var area = frame(svg, yMax, labels, format);
    var last = Math.max(1, labels.length - 1);
    function x(i) { return LEFT + area.width * i / last; }
    function y(value) { return TOP + area.height * (1 - value / yMax); }
    series.forEach(function (s) {  // the lines first, then every point above them
      var d = "", pen = "M";
      s.values.forEach(function (value, i) {
        if (value === null || value === undefined) { pen = "M"; return; }
        d += pen + x(i).toFixed(1) + " " + y(value).toFixed(1) + " ";
        pen = "L";
      });
      if (d) svg.appendChild(node("path", { d: d, class: "line " + s.cls }));
    });
    series.forEach(function (s) {
      s.values.forEach(function (value, i) {
        if (value === null || value === undefined) return;
        var dot = node("circle", { cx: x(i).toFixed(1), cy: y(value).toFixed(1), r: 2.2, class: "dot " + s.cls });
        dot.appendChild(node("title", {}, clock(labels[i]) + ": " + format(value) + " (" + s.name + ")"));
        svg.appendChild(dot);
      });
    });
  }

  /* Draw a chart into `figure` (its .plot and .legend), replacing what was there. */
  function render(figure, kind, labels, series, format, summary, whole) {
    var plot = figure.querySelector(".plot");
    var legend = figure.querySelector(".legend");
    var svg = node("svg", { viewBox: "0 0 " + WIDTH + " " + HEIGHT, role: "img", "aria-label": summary });
    (kind === "bars" ? bars : lines)(svg, labels, series, format, whole);
    plot.textContent = "";
    plot.appendChild(svg);
    legend.textContent = "";
    series.forEach(function (s) {
      var item = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "swatch " + s.cls;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(" " + s.name));
      legend.appendChild(item);
    });
    figure.dataset.summary = summary;
  }

  window.JobCharts = { render: render, niceMax: niceMax };
})();
