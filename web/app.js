// The postflight dashboard: a hash-routed page over the JSON API. No build step, no
// dependency but uPlot (a global from its own file). Every value from the API is inserted as
// text (text nodes, textContent, setAttribute on known attributes): never as markup.

const $main = document.getElementById("main");
const REFRESH_MS = 10000;
const SLOW_REFRESH_MS = 60000;
const LONG_REFRESH_MS = 600000;
const TOKEN_KEY = "postflight.token";

// ---------------------------------------------------------------- DOM helpers

/** An element with attributes and children; strings become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** A link to a route of this page; parts are encoded, so a name never breaks out of it. */
function route(...parts) {
  return "#/" + parts.map((p) => encodeURIComponent(p)).join("/");
}

/** A state as a symbol, a word and a colour class. */
const STATES = {
  up: ["ok", "✓", "up"], pass: ["ok", "✓", "pass"], down: ["bad", "✕", "down"],
  fail: ["bad", "✕", "fail"], firing: ["bad", "!", "firing"], pending: ["warn", "…", "pending"],
  watching: ["info", "◔", "watching"], inconclusive: ["warn", "?", "inconclusive"],
  superseded: ["none", "↷", "superseded"], nodata: ["warn", "?", "no data"],
  unknown: ["none", "–", "unknown"], active: ["warn", "◼", "active"],
  expired: ["none", "–", "expired"], upcoming: ["info", "◷", "upcoming"],
};
function stateBadge(state) {
  const [cls, sym, word] = STATES[state] || ["none", "•", String(state || "unknown")];
  return h("span", { class: "state " + cls }, h("span", { "aria-hidden": "true" }, sym), word);
}

function fmtTime(t) {
  if (t === null || t === undefined || t === "") return "—";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  if (isNaN(d)) return String(t);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}
function fmtAgo(t) {
  const d = new Date(t);
  if (isNaN(d)) return "—";
  let s = Math.round((Date.now() - d.getTime()) / 1000);
  const future = s < 0;
  s = Math.abs(s);
  const txt = s < 90 ? s + " s" : s < 5400 ? Math.round(s / 60) + " min"
    : s < 172800 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " d";
  return future ? "in " + txt : txt + " ago";
}
function fmtDuration(sec) {
  if (sec === null || sec === undefined || !isFinite(sec)) return "—";
  if (sec < 1e-3) return (sec * 1e6).toFixed(0) + " µs";
  if (sec < 1) return (sec * 1e3).toFixed(sec < 0.01 ? 2 : 0) + " ms";
  return sec.toFixed(2) + " s";
}
function fmtNum(v) {
  if (v === null || v === undefined || !isFinite(v)) return "—";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  return String(Math.round(v * 1e4) / 1e4);
}
function fmtPct(f, digits = 3) {
  if (f === null || f === undefined || !isFinite(f)) return "—";
  return (f * 100).toFixed(digits).replace(/\.?0+$/, "") + " %";
}

// ---------------------------------------------------------------- API

function token() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
}

async function api(path, opts = {}) {
  const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
  const t = token();
  if (t && opts.method && opts.method !== "GET") headers.Authorization = "Bearer " + t;
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  if (!r.ok) {
    const err = new Error((body && body.error) || r.status + " " + r.statusText);
    err.status = r.status;
    throw err;
  }
  return body;
}

/** A write (POST/DELETE). With `api_token` set the page asks for the token before the first
 * write and keeps it for the tab; a refused token is asked for again, once. */
async function write(path, opts) {
  if (document.body.getAttribute("data-token") === "required" && !token()) {
    if (!(await askToken())) throw new Error("no API token given");
  }
  try {
    return await api(path, opts);
  } catch (e) {
    if (e.status !== 401) throw e;
    if (!(await askToken("The token was refused; try again."))) throw e;
    return api(path, opts);
  }
}

function askToken(why) {
  return new Promise((resolve) => {
    const input = h("input", { type: "password", id: "token-input", autocomplete: "off", required: true });
    const dialog = h("div", { class: "card banner", role: "dialog", "aria-label": "API token", id: "token-dialog" });
    const done = (value) => { dialog.remove(); resolve(value); };
    const form = h("form", { class: "inline", onsubmit: (ev) => {
      ev.preventDefault();
      try { sessionStorage.setItem(TOKEN_KEY, input.value); } catch { /* private mode: once */ }
      done(input.value);
    } },
    h("label", {}, "API token (kept for this tab only)", input),
    h("button", { type: "submit" }, "Use token"),
    h("button", { type: "button", onclick: () => done(null) }, "Cancel"));
    append(dialog, [h("p", {}, why || "This action needs the API token (server.api_token)."), form]);
    $main.prepend(dialog);
    input.focus();
  });
}

/** A query_range answer as one aligned table for uPlot: [[x...], [y...]...] and the series. */
async function rangeQuery(expr, seconds, stepHint) {
  const end = Date.now() / 1000;
  const start = end - seconds;
  const step = Math.max(1, Math.round(stepHint || seconds / 240));
  const q = new URLSearchParams({ query: expr, start: start.toFixed(3), end: end.toFixed(3), step: String(step) });
  const r = await api("/api/v1/query_range?" + q);
  return r.data.result;
}

function align(result, labelOf) {
  const xs = new Set();
  for (const s of result) for (const [t] of s.values) xs.add(t);
  const x = [...xs].sort((a, b) => a - b);
  const index = new Map(x.map((t, i) => [t, i]));
  const ys = result.map((s) => {
    const y = new Array(x.length).fill(null);
    for (const [t, v] of s.values) y[index.get(t)] = Number(v);
    return y;
  });
  return { data: [x, ...ys], labels: result.map(labelOf) };
}

