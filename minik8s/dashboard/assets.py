"""The page's stylesheet and its one script, served from /static/.

They live in Python strings so that they travel with the code into every
wheel and image, and the machines that show the page need nothing else:
nothing is fetched from any other site.
"""
from __future__ import annotations

STYLE = """\
:root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --line: #d0d7de; --muted: #57606a; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: #1f2328; background: #f6f8fa; }
header { display: flex; align-items: center; gap: 1em; padding: .5em 1.2em;
         background: #24292f; color: #fff; }
header h1 { font-size: 1.2em; margin: 0; }
main { padding: 1em 1.2em; display: grid; gap: 1em; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px;
          padding: .5em 1em 1em; overflow-x: auto; }
h2 { font-size: 1.1em; margin: .2em 0 .5em; }
h2 small, .kind, .empty, .counts, .message { color: var(--muted); font-weight: normal; }
h3 { font-size: 1em; margin: .3em 0; }
p { margin: .2em 0; }
table { border-collapse: collapse; width: 100%; margin-top: .3em; }
th, td { text-align: left; padding: .2em .8em .2em 0; border-bottom: 1px solid #eaeef2;
         vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: .9em; }
td.name { font-family: ui-monospace, monospace; }
.badge { display: inline-block; padding: 0 .5em; margin: 0 .2em .2em 0; border-radius: 1em;
         border: 1px solid currentColor; font-size: .85em; background: #fff; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
.not-ready { color: var(--warn); }
tr.warning td { background: #fff8c5; }
.workload { border-top: 1px solid var(--line); padding-top: .4em; margin-top: .4em; }
.usage { white-space: nowrap; }
meter { width: 5em; vertical-align: middle; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 1em; }
figure { margin: 0; }
figcaption { font-weight: 600; }
svg { width: 100%; height: auto; background: #fafbfc; border: 1px solid #eaeef2; }
.axis { stroke: var(--line); }
.tick { font-size: 9px; fill: var(--muted); }
.tick.end { text-anchor: end; }
.line { fill: none; stroke-width: 1.5; }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: .2em 1em; padding: 0;
          margin: .2em 0; font-size: .85em; }
.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .3em; }
.s0 { stroke: #0969da; background: #0969da; } .s1 { stroke: #bf3989; background: #bf3989; }
.s2 { stroke: #1a7f37; background: #1a7f37; } .s3 { stroke: #9a6700; background: #9a6700; }
.s4 { stroke: #8250df; background: #8250df; } .s5 { stroke: #cf222e; background: #cf222e; }
"""

SCRIPT = """\
// Live updates: the server streams each section it re-renders (Server-Sent
// Events) and the new rendering replaces the old one in place. The charts
// panel is redrawn from /api/charts every 15 s, as inline SVG.
"use strict";
(function () {
  const live = document.getElementById("live");

  function connect() {
    const source = new EventSource("/api/stream");
    source.onopen = () => { live.textContent = "live"; live.className = "badge ok"; };
    source.onerror = () => {
      live.textContent = "reconnecting";
      live.className = "badge warn";
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, 3000);
      }
    };
    source.addEventListener("section", (event) => {
      const update = JSON.parse(event.data);
      const old = document.getElementById(update.id);
      if (old) {
        old.outerHTML = update.html;
      }
    });
  }

  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 300, HEIGHT = 110, PAD = 4, TOP = 12, BOTTOM = 14;

  function svg(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) {
      node.setAttribute(key, value);
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function format(value, unit) {
    if (unit === "s") {
      return value < 1 ? (value * 1000).toPrecision(3) + " ms" : value.toPrecision(3) + " s";
    }
    const text = Number.isInteger(value) ? String(value) : value.toPrecision(3);
    return unit ? text + " " + unit : text;
  }

  function legend(chart, series) {
    const list = document.createElement("ul");
    list.className = "legend";
    series.forEach((s, i) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch s" + (i % 6);
      const last = s.points.length ? format(s.points[s.points.length - 1][1], chart.unit) : "-";
      item.append(swatch, (s.name || chart.title) + ": " + last);
      list.append(item);
    });
    return list;
  }

  function plot(chart, series, data) {
    const values = series.flatMap((s) => s.points.map((p) => p[1]));
    const max = Math.max(0, ...values);
    const top = max * 1.1 || 1;
    const span = (data.end - data.start) || 1;
    const x = (ts) => PAD + (WIDTH - 2 * PAD) * (ts - data.start) / span;
    const y = (v) => TOP + (HEIGHT - TOP - BOTTOM) * (1 - v / top);
    const drawing = svg("svg", {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img",
                                "aria-label": chart.title});
    drawing.append(
      svg("line", {x1: PAD, x2: WIDTH - PAD, y1: y(0), y2: y(0), class: "axis"}),
      svg("text", {x: PAD, y: 9, class: "tick"}, "max " + format(max, chart.unit)),
      svg("text", {x: PAD, y: HEIGHT - 3, class: "tick"}, Math.round(span / 60) + " min ago"),
      svg("text", {x: WIDTH - PAD, y: HEIGHT - 3, class: "tick end"}, "now"));
    series.forEach((s, i) => {
      const points = s.points.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1));
      drawing.append(svg("polyline", {points: points.join(" "), class: "line s" + (i % 6)}));
    });
    return drawing;
  }

  function figure(chart, data) {
    const series = data.series.filter((s) => s.chart === chart.id);
    const node = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = chart.title;
    node.append(caption, plot(chart, series, data));
    const error = (data.errors || {})[chart.id];
    if (error) {
      const note = document.createElement("p");
      note.className = "bad";
      note.textContent = error;
      node.append(note);
    } else {
      node.append(legend(chart, series));
    }
    return node;
  }

  async function refresh(panel) {
    try {
      const response = await fetch(panel.dataset.source);
      const data = await response.json();
      panel.replaceChildren(...data.charts.map((chart) => figure(chart, data)));
    } catch (err) {
      const note = document.createElement("p");
      note.className = "bad";
      note.textContent = "charts unavailable: " + err;
      panel.replaceChildren(note);
    }
  }

  connect();
  const panel = document.querySelector("#charts .charts");
  if (panel) {
    refresh(panel);
    setInterval(() => refresh(panel), 15000);
  }
})();
"""