function labelText(metric) {
  const name = metric.__name__ || "";
  const rest = Object.entries(metric).filter(([k]) => k !== "__name__")
    .map(([k, v]) => k + "=" + JSON.stringify(v)).join(", ");
  return rest ? name + "{" + rest + "}" : name || "{}";
}

// ---------------------------------------------------------------- charts

const PALETTE = ["#2459a8", "#c2410c", "#1f7a45", "#7c3aed", "#b3261e", "#0e7490", "#a16207", "#be185d"];
const charts = new Set();

function chart(container, data, series, opts = {}) {
  if (!window.uPlot) {
    append(container, [h("p", { class: "error" }, "charts unavailable")]);
    return null;
  }
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  const axis = { stroke: dark ? "#a0a6ad" : "#5b6168", grid: { stroke: dark ? "#2a2e33" : "#eceef0" } };
  const width = Math.max(280, container.clientWidth - 16);
  const u = new window.uPlot({
    width, height: opts.height || 240,
    series: [{}, ...series.map((s, i) => Object.assign({ stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false }, s))],
    axes: [axis, Object.assign({ values: opts.yValues, size: 72 }, axis)],
    scales: { x: opts.xRange ? { time: true, range: () => opts.xRange } : { time: true } },
    legend: { show: true, live: opts.live !== false },
  }, data, container);
  charts.add({ u, container });
  return u;
}

addEventListener("resize", () => {
  for (const c of charts) {
    if (!c.container.isConnected) { charts.delete(c); continue; }
    c.u.setSize({ width: Math.max(280, c.container.clientWidth - 16), height: c.u.height });
  }
});

/** A small line drawn on a canvas: one per row, too many for a uPlot each. */
function sparkline(values, label) {
  const c = h("canvas", { class: "spark", width: 120, height: 24, role: "img", "aria-label": label });
  const pts = values.filter((v) => v !== null && isFinite(v));
  if (pts.length < 2) return h("span", { class: "muted" }, "—");
  const ctx = c.getContext("2d");
  const max = Math.max(...pts), min = Math.min(...pts);
  const span = max - min || 1;
  ctx.strokeStyle = matchMedia("(prefers-color-scheme: dark)").matches ? "#8ab4f8" : "#2459a8";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let first = true;
  values.forEach((v, i) => {
    if (v === null || !isFinite(v)) { first = true; return; }
    const x = (i / (values.length - 1)) * 118 + 1;
    const y = 22 - ((v - min) / span) * 20;
    if (first) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    first = false;
  });
  ctx.stroke();
  return c;
}

// ---------------------------------------------------------------- uptime

/** Uptime per probe for a window, or null when the endpoint is not there (older daemon). */
async function uptimes(window) {
  try {
    const r = await api("/api/v1/uptime?window=" + encodeURIComponent(window));
    const list = Array.isArray(r) ? r : Array.isArray(r.data) ? r.data
      : Object.values(r).find((v) => Array.isArray(v)) || [];
    return new Map(list.map((u) => [u.probe, u]));
  } catch {
    return null;
  }
}
async function uptimeOf(probe, window) {
  try {
    return await api("/api/v1/uptime?probe=" + encodeURIComponent(probe) + "&window=" + encodeURIComponent(window));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- pages

let timer = null;
function every(fn) {
  clearInterval(timer);
  timer = setInterval(() => {
    // No refresh while someone types in a form of the page or has a silence form open.
    if ($main.contains(document.activeElement) && /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) return;
    if ($main.querySelector("form.silence-form, #token-dialog")) return;
    fn().catch(showError);
  }, REFRESH_MS);
}

function showError(e) {
  console.warn("dashboard:", e);
  const box = document.getElementById("page-error") || h("p", { id: "page-error", class: "error", role: "alert" });
  box.textContent = "Could not load: " + (e && e.message ? e.message : e);
  if (!box.isConnected) $main.prepend(box);
}

const filters = { job: "", state: "", text: "" };

async function overview() {
  const page = h("div", { id: "overview" });
  const top = h("div", { id: "top" });
  const table = h("div", { id: "targets" });
  const jobSel = h("select", { id: "filter-job" }, h("option", { value: "" }, "all jobs"));
  const stateSel = h("select", { id: "filter-state" },
    h("option", { value: "" }, "all states"), h("option", { value: "up" }, "up"),
    h("option", { value: "down" }, "down"), h("option", { value: "unknown" }, "unknown"));
  const text = h("input", { id: "filter-text", type: "search", placeholder: "name, URL or reason", value: filters.text });
  stateSel.value = filters.state;
  append(page, [h("h1", {}, "Overview"), top,
    h("div", { class: "filters", role: "search" },
      h("label", {}, "Job", jobSel), h("label", {}, "State", stateSel), h("label", {}, "Find", text)),
    table]);
  clear($main).append(page);

  // The table is built once; a refresh replaces only the rows whose shown values changed and
  // moves rows only where the order changed.
  const counts = h("p", { class: "muted", id: "counts" });
  const tbody = h("tbody");
  append(table, [counts, h("div", { class: "table-wrap" }, h("table", { "aria-label": "Probes and targets" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Name"),
      h("th", { scope: "col", class: "hide-narrow" }, "Kind"), h("th", { scope: "col" }, "Job"),
      h("th", { scope: "col" }, "Last reason"), h("th", { scope: "col", class: "hide-narrow" }, "Latency (1 h)"),
      h("th", { scope: "col", class: "num" }, "Last"), h("th", { scope: "col", class: "num" }, "Uptime 24 h"),
      h("th", { scope: "col", class: "num hide-narrow" }, "7 d"), h("th", { scope: "col", class: "num hide-narrow" }, "30 d"))),
    tbody))]);
  const rows = new Map(); // key → { sig, tr }

  let targets = null;
  let slowData = null;
  const draw = () => {
    if (!targets || !slowData) return;
    const { spark, up } = slowData;
    const shown = targets.filter((t) =>
      (!filters.job || t.job === filters.job) &&
      (!filters.state || (t.health || "unknown") === filters.state) &&
      (!filters.text || [t.probe, t.log, t.url, t.lastError].join(" ").toLowerCase().includes(filters.text.toLowerCase())));
    const wanted = [];
    const seen = new Set();
    for (const t of shown) {
      const name = t.probe || t.log || t.url;
      const key = t.kind === "probe" ? "p:" + t.probe : "s:" + t.job + "|" + hostOf(t.url);
      const series = spark.get(key);
      const u = (w) => {
        if (t.kind !== "probe") return "";
        if (!up[w]) return "—";
        const x = up[w].get(t.probe);
        return x ? fmtPct(x.uptime, 2) : "—";
      };
      const cells = [t.health || "unknown", name, t.kind, t.job || "", t.url, t.lastError, u("24h"), u("7d"), u("30d")];
      const rowKey = t.kind + "\u0000" + t.job + "\u0000" + name + "\u0000" + t.url;
      seen.add(rowKey);
      const old = rows.get(rowKey);
      // The series object is new at each read of the sparklines: identity says "redraw".
      if (old && old.series === series && old.sig === JSON.stringify(cells)) { wanted.push(old.tr); continue; }
      const last = series ? lastValue(series) : null;
      const tr = h("tr", { "data-name": name, "data-kind": t.kind },
        h("td", {}, stateBadge(t.health || "unknown")),
        h("td", {}, t.kind === "probe" ? h("a", { href: route("probe", t.probe) }, name) : name,
          h("div", { class: "muted mono hide-narrow" }, t.kind === "probe" ? t.url : "")),
        h("td", { class: "hide-narrow" }, t.kind),
        h("td", {}, t.job || ""),
        h("td", { class: "reason" }, t.lastError ? t.lastError : h("span", { class: "muted" }, t.health === "up" ? "ok" : "—")),
        h("td", { class: "hide-narrow" }, series ? sparkline(series, "latency of " + name + ", last hour") : h("span", { class: "muted" }, "—")),
        h("td", { class: "num" }, fmtDuration(last)),
        h("td", { class: "num" }, u("24h")), h("td", { class: "num hide-narrow" }, u("7d")),
        h("td", { class: "num hide-narrow" }, u("30d")));
      if (old) old.tr.replaceWith(tr);
      rows.set(rowKey, { sig: JSON.stringify(cells), series, tr });
      wanted.push(tr);
    }
    for (const [k, r] of rows) if (!seen.has(k)) { r.tr.remove(); rows.delete(k); }
    // Rows in the wanted order: a row already in place is not touched.
    let at = tbody.firstChild;
    for (const tr of wanted) {
      if (at === tr) { at = at.nextSibling; continue; }
      tbody.insertBefore(tr, at);
    }
    while (at) { const next = at.nextSibling; at.remove(); at = next; }
    const byState = {};
    for (const t of targets) byState[t.health || "unknown"] = (byState[t.health || "unknown"] || 0) + 1;
    counts.textContent = shown.length + " of " + targets.length + " shown · " +
      Object.entries(byState).map(([k, v]) => v + " " + k).join(", ");
  };
  jobSel.addEventListener("change", () => { filters.job = jobSel.value; draw(); });
  stateSel.addEventListener("change", () => { filters.state = stateSel.value; draw(); });
  text.addEventListener("input", () => { filters.text = text.value; draw(); });

  // What changes every few seconds is a target's state and reason: read every 10 s from
  // /api/v1/targets/health, which answers 304 while none changed (no body made, nothing drawn).
  // Sparklines (a point a minute, their last point is the "Last" latency) and the 24 h uptime
  // (hourly counts) are read once a minute; 7 and 30 day uptimes, which one minute cannot move
  // at the precision shown, every 10 minutes. So an open tab costs the daemon little.
  let etag = null;
  let slow = null;
  let long = null;
  const slowParts = () => {
    if (!long || Date.now() - long.at >= LONG_REFRESH_MS) {
      long = { at: Date.now(), parts: Promise.all([uptimes("7d"), uptimes("30d")]) };
      long.parts.catch(() => { long = null; });
    }
    if (!slow || Date.now() - slow.at >= SLOW_REFRESH_MS) {
      slow = { at: Date.now(), parts: Promise.all([sparks(), uptimes("24h"), long.parts]) };
      slow.parts.catch(() => { slow = null; });
    }
    return slow.parts;
  };
  let banner = null;
  const load = async () => {
    const [health, alerts, deps, maint, slowNow] = await Promise.all([
      targetsHealth(etag),
      api("/api/v1/alerts").then((r) => r.alerts),
      api("/api/v1/deployments?limit=20").then((r) => r.deployments).catch(() => []),
      api("/api/v1/maintenance").then((r) => r.maintenance).catch(() => []),
      slowParts(),
    ]);
    const news = JSON.stringify([alerts, deps, maint]);
    if (news !== banner) {
      banner = news;
      clear(top).append(...banners(alerts, deps, maint));
    }
    const [spark, u24, [u7, u30]] = slowNow;
    let changed = false;
    if (health) {
      etag = health.etag;
      targets = health.targets;
      targets.sort((a, b) => rank(a) - rank(b) || String(a.job).localeCompare(String(b.job)) ||
        String(a.probe || a.log || a.url).localeCompare(String(b.probe || b.log || b.url)));
      const jobs = [...new Set(targets.map((t) => t.job).filter(Boolean))].sort();
      if (jobs.join("\u0000") !== [...jobSel.options].slice(1).map((o) => o.value).join("\u0000")) {
        const keep = filters.job;
        clear(jobSel).append(h("option", { value: "" }, "all jobs"), ...jobs.map((j) => h("option", { value: j }, j)));
        jobSel.value = keep;
      }
      changed = true;
    }
    if (!slowData || slowData.spark !== spark || slowData.up["24h"] !== u24 || slowData.up["7d"] !== u7) {
      slowData = { spark, up: { "24h": u24, "7d": u7, "30d": u30 } };
      changed = true;
    }
    if (changed) draw();
    // The time to a drawn overview, for the benchmark (bench/dashboard.sh).
    if (!performance.getEntriesByName("overview-drawn").length) performance.mark("overview-drawn");
  };
  await load();
  every(load);
}

/** The targets' states, or null when they did not change since the answer tagged `etag`. */
async function targetsHealth(etag) {
  const headers = { Accept: "application/json" };
  if (etag) headers["If-None-Match"] = etag;
  // A conditional request of the page's own: the browser hands the 304 to the page, which
  // then keeps what it shows.
  const r = await fetch("/api/v1/targets/health", { headers, cache: "no-store" });
  if (r.status === 304) return null;
  if (!r.ok) {
    const err = new Error(r.status + " " + r.statusText);
    err.status = r.status;
    throw err;
  }
  return { etag: r.headers.get("ETag"), targets: (await r.json()).targets };
}

/** The last point of a sparkline's series, or null. */
function lastValue(series) {
  for (let i = series.length - 1; i >= 0; i--) if (series[i] !== null && isFinite(series[i])) return series[i];
  return null;
}

function rank(t) {
  return { down: 0, unknown: 1, up: 2 }[t.health || "unknown"] ?? 1;
}

function hostOf(url) {
  try { return new URL(url).host; } catch { return url; }
}

/** Last hour of probe latency and scrape duration, one query each. */
async function sparks() {
  const out = new Map();
  const [probes, scrapes] = await Promise.all([
    rangeQuery('probe_duration_seconds{exported_instance=""}', 3600, 60).catch(() => []),
    rangeQuery("scrape_duration_seconds", 3600, 60).catch(() => []),
  ]);
  const x = (res) => align(res, () => "").data;
  const pd = x(probes);
  probes.forEach((s, i) => out.set("p:" + s.metric.probe, pd[i + 1]));
  const sd = x(scrapes);
  scrapes.forEach((s, i) => out.set("s:" + s.metric.job + "|" + s.metric.instance, sd[i + 1]));
  return out;
}

function banners(alerts, deps, maint) {
  const out = [];
  const firing = alerts.filter((a) => a.state === "firing");
  const pending = alerts.filter((a) => a.state === "pending");
  if (firing.length || pending.length) {
    out.push(h("section", { class: "card banner", id: "firing", "aria-label": "Firing alerts" },
      h("h2", {}, firing.length + " firing, " + pending.length + " pending ", h("a", { href: "#/alerts" }, "see alerts")),
      h("ul", {}, [...firing, ...pending].slice(0, 8).map((a) => h("li", {},
        stateBadge(a.state), " ", h("strong", {}, a.labels.alertname || "alert"), " ",
        h("span", { class: "reason" }, a.annotations.summary || a.annotations.reason || labelsLine(a.labels)))))));
  } else {
    out.push(h("section", { class: "card", id: "firing" }, stateBadge("up"), " No alert is firing."));
  }
  const watching = deps.filter((d) => d.verdict === "watching");
  if (watching.length) {
    out.push(h("section", { class: "card banner watch", id: "watches", "aria-label": "Deployments under watch" },
      h("h2", {}, watching.length === 1 ? "1 deployment under watch" : watching.length + " deployments under watch"),
      h("ul", {}, watching.map((d) => h("li", {}, stateBadge("watching"), " ",
        h("a", { href: route("deployment", d.id) }, d.job + " " + d.version), " · ",
        d.evaluations + " of " + d.plannedEvaluations + " evaluations, until " + fmtTime(d.watchUntil))))));
  }
  const active = maint.filter((m) => m.active);
  if (active.length) {
    out.push(h("section", { class: "card banner maint", id: "maintenance-now", "aria-label": "Maintenance in progress" },
      h("h2", {}, "Maintenance in progress"),
      h("ul", {}, active.map((m) => h("li", {}, stateBadge("active"), " ", h("strong", {}, m.name), " until " +
        fmtTime(m.endsAt) + " · mutes ", m.matchers.join(", "))))));
  }
  return out;
}

function labelsLine(labels) {
  return Object.entries(labels || {}).map(([k, v]) => k + "=" + v).join(" ");
}

function chips(labels) {
  return h("div", { class: "chips" }, Object.entries(labels || {}).map(([k, v]) =>
    h("span", { class: "chip" }, k + "=" + JSON.stringify(v))));
}

// ---------------------------------------------------------------- probe page

const RANGES = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400 };
let probeRange = "15m";

async function probePage(name) {
  const page = h("div", { id: "probe" });
  clear($main).append(page);
  const load = async () => {
    const seconds = RANGES[probeRange];
    const since = new Date(Date.now() - seconds * 1000).toISOString();
    const [targets, hist, cert, u24, u7, u30, phases, total] = await Promise.all([
      api("/api/v1/targets").then((r) => r.targets),
      api("/api/v1/history?probe=" + encodeURIComponent(name) + "&since=" + encodeURIComponent(since) + "&limit=20000"),
      api("/api/v1/query?query=" + encodeURIComponent(sel("probe_ssl_earliest_cert_expiry", name))).then((r) => r.data.result).catch(() => []),
      uptimeOf(name, "24h"), uptimeOf(name, "7d"), uptimeOf(name, "30d"),
      rangeQuery(sel("probe_http_duration_seconds", name), seconds).catch(() => []),
      rangeQuery(sel("probe_duration_seconds", name), seconds).catch(() => []),
    ]);
    const t = targets.find((x) => x.kind === "probe" && x.probe === name);
    const results = hist.results || [];
    clear(page);
    if (!t) {
      append(page, [h("h1", {}, "Probe " + name), h("p", { class: "error" }, "No probe of this name in the config in force.")]);
      return;
    }
    const rangeSel = h("select", { id: "probe-range", onchange: (e) => { probeRange = e.target.value; load().catch(showError); } },
      Object.keys(RANGES).map((r) => h("option", { value: r, selected: r === probeRange }, "last " + r)));
    const slo = (u30 && u30.slo) ?? null;
    append(page, [
      h("p", {}, h("a", { href: "#/" }, "← Overview")),
      h("h1", {}, stateBadge(t.health || "unknown"), " ", name),
      h("dl", { class: "kv" },
        h("dt", {}, "URL"), h("dd", { class: "mono" }, t.url || "—"),
        h("dt", {}, "Job"), h("dd", {}, t.job || "—"),
        h("dt", {}, "Last run"), h("dd", {}, fmtTime(t.lastRun) + " (" + fmtAgo(t.lastRun) + "), took " + fmtDuration(t.lastDurationSeconds)),
        h("dt", {}, "Last reason"), h("dd", { class: "reason", id: "probe-reason" }, t.lastError || "ok"),
        h("dt", {}, "Certificate"), h("dd", { id: "cert" }, certText(cert))),
      h("div", { class: "grid", id: "uptime" },
        stat("Uptime 24 h", u24 ? fmtPct(u24.uptime) : "—"),
        stat("Uptime 7 d", u7 ? fmtPct(u7.uptime) : "—"),
        stat("Uptime 30 d", u30 ? fmtPct(u30.uptime) : "—"),
        stat("SLO", slo !== null ? fmtPct(slo) : "none set"),
        stat("Error budget left (30 d)", budgetText(u30)),
        stat("Failures (30 d)", u30 ? u30.failures + " of " + u30.checks : "—")),
      h("div", { class: "filters" }, h("label", {}, "Range", rangeSel)),
      h("h2", {}, "Latency by phase"),
    ]);
    const lat = h("div", { class: "chart", id: "latency-chart" });
    page.append(lat);
    const all = [...total.map((s) => ({ s, label: "total" })), ...phases.map((s) => ({ s, label: s.metric.phase || "phase" }))];
    if (all.length) {
      const a = align(all.map((x) => x.s), () => "");
      chart(lat, a.data, all.map((x) => ({ label: x.label, value: (u, v) => fmtDuration(v) })),
        { yValues: (u, vs) => vs.map(fmtDuration), xRange: [Date.now() / 1000 - seconds, Date.now() / 1000] });
    } else {
      lat.append(h("p", { class: "muted" }, "No latency in this range yet."));
    }
    append(page, [h("h2", {}, "Status"), timeline(results, seconds)]);
    append(page, [h("h2", {}, "Failures"), failures(results)]);
  };
  await load();
  every(load);
}

/** A probe's own series, not the copies a scrape of postflight's /metrics adds (those carry
 * `exported_instance`). */
function sel(metric, probe) {
  return metric + "{probe=" + JSON.stringify(probe) + ',exported_instance=""}';
}

/** The error budget left in words: a share of the allowed failures, or how far past it. */
function budgetText(u) {
  const r = u ? u.errorBudgetRemaining : null;
  if (r === null || r === undefined || !isFinite(r)) return "—";
  if (r >= 0) return fmtPct(r, 1);
  return "overspent: " + fmtNum(1 - r) + "× the failures allowed";
}

function stat(k, v) {
  return h("div", { class: "stat" }, h("div", { class: "k" }, k), h("div", { class: "v" }, v));
}

function certText(result) {
  if (!result.length) return "no certificate seen (plain HTTP or no TLS handshake yet)";
  const at = Number(result[0].value[1]);
  const days = Math.floor((at * 1000 - Date.now()) / 86400000);
  return (days < 0 ? "expired " + -days + " days ago" : "expires in " + days + " days") + " (" + fmtTime(at) + ")";
}

/** Runs of equal outcome as segments of one bar, with a sentence for each. */
function episodes(results) {
  const eps = [];
  for (const r of results) {
    const last = eps[eps.length - 1];
    if (last && last.success === r.success) {
      last.end = r.time; last.count++;
      if (r.reason && !last.reasons.includes(r.reason) && last.reasons.length < 5) last.reasons.push(r.reason);
    } else {
      eps.push({ success: r.success, start: r.time, end: r.time, count: 1, reasons: r.reason ? [r.reason] : [] });
    }
  }
  return eps;
}

function timeline(results, seconds) {
  if (!results.length) return h("p", { class: "muted", id: "timeline" }, "No results in this range.");
  const eps = episodes(results);
  const bar = h("div", { class: "timeline", id: "timeline", role: "img",
    "aria-label": eps.length + " periods: " + eps.filter((e) => !e.success).length + " failing" });
  for (const e of eps) {
    const seg = h("span", { class: e.success ? "ok" : "bad",
      title: (e.success ? "up" : "down") + " from " + fmtTime(e.start) + " to " + fmtTime(e.end) + ", " + e.count + " checks" });
    seg.style.flexGrow = String(e.count);
    bar.append(seg);
  }
  const ok = results.filter((r) => r.success).length;
  return h("div", {}, bar, h("div", { class: "legend-line" },
    h("span", {}, "▮ up (solid)"), h("span", {}, "▨ down (striped)"),
    h("span", {}, ok + " of " + results.length + " checks succeeded in the last " + (seconds < 3600 ? seconds / 60 + " min" : seconds / 3600 + " h"))));
}

function failures(results) {
  const eps = episodes(results).filter((e) => !e.success).reverse();
  if (!eps.length) return h("p", { class: "muted", id: "failures" }, "No failure in this range.");
  return h("div", { class: "table-wrap" }, h("table", { id: "failures" },
    h("thead", {}, h("tr", {}, h("th", {}, "From"), h("th", {}, "To"), h("th", { class: "num" }, "Checks"), h("th", {}, "Reason"))),
    h("tbody", {}, eps.slice(0, 50).map((e) => h("tr", {},
      h("td", {}, fmtTime(e.start)), h("td", {}, e === eps[0] && !results[results.length - 1].success ? "ongoing" : fmtTime(e.end)),
      h("td", { class: "num" }, String(e.count)),
      h("td", { class: "reason" }, e.reasons.join("; ")))))));
}

// ---------------------------------------------------------------- alerts and silences

async function alertsPage() {
  const page = h("div", { id: "alerts" });
  clear($main).append(page);
  const load = async () => {
    const [alerts, silences] = await Promise.all([
      api("/api/v1/alerts").then((r) => r.alerts),
      api("/api/v1/silences").then((r) => r.silences),
    ]);
    alerts.sort((a, b) => (a.state === "firing" ? 0 : 1) - (b.state === "firing" ? 0 : 1));
    clear(page).append(h("h1", {}, "Alerts"));
    if (!alerts.length) page.append(h("p", { class: "card" }, stateBadge("up"), " No alert is pending or firing."));
    for (const a of alerts) page.append(alertCard(a));
    page.append(h("h2", { id: "silences-title" }, "Silences"));
    page.append(silenceList(silences, load));
  };
  await load();
  every(load);
}

function alertCard(a) {
  const card = h("article", { class: "card alert", "data-alertname": a.labels.alertname || "" },
    h("h2", {}, stateBadge(a.state), " ", a.labels.alertname || "alert"),
    h("p", { class: "muted" }, "active since " + fmtTime(a.activeAt) + " (" + fmtAgo(a.activeAt) + "), value " + a.value),
    chips(a.labels),
    Object.keys(a.annotations || {}).length ? h("dl", { class: "kv" }, Object.entries(a.annotations).map(([k, v]) =>
      [h("dt", {}, k), h("dd", { class: "reason" }, v)])) : null);
  const btn = h("button", { type: "button", class: "silence-btn", onclick: () => {
    btn.remove();
    card.append(silenceForm(a.labels, () => alertsPage().catch(showError)));
  } }, "Silence…");
  card.append(btn);
  return card;
}

function silenceForm(labels, after) {
  const matchers = Object.entries(labels).map(([k, v]) => k + "=" + JSON.stringify(v)).join("\n");
  const area = h("textarea", { name: "matchers", rows: Math.max(2, Object.keys(labels).length), id: "silence-matchers" });
  area.value = matchers;
  const dur = h("select", { name: "duration", id: "silence-duration" },
    [["1h", 1], ["2h", 2], ["4h", 4], ["12h", 12], ["1d", 24], ["1 week", 168]].map(([t, v]) => h("option", { value: v }, t)));
  const comment = h("input", { name: "comment", id: "silence-comment", value: "silenced from the dashboard" });
  const msg = h("p", { role: "status" });
  const form = h("form", { class: "card silence-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = {
      matchers: area.value.split("\n").map((s) => s.trim()).filter(Boolean),
      endsAt: new Date(Date.now() + Number(dur.value) * 3600000).toISOString(),
      comment: comment.value, createdBy: "dashboard",
    };
    try {
      const r = await write("/api/v1/silences", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      msg.textContent = "Silence " + r.id + " created.";
      await after();
    } catch (e) {
      msg.className = "error";
      msg.textContent = "Not created: " + e.message;
    }
  } },
  h("h3", {}, "New silence"),
  h("label", {}, "Matchers, one a line", area),
  h("div", { class: "filters" }, h("label", {}, "For", dur), h("label", {}, "Comment", comment),
    h("button", { type: "submit", id: "silence-submit" }, "Create silence")), msg);
  setTimeout(() => area.focus(), 0);
  return form;
}

function silenceList(silences, reload) {
  const rows = silences.filter((s) => s.status.state !== "expired" || Date.parse(s.endsAt) > Date.now() - 86400000);
  if (!rows.length) return h("p", { class: "muted", id: "silences" }, "No silence.");
  return h("div", { class: "table-wrap" }, h("table", { id: "silences" },
    h("thead", {}, h("tr", {}, h("th", {}, "State"), h("th", {}, "Matchers"), h("th", {}, "Until"),
      h("th", {}, "By"), h("th", {}, "Comment"), h("th", {}, ""))),
    h("tbody", {}, rows.map((s) => {
      const maint = (s.createdBy || "").startsWith("maintenance:");
      const expire = h("button", { type: "button", class: "danger expire-btn", onclick: async () => {
        expire.disabled = true;
        try {
          await write("/api/v1/silences/" + encodeURIComponent(s.id), { method: "DELETE" });
          await reload();
        } catch (e) {
          expire.disabled = false;
          showError(e);
        }
      } }, "Expire");
      return h("tr", { "data-silence": s.id, "data-created-by": s.createdBy || "" },
        h("td", {}, stateBadge(s.status.state)),
        h("td", {}, h("div", { class: "chips" }, s.matchers.map((m) => h("span", { class: "chip" }, m)))),
        h("td", {}, fmtTime(s.endsAt)),
        h("td", {}, s.createdBy || "—"),
        h("td", { class: "reason" }, s.comment || ""),
        h("td", {}, maint ? h("a", { href: "#/maintenance" }, "schedule") : s.status.state === "expired" ? "" : expire));
    }))));
}

// ---------------------------------------------------------------- deployments

async function deploymentsPage() {
  const page = h("div", { id: "deployments" });
  clear($main).append(page);
  const load = async () => {
    const r = await api("/api/v1/deployments?limit=100");
    clear(page).append(h("h1", {}, "Deployments"));
    if (!r.deployments.length) {
      page.append(h("p", { class: "muted" }, "No deployment recorded yet: POST /api/v1/deployments or postflight deploy."));
      return;
    }
    page.append(h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Verdict"), h("th", {}, "Job"), h("th", {}, "Version"),
        h("th", {}, "Started"), h("th", { class: "hide-narrow" }, "Why"))),
      h("tbody", {}, r.deployments.map((d) => h("tr", {},
        h("td", {}, stateBadge(d.verdict)),
        h("td", {}, d.job),
        h("td", {}, h("a", { href: route("deployment", d.id) }, d.version)),
        h("td", {}, fmtTime(d.startedAt)),
        h("td", { class: "reason hide-narrow" }, why(d))))))));
  };
  await load();
  every(load);
}

/** The verdict in words. */
function why(d) {
  if (d.verdict === "watching") {
    const failing = d.checks.filter((c) => c.state === "fail");
    return "Under watch until " + fmtTime(d.watchUntil) + ": " + d.evaluations + " of " + d.plannedEvaluations +
      " evaluations made. " + (failing.length
      ? failing.map((c) => c.name + " is failing (" + c.consecutiveFailures + " of " + d.consecutiveFailures + " in a row needed to fail)").join("; ") + "."
      : "No check is failing.");
  }
  return d.reason || d.verdict;
}

async function deploymentPage(id) {
  const page = h("div", { id: "deployment" });
  clear($main).append(page);
  const load = async () => {
    const d = await api("/api/v1/deployments/" + encodeURIComponent(id));
    clear(page);
    const link = d.url && /^https?:\/\//i.test(d.url) ? h("a", { href: d.url, rel: "noopener noreferrer" }, d.url) : d.url || "—";
    append(page, [
      h("p", {}, h("a", { href: "#/deployments" }, "← Deployments")),
      h("h1", {}, stateBadge(d.verdict), " ", d.job + " " + d.version),
      h("p", { class: "why", id: "why" }, why(d)),
      h("dl", { class: "kv" },
        h("dt", {}, "Started"), h("dd", {}, fmtTime(d.startedAt)),
        h("dt", {}, "Watch until"), h("dd", {}, fmtTime(d.watchUntil)),
        h("dt", {}, "Decided"), h("dd", {}, fmtTime(d.finishedAt)),
        h("dt", {}, "Commit"), h("dd", { class: "mono" }, d.commit || "—"),
        h("dt", {}, "Author"), h("dd", {}, d.author || "—"),
        h("dt", {}, "Link"), h("dd", { class: "mono" }, link),
        d.supersededBy ? [h("dt", {}, "Superseded by"), h("dd", {}, h("a", { href: route("deployment", d.supersededBy) }, d.supersededBy))] : null),
      h("h2", {}, "Checks"),
    ]);
    for (const c of d.checks) page.append(checkCard(c, d));
  };
  await load();
  every(load);
}

function checkCard(c, d) {
  const card = h("section", { class: "card check", "data-check": c.name },
    h("h3", {}, stateBadge(c.state), " ", c.name),
    h("p", { class: "reason" }, c.reason),
    h("dl", { class: "kv" },
      h("dt", {}, "Value"), h("dd", {}, fmtNum(c.value)),
      h("dt", {}, "Bound"), h("dd", {}, c.bound || "—"),
      h("dt", {}, "Baseline"), h("dd", {}, fmtNum(c.baseline) + " (" + c.baselinePoints + " points)"),
      h("dt", {}, "Evaluations"), h("dd", {}, c.passes + " pass, " + c.failures + " fail, " + c.nodata + " no data")));
  const hist = c.history || [];
  const box = h("div", { class: "chart" });
  card.append(box);
  if (hist.length) {
    const x = hist.map((p) => p.time);
    const flat = (v) => x.map(() => (v === null || v === undefined ? null : v));
    const series = [{ label: "value", points: { show: true } }];
    const data = [x, hist.map((p) => p.value)];
    const line = { points: { show: false } };
    if (c.max !== null && c.max !== undefined) { series.push(Object.assign({ label: "upper bound", dash: [6, 4] }, line)); data.push(flat(c.max)); }
    if (c.min !== null && c.min !== undefined) { series.push(Object.assign({ label: "lower bound", dash: [6, 4] }, line)); data.push(flat(c.min)); }
    if (c.baseline !== null && c.baseline !== undefined) { series.push(Object.assign({ label: "baseline", dash: [2, 3] }, line)); data.push(flat(c.baseline)); }
    // The watch so far: from the deployment to its decision (or now).
    const from = Date.parse(d.startedAt) / 1000;
    const to = (d.finishedAt ? Date.parse(d.finishedAt) : Math.min(Date.now(), Date.parse(d.watchUntil))) / 1000;
    setTimeout(() => chart(box, data, series, { height: 200, xRange: [from, Math.max(to, x[x.length - 1])] }), 0);
    card.append(h("details", {}, h("summary", {}, "Each evaluation (" + hist.length + ")"),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", { class: "num" }, "Value"), h("th", {}, "State"))),
        h("tbody", {}, hist.slice().reverse().map((p) => h("tr", {},
          h("td", {}, fmtTime(p.time)), h("td", { class: "num" }, fmtNum(p.value)), h("td", {}, stateBadge(p.state)))))))));
  } else {
    box.append(h("p", { class: "muted" }, "Not evaluated yet."));
  }
  return card;
}

// ---------------------------------------------------------------- maintenance

async function maintenancePage() {
  const page = h("div", { id: "maintenance" });
  clear($main).append(page);
  const load = async () => {
    const [m, silences] = await Promise.all([
      api("/api/v1/maintenance").then((r) => r.maintenance),
      api("/api/v1/silences").then((r) => r.silences),
    ]);
    clear(page).append(h("h1", {}, "Maintenance windows"));
    if (!m.length) {
      page.append(h("p", { class: "muted" }, "No [[maintenance]] window is configured. A one-off window is a silence made on the Alerts page."));
    } else {
      m.sort((a, b) => (b.active - a.active) || Date.parse(a.startsAt) - Date.parse(b.startsAt));
      page.append(h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "State"), h("th", {}, "Name"), h("th", {}, "Schedule"),
          h("th", {}, "Now or next"), h("th", {}, "Mutes"))),
        h("tbody", {}, m.map((w) => h("tr", { "data-maintenance": w.name },
          h("td", {}, stateBadge(w.active ? "active" : "upcoming")),
          h("td", {}, w.name),
          h("td", {}, w.schedule + " (" + w.timezone + ")"),
          h("td", {}, w.startsAt ? (w.active ? "until " + fmtTime(w.endsAt) + " (" + fmtAgo(w.endsAt) + ")"
            : fmtTime(w.startsAt) + " – " + fmtTime(w.endsAt) + " (" + fmtAgo(w.startsAt) + ")") : "—"),
          h("td", {}, h("div", { class: "chips" }, w.matchers.map((x) => h("span", { class: "chip" }, x))))))))));
    }
    const oneOff = silences.filter((s) => !(s.createdBy || "").startsWith("maintenance:") && s.status.state !== "expired");
    page.append(h("h2", {}, "Silences in force or planned"));
    page.append(silenceList(oneOff, load));
  };
  await load();
  every(load);
}

// ---------------------------------------------------------------- query

async function queryPage(params) {
  const expr = params.get("q") || "";
  const range = params.get("range") || "15m";
  const input = h("textarea", { id: "query-expr", rows: 2, "aria-label": "PromQL expression", spellcheck: "false" });
  input.value = expr;
  const rangeSel = h("select", { id: "query-range" }, Object.keys(RANGES).map((r) => h("option", { value: r, selected: r === range }, "last " + r)));
  const submit = () => {
    location.hash = "#/query?" + new URLSearchParams({ q: input.value.trim(), range: rangeSel.value });
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); } });
  const out = h("div", { id: "query-out" });
  clear($main).append(h("div", { id: "query" }, h("h1", {}, "Query"),
    h("form", { class: "card", onsubmit: (e) => { e.preventDefault(); submit(); } },
      h("label", {}, "PromQL (Enter runs, Shift+Enter for a new line)", input),
      h("div", { class: "filters" }, h("label", {}, "Range", rangeSel), h("button", { type: "submit", id: "query-run" }, "Run"))),
    out));
  clearInterval(timer);
  if (!expr) { out.append(h("p", { class: "muted" }, "Try probe_duration_seconds or up.")); return; }
  try {
    const [result, instant] = await Promise.all([
      rangeQuery(expr, RANGES[range] || 3600),
      api("/api/v1/query?query=" + encodeURIComponent(expr)),
    ]);
    const g = h("div", { class: "chart", id: "query-graph" });
    out.append(h("h2", {}, "Graph"), g);
    if (result.length) {
      const a = align(result.slice(0, 50), (s) => labelText(s.metric));
      const secs = RANGES[range] || 3600;
      chart(g, a.data, a.labels.map((l) => ({ label: l })), { xRange: [Date.now() / 1000 - secs, Date.now() / 1000], live: false });
    } else {
      g.append(h("p", { class: "muted" }, "No series in this range."));
    }
    out.append(h("h2", {}, "Table"), instantTable(instant.data));
  } catch (e) {
    out.append(h("p", { class: "error", role: "alert" }, e.message));
  }
}

function instantTable(data) {
  const rows = data.resultType === "scalar" || data.resultType === "string"
    ? [{ metric: {}, value: data.result }]
    : data.result.map((s) => ({ metric: s.metric, value: s.value || s.values[s.values.length - 1] }));
  if (!rows.length) return h("p", { class: "muted" }, "Empty result.");
  return h("div", { class: "table-wrap" }, h("table", { id: "query-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Series"), h("th", { class: "num" }, "Value"))),
    h("tbody", {}, rows.slice(0, 1000).map((r) => h("tr", {},
      h("td", { class: "mono" }, labelText(r.metric)), h("td", { class: "num" }, r.value ? String(r.value[1]) : "—"))))));
}

// ---------------------------------------------------------------- router

async function render() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(qs || "");
  const pageName = parts[0] || "overview";
  for (const a of document.querySelectorAll("nav a")) {
    const nav = a.getAttribute("data-nav");
    const current = nav === pageName || (nav === "deployments" && pageName === "deployment") || (nav === "overview" && pageName === "probe");
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  clearInterval(timer);
  charts.clear();
  document.title = "postflight · " + (parts[1] || pageName);
  try {
    switch (pageName) {
      case "overview": await overview(); break;
      case "probe": await probePage(parts[1] || ""); break;
      case "alerts": await alertsPage(); break;
      case "deployments": await deploymentsPage(); break;
      case "deployment": await deploymentPage(parts[1] || ""); break;
      case "maintenance": await maintenancePage(); break;
      case "query": await queryPage(params); break;
      default: clear($main).append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the overview")));
    }
    document.body.setAttribute("data-page", pageName);
  } catch (e) {
    showError(e);
  }
}

addEventListener("hashchange", () => { render().then(() => $main.focus({ preventScroll: true })); });
if (document.readyState === "complete") render(); else addEventListener("load", render);
