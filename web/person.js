// The person page: live vital charts from the health record (every read is logged on the
// ledger), their recent track on the map component (the position readings of the same audited
// reads), the person's open alerts, their readings with a per-record "verify against the
// ledger anchor", and, for operators, the threshold and geofence editor that deploys a
// replacement contract instance through the ledger; geofence zones are drawn on the map.

import { $, api, el, svg, state, LEVELS, hasRole, isStaff, liveLevel, short, time, message } from "./util.js";
import { MapView, mapConfig } from "./mapview.js";

const POLL_MS = 5000;
/** The API's largest `limit` on readings (`READINGS_LIMIT_MAX`). */
const READ_LIMIT = 1000;
/** Pages of READ_LIMIT one refresh reads at most to catch up with the newest readings. */
const READ_PAGES_MAX = 40;

/** The charts, in canonical metric names, with the display unit the record uses. */
const CHARTS = [
  { metric: "body-temperature", title: "Temperature", unit: "°C", digits: 1 },
  { metric: "heart-rate", title: "Heart rate", unit: "beats/min", digits: 0 },
  { metric: "spo2", title: "SpO₂", unit: "%", digits: 1 },
  { metric: "respiration-rate", title: "Respiration", unit: "breaths/min", digits: 0 },
  { metric: "rr-interval", title: "RR tachogram (ECG)", unit: "ms", digits: 0, optional: true },
];
/** Fixed-point units of thresholds (see vigil_core::Metric) per display unit. */
const SCALE = { "body-temperature": 100, "heart-rate": 10, spo2: 10, "respiration-rate": 10, "rr-interval": 1, "systolic-bp": 1 };
const THRESHOLD_FIELDS = [
  ["critical_below", "Critical below"], ["warning_below", "Warning below"],
  ["warning_above", "Warning above"], ["critical_above", "Critical above"],
];

const page = {
  person: null, obs: [], lastMs: 0, timer: null, instances: [], windowMin: 30, busy: false, verdicts: new Map(),
  /** The map of the track and the zones; `fitted` once it has shown them. */
  view: null, fitted: false,
  /** Geofence parameters as being edited, by instance (what the map and the forms show), and
   * the zones drawn or changed since they were loaded. */
  drafts: new Map(), unsaved: new Set(),
};
/** Zone names a drawing picks from: `zone-2`, `zone-3`, … */
const ZONE_NAME_PREFIX = "zone-";

export function personMetric(o) {
  return o.code?.text ?? o.code?.coding?.at(-1)?.code;
}

export async function openPerson(person, target) {
  clearInterval(page.timer);
  const fresh = page.person !== person;
  page.person = person;
  if (fresh) { page.obs = []; page.lastMs = 0; page.instances = []; }
  page.view?.destroy();
  page.view = null;
  page.fitted = false;
  page.drafts = new Map();
  page.unsaved = new Set();
  const self = state.me?.kind === "patient";
  target.replaceChildren(
    el("h2", { id: "person-title", tabindex: "-1" }, self ? "My data" : el("span", {}, "Person ", el("code", {}, short(person)))),
    el("p", { class: "muted" }, self
      ? "Your readings and alerts. Only you and your care team can see them; every read is recorded on the ledger."
      : ["Pseudonym ", el("code", {}, person), ". Opening readings is an audited access, recorded on the ledger."]),
    el("div", { id: "person-alerts" }),
    el("div", { class: "toolbar" },
      el("label", { for: "chart-window" }, "Show the last "),
      el("select", { id: "chart-window", onchange: (e) => { page.windowMin = Number(e.target.value); page.obs = []; page.lastMs = 0; poll(); } },
        [15, 30, 60, 360].map((m) => el("option", { value: m, selected: m === page.windowMin }, m < 60 ? `${m} minutes` : `${m / 60} hour${m > 60 ? "s" : ""}`))),
      el("span", { id: "charts-status", class: "muted", "aria-live": "polite" }, "Loading readings…")),
    el("div", { id: "charts", class: "charts" }),
    el("section", { "aria-labelledby": "track-title" },
      el("h3", { id: "track-title" }, self ? "Where you have been" : "Recent positions"),
      el("p", { id: "track-status", class: "muted", "aria-live": "polite" }, "Loading positions…"),
      el("div", { id: "person-map", class: "person-map" }),
      el("p", { id: "draw-status", "aria-live": "polite" })),
    el("section", { id: "editor", "aria-labelledby": "editor-title" }),
    el("section", { "aria-labelledby": "records-title" },
      el("h3", { id: "records-title" }, "Latest records"),
      el("button", { type: "button", onclick: () => renderRecords(true) }, "Show the newest records"),
      el("p", { class: "muted" }, "Each record is stored encrypted; “Verify” checks it against the Merkle root anchored on the ledger, without decrypting anything."),
      el("div", { id: "records" })));
  renderAlerts();
  renderCharts();
  await Promise.all([openTrackMap(person), poll(), loadInstances()]);
  renderTrack();
  page.timer = setInterval(() => {
    if ($("person-view").hidden || page.person !== person) { clearInterval(page.timer); return; }
    poll();
  }, POLL_MS);
}

state.onAlertsChanged.push(() => { if (!$("person-view").hidden && page.person) renderAlerts(); });

function renderAlerts() {
  const box = $("person-alerts");
  if (!box) return;
  const open = [...state.alerts.values()].filter((a) => a.person === page.person && a.status !== "resolved");
  const level = liveLevel(page.person);
  box.replaceChildren(el("p", {},
    el("span", { class: `badge level-${level}` }, level ? LEVELS[level] : "No open alert"), " ",
    open.length ? open.map((a) => `${alertWhat(a)} (${a.status}, reading at ${time(a.reading_time_ms)})`).join("; ") : ""));
}

/** What an alert is about: its reason's kind, or its instance's kind and metric. */
function alertWhat(a) {
  const i = page.instances.find((x) => x.instance === a.instance);
  if (i?.params?.kind === "threshold") return `${i.params.metric.replaceAll("-", " ")} threshold`;
  return i?.params?.kind ?? a.reason?.kind ?? "alert";
}

async function poll() {
  if (page.busy) return;
  page.busy = true;
  try {
    // The record answers oldest first: read on from the last reading until a page comes back
    // short, so the charts reach the newest readings even after a long absence.
    for (let pages = 0; pages < READ_PAGES_MAX; pages++) {
      const from = Math.max(page.lastMs + 1, Date.now() - page.windowMin * 60_000);
      const { observations } = await api("GET", `/api/people/${page.person}/readings?from_ms=${from}&limit=${READ_LIMIT}`);
      for (const o of observations) {
        const t = Date.parse(o.effectiveDateTime);
        page.lastMs = Math.max(page.lastMs, t);
        // An Observation's id is `<record>-<index>`: the record (a device's pack) is what the
        // ledger anchors, so it is what "Verify" checks.
        page.obs.push({ t, id: o.id, record: String(o.id).split("-")[0], metric: personMetric(o), value: o.valueQuantity?.value, o });
      }
      if (observations.length < READ_LIMIT) break;
    }
    const cut = Date.now() - page.windowMin * 60_000;
    page.obs = page.obs.filter((r) => r.t >= cut);
    $("charts-status").textContent = page.obs.length
      ? `${page.obs.length} readings; updated ${new Date().toLocaleTimeString()}.`
      : `No readings in the last ${page.windowMin} minutes yet.`;
    renderCharts();
    renderTrack();
    renderRecords();
  } catch (e) {
    $("charts-status").replaceChildren(el("span", { class: "error" }, e.message));
  } finally {
    page.busy = false;
  }
}

// ---------- the track and the zones on the map ----------

async function openTrackMap(person) {
  let tiles = null;
  try {
    ({ tiles } = await mapConfig());
  } catch (e) {
    $("track-status")?.replaceChildren(el("span", { class: "error" }, e.message));
    return;
  }
  const box = $("person-map");
  if (!box || page.person !== person || page.view) return;
  page.view = new MapView(box, {
    label: "Map of this person's recent positions and geofence zones; the text above it gives the latest position",
    tiles,
  });
  renderTrack();
}

/** A position Observation as [lat_udeg, lon_udeg, time, accuracy_m], or null. */
function fixOf(r) {
  const part = (code) => r.o.component?.find((c) => c.code?.coding?.some((k) => k.code === code))?.valueQuantity?.value;
  const lat = part("latitude"), lon = part("longitude");
  if (typeof lat !== "number" || typeof lon !== "number") return null;
  return [Math.round(lat * 1e6), Math.round(lon * 1e6), r.t, part("accuracy")];
}

/** The zones of the person's active geofence instances, as being edited. */
function editedZones() {
  const zones = [];
  for (const i of page.instances) {
    if (!i.active || i.params?.kind !== "geofence") continue;
    for (const z of (page.drafts.get(i.instance) ?? i.params).zones ?? []) zones.push(page.unsaved.has(z) ? { ...z, unsaved: true } : z);
  }
  return zones;
}

function renderTrack() {
  const view = page.view;
  const status = $("track-status");
  if (!view || !status) return;
  const fixes = page.obs.filter((r) => r.metric === "position").map(fixOf).filter(Boolean);
  const zones = editedZones();
  view.set({ track: fixes, zones });
  const latest = fixes.at(-1);
  status.textContent = latest
    ? `${fixes.length} position${fixes.length > 1 ? "s" : ""} in the last ${page.windowMin} minutes, drawn as a line; the latest at ${time(latest[2])}` +
      `${latest[3] !== undefined ? `, ±${latest[3]} m` : ""} (${(latest[0] / 1e6).toFixed(5)}°, ${(latest[1] / 1e6).toFixed(5)}°).`
    : `No position in the last ${page.windowMin} minutes.`;
  status.dataset.fixes = String(fixes.length);
  if (!page.fitted) {
    const points = fixes.map((f) => [f[0], f[1]]);
    for (const z of zones) {
      if (z.circle) points.push([z.circle.lat_udeg, z.circle.lon_udeg]);
      for (const v of z.polygon ?? []) points.push(v);
    }
    if (points.length) { view.fit(points); page.fitted = true; }
    else view.showWorld("No position or zone yet.");
  }
}

/** Threshold lines of the person's active threshold instances on a metric, in display units. */
function limitsFor(metric) {
  const lines = [];
  for (const i of page.instances) {
    if (!i.active || i.params?.kind !== "threshold" || i.params.metric !== metric) continue;
    for (const [field, label] of THRESHOLD_FIELDS) {
      if (i.params[field] !== undefined && i.params[field] !== null) {
        lines.push({ value: i.params[field] / SCALE[metric], label, critical: field.startsWith("critical") });
      }
    }
  }
  return lines;
}

function renderCharts() {
  const box = $("charts");
  if (!box) return;
  const charts = CHARTS.filter((c) => !c.optional || page.obs.some((r) => r.metric === c.metric));
  box.replaceChildren(...charts.map((c) => chart(c, page.obs.filter((r) => r.metric === c.metric && typeof r.value === "number"))));
}

/** Round tick values within [lo, hi]: the largest step of 5, 2 or 1 times a power of ten that
 * gives at least `wanted` ticks (so between `wanted` and about 2.5 times as many). */
export function niceTicks(lo, hi, wanted = 3) {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return [lo];
  const count = (step) => Math.floor(hi / step + 1e-9) - Math.ceil(lo / step - 1e-9) + 1;
  let power = 10 ** Math.ceil(Math.log10(span));
  let step = power;
  search: for (let decade = 0; decade < 12; decade++, power /= 10) {
    for (const s of [5 * power, 2 * power, power]) {
      step = s;
      if (count(s) >= wanted) break search;
    }
  }
  const ticks = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) ticks.push(k * step);
  return ticks;
}

/** Decimal places a tick step needs (0.5 → 1, 0.25 → 2, 20 → 0). */
function decimals(step) {
  for (let d = 0; d < 6; d++) if (Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) < 1e-6) return d;
  return 6;
}

/** A time of day in the operator's time zone, to the minute. */
function clock(t) {
  return new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** One SVG line chart with its axes, latest value and threshold lines. */
function chart(c, points) {
  const W = 360, H = 156, L = 44, R = 8, T = 18, B = 22;
  const limits = limitsFor(c.metric);
  const latest = points.at(-1);
  const figure = el("figure", { class: "chart", "data-metric": c.metric });
  const caption = el("figcaption", {}, el("strong", {}, c.title), " ",
    latest ? `${latest.value.toFixed(c.digits)} ${c.unit} at ${time(latest.t)}` : el("span", { class: "muted" }, "no reading yet"));
  if (!points.length) {
    figure.append(caption, el("div", { class: "chart-empty muted" }, "Waiting for readings…"));
    return figure;
  }
  // The window, or less while the readings cover less of it (at least a minute).
  const t1 = Date.now();
  const t0 = Math.min(t1 - 60_000, Math.max(t1 - page.windowMin * 60_000, points[0].t));
  const values = points.map((p) => p.value).concat(limits.map((l) => l.value));
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.1;
  lo -= pad; hi += pad;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.value).toFixed(1)}`).join("");
  const ticks = niceTicks(lo, hi);
  const stepDigits = Math.max(c.digits, ticks.length > 1 ? decimals(ticks[1] - ticks[0]) : 0);
  const times = [t0, (t0 + t1) / 2, t1];
  const picture = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${c.title}: ${points.length} readings, latest ${latest.value.toFixed(c.digits)} ${c.unit}, range ${Math.min(...points.map((p) => p.value)).toFixed(c.digits)} to ${Math.max(...points.map((p) => p.value)).toFixed(c.digits)}` },
    svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fff", stroke: "#d0d5db" }),
    ticks.map((v) => [
      svg("line", { x1: L - 3, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e6ea", class: "grid" }),
      svg("text", { x: L - 5, y: y(v) + 4, "text-anchor": "end", class: "axis tick" }, v.toFixed(stepDigits)),
    ]),
    svg("text", { x: L, y: T - 6, class: "axis unit" }, c.unit),
    limits.map((l) => svg("line", { x1: L, x2: W - R, y1: y(l.value), y2: y(l.value),
      stroke: l.critical ? "#c62828" : "#e0a800", "stroke-dasharray": "4 3" },
      svg("title", {}, `${l.label} ${l.value} ${c.unit}`))),
    svg("path", { d: path, fill: "none", stroke: "#12355b", "stroke-width": 1.5 }),
    times.map((t, i) => [
      svg("line", { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 3, stroke: "#8a939e" }),
      svg("text", { x: x(t), y: H - 6, "text-anchor": ["start", "middle", "end"][i], class: "axis tick" },
        i === 2 ? "now" : clock(t)),
    ]));
  figure.append(caption, picture);
  return figure;
}

function renderRecords(force = false) {
  const box = $("records");
  if (!box) return;
  // A snapshot, refreshed on request: records arrive several a second with an ECG patch.
  if (!force && box.querySelector("tbody")) return;
  const latest = page.obs.slice(-12).reverse();
  if (!latest.length) { message(box, "No records in this window."); return; }
  // Rows are kept by record: a focused button and a shown result survive live updates.
  let body = box.querySelector("tbody");
  if (!body) {
    body = el("tbody");
    box.replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Record"), el("th", { scope: "col" }, "Time"),
        el("th", { scope: "col" }, "Reading"), el("th", { scope: "col" }, "Ledger anchor"))),
      body));
  }
  const existing = new Map([...body.children].map((tr) => [tr.dataset.record, tr]));
  const rows = latest.map((r) => existing.get(String(r.id)) ?? recordRow(r));
  rows.forEach((row, i) => { if (body.children[i] !== row) body.insertBefore(row, body.children[i] ?? null); });
  while (body.children.length > rows.length) body.lastChild.remove();
}

function recordRow(r) {
  const result = el("span", { "aria-live": "polite" });
  return el("tr", { "data-record": r.id },
    el("td", {}, `#${r.id}`),
    el("td", {}, time(r.t)),
    el("td", {}, describe(r)),
    el("td", {}, el("button", { type: "button", onclick: () => verifyRecord(r.record, result, r.id) }, "Verify"), " ", result));
}

/** UCUM units as people read them. */
const FRIENDLY_UNITS = { Cel: "°C", "/min": "per minute", "beat/min": "beats/min", "{beat}/min": "beats/min",
  "{breath}/min": "breaths/min", "%": "%", "mm[Hg]": "mmHg", ms: "ms" };
const METRIC_WORDS = { "body-temperature": "temperature", "heart-rate": "heart rate", spo2: "SpO₂",
  "respiration-rate": "respiration", "rr-interval": "RR interval", "systolic-bp": "systolic pressure" };

function describe(r) {
  const ucum = r.o.valueQuantity?.code ?? r.o.valueQuantity?.unit ?? "";
  const unit = r.metric === "respiration-rate" && ucum === "/min" ? "breaths/min"
    : r.metric === "heart-rate" && ucum === "/min" ? "beats/min" : FRIENDLY_UNITS[ucum] ?? ucum;
  const what = METRIC_WORDS[r.metric] ?? r.metric;
  if (typeof r.value === "number") return `${what} ${r.value} ${unit}`;
  if (r.o.component) return `${what}: ` + r.o.component.map((c) => `${c.valueQuantity?.value ?? ""}`).join(", ");
  return r.metric;
}

export async function verifyRecord(seq, target, row = seq) {
  target.replaceChildren(el("span", { class: "muted" }, "Checking…"));
  try {
    const v = await api("GET", `/api/ehr/records/${encodeURIComponent(seq)}/verify`);
    const result = el("span", { class: v.verified ? "ok" : v.anchored ? "error" : "muted", "data-verified": String(v.verified) },
      v.verified ? `✓ Verified: ${v.detail}` : v.anchored ? `✗ ${v.detail}` : v.detail);
    if (page.verdicts.size > 1000) page.verdicts.clear();
    page.verdicts.set(String(row), result.cloneNode(true));
    // The row may have been re-rendered meanwhile: show the result in the current one.
    const current = target.isConnected ? target : document.querySelector(`#records tr[data-record="${row}"] [aria-live]`);
    current?.replaceChildren(result);
  } catch (e) {
    target.replaceChildren(el("span", { class: "error" }, e.message));
  }
}

// ---------- the threshold and geofence editor ----------

async function loadInstances() {
  const box = $("editor");
  if (!box) return;
  // The ledger lets operators, auditors, admins and the person read the instances; only
  // operators may change them (the ledger has the last word).
  const mayRead = hasRole("cdcp-operator", "auditor", "admin") || state.me?.kind === "patient";
  if (!mayRead) { box.replaceChildren(); return; }
  const editable = hasRole("cdcp-operator");
  box.replaceChildren(el("h3", { id: "editor-title" }, editable ? "Thresholds and geofences" : "Monitoring limits"),
    el("p", { class: "muted" }, "Loading monitor contracts…"));
  try {
    const { instances } = await api("GET", `/api/instances?person=${page.person}`);
    page.instances = instances;
    // Fresh from the ledger: drafts start again from what is deployed.
    page.drafts = new Map();
    page.unsaved = new Set();
    renderCharts();
    renderAlerts();
    const active = instances.filter((i) => i.active);
    box.replaceChildren(el("h3", { id: "editor-title" }, editable ? "Thresholds and geofences" : "Monitoring limits"),
      el("p", { class: "muted" }, editable
        ? "Saving deploys a replacement contract instance through the ledger: the old one is terminated and the new one deployed in one transaction, visible in the ledger explorer."
        : state.me?.kind === "patient" ? "The limits your monitoring checks; your care team sets them." : "Only operators change them."),
      el("p", { id: "editor-status", "aria-live": "polite" }),
      ...(active.length ? active.map((i) => instanceForm(i, editable)) : [el("p", { class: "muted" }, "No active monitor contract.")]));
    renderTrack();
  } catch (e) {
    box.replaceChildren(el("h3", { id: "editor-title" }, "Monitoring limits"), el("p", { class: "error" }, e.message));
  }
}

function numberField(id, label, value, attrs = {}) {
  return el("div", { class: "field" },
    el("label", { for: id }, label),
    el("input", { id, type: "number", step: "any", value: value ?? "", ...attrs }));
}

function instanceForm(instance, editable) {
  const p = instance.params ?? {};
  const id = instance.instance.slice(0, 12);
  const disabled = !editable;
  let body;
  if (p.kind === "threshold") {
    const scale = SCALE[p.metric] ?? 1;
    body = el("div", { class: "fields" }, THRESHOLD_FIELDS.map(([field, label]) =>
      numberField(`${id}-${field}`, `${label} (${unitOf(p.metric)})`, p[field] !== undefined && p[field] !== null ? p[field] / scale : "", { disabled, "data-field": field })));
  } else if (p.kind === "geofence") {
    if (!page.drafts.has(instance.instance)) page.drafts.set(instance.instance, structuredClone(p));
    const draft = page.drafts.get(instance.instance);
    body = el("div", {},
      el("div", { class: "zones" }),
      editable ? el("div", { class: "toolbar" },
        el("button", { type: "button", "data-draw": "circle", onclick: () => drawZone(instance, "circle") }, "Draw a circle zone on the map"),
        el("button", { type: "button", "data-draw": "polygon", onclick: () => drawZone(instance, "polygon") }, "Draw a polygon zone on the map"),
        el("button", { type: "button", onclick: () => page.view?.cancelDrawing() }, "Stop drawing")) : null,
      numberField(`${id}-dwell`, "Dwell before alerting (s)", (draft.dwell_ms ?? 0) / 1000, { disabled, "data-field": "dwell_s", min: 0 }),
      editable ? el("details", {}, el("summary", {}, "All parameters as JSON"),
        el("label", { for: `${id}-json` }, "Parameters"),
        el("textarea", { id: `${id}-json`, rows: 6, cols: 60, "data-json": "1" })) : null);
  } else {
    body = el("pre", { class: "params" }, JSON.stringify(p, null, 1));
  }
  const title = p.kind === "threshold" ? `${p.metric} thresholds` : p.kind === "geofence" ? "Home geofence" : p.kind;
  const form = el("form", { class: "instance", "data-instance": instance.instance, "data-kind": p.kind, "data-metric": p.metric ?? "" },
    el("h4", {}, title, " ", el("small", { class: "muted" }, `instance ${short(instance.instance)}, block ${instance.deployed_height}`)),
    body,
    editable && (p.kind === "threshold" || p.kind === "geofence")
      ? el("button", { type: "submit" }, "Save through the ledger") : null);
  form.addEventListener("submit", (e) => { e.preventDefault(); save(instance, form); });
  if (p.kind === "geofence") renderZones(instance, form, editable);
  return form;
}

/** The zones of a geofence form, from its draft: name, rule and shape (a circle in numbers,
 * the keyboard's way to edit it), with "redraw" and "remove" for operators. */
function renderZones(instance, form, editable) {
  const draft = page.drafts.get(instance.instance);
  const id = instance.instance.slice(0, 12);
  const disabled = !editable;
  const changed = (zone, part) => (e) => {
    const value = e.target.value;
    if (part === "name") {
      zone.name = value.trim();
      e.target.closest("fieldset").dataset.zoneName = zone.name;
    }
    else if (part === "rule") zone.rule = value;
    else {
      const v = Number(value);
      if (value === "" || !Number.isFinite(v)) return; // refused in words at saving
      if (part === "lat") zone.circle.lat_udeg = Math.round(v * 1e6);
      if (part === "lon") zone.circle.lon_udeg = Math.round(v * 1e6);
      if (part === "radius") zone.circle.radius_m = Math.round(v);
    }
    page.unsaved.add(zone);
    showJson(form, draft);
    renderTrack();
  };
  const box = form.querySelector(".zones");
  box.replaceChildren(...draft.zones.map((z, zi) => el("fieldset", { class: "fields", "data-zone-name": z.name },
    el("legend", {}, `Zone “${z.name}” (${z.circle ? "circle" : `polygon of ${z.polygon?.length ?? 0} vertices`})`,
      page.unsaved.has(z) ? el("span", { class: "unsaved" }, " not saved yet") : null),
    el("div", { class: "field" }, el("label", { for: `${id}-z${zi}-name` }, "Name"),
      el("input", { id: `${id}-z${zi}-name`, type: "text", value: z.name, maxlength: 64, disabled, "data-zone": zi, "data-part": "name", onchange: changed(z, "name") })),
    el("div", { class: "field" }, el("label", { for: `${id}-z${zi}-rule` }, "Rule"),
      el("select", { id: `${id}-z${zi}-rule`, disabled, "data-zone": zi, "data-part": "rule", onchange: changed(z, "rule") },
        el("option", { value: "keep-inside", selected: (z.rule ?? "keep-inside") === "keep-inside" }, "keep inside"),
        el("option", { value: "keep-outside", selected: z.rule === "keep-outside" }, "keep outside"))),
    z.circle
      ? [numberField(`${id}-z${zi}-lat`, "Centre latitude (°)", z.circle.lat_udeg / 1e6, { disabled, "data-zone": zi, "data-part": "lat", onchange: changed(z, "lat") }),
        numberField(`${id}-z${zi}-lon`, "Centre longitude (°)", z.circle.lon_udeg / 1e6, { disabled, "data-zone": zi, "data-part": "lon", onchange: changed(z, "lon") }),
        numberField(`${id}-z${zi}-r`, "Radius (m)", z.circle.radius_m, { disabled, "data-zone": zi, "data-part": "radius", min: 1, onchange: changed(z, "radius") })]
      : el("p", { class: "muted" }, "Redraw it on the map, or edit its vertices in the JSON below."),
    editable ? el("div", { class: "zone-actions" },
      el("button", { type: "button", onclick: () => drawZone(instance, z.circle ? "circle" : "polygon", z) }, `Redraw “${z.name}” on the map`),
      el("button", { type: "button", onclick: () => removeZone(instance, z) }, `Remove “${z.name}”`)) : null)));
  showJson(form, draft);
}

/** The draft as JSON in the form's text area; what is shown is remembered, so a hand edit is
 * told apart from the draft. */
function showJson(form, draft) {
  const json = form.querySelector("[data-json]");
  if (!json) return;
  json.value = JSON.stringify(draft, null, 1);
  json.dataset.shown = json.value;
}

function formOf(instance) {
  return document.querySelector(`form.instance[data-instance="${instance.instance}"]`);
}

/** Draws a zone on the map: a new one, or `zone`'s new shape. */
async function drawZone(instance, kind, zone = null) {
  const status = $("draw-status");
  const view = page.view;
  if (!view || !status) return;
  const box = $("person-map");
  box.scrollIntoView({ block: "nearest" });
  box.focus({ preventScroll: true });
  status.replaceChildren(el("span", { class: "muted" }, kind === "circle"
    ? "Drawing a circle: press at its centre on the map and drag out to its radius. Escape cancels."
    : "Drawing a polygon: click each vertex on the map, then the first one again (or press Enter, or double-click). Backspace takes the last vertex back; Escape cancels."));
  const shape = await view.draw(kind, (text) => status.replaceChildren(el("span", { class: "muted" }, text)));
  if (!shape) { status.replaceChildren(el("span", { class: "muted" }, "Drawing cancelled.")); return; }
  const draft = page.drafts.get(instance.instance);
  if (!draft) return;
  if (zone && draft.zones.includes(zone)) {
    delete zone.circle;
    delete zone.polygon;
    Object.assign(zone, shape);
  } else {
    const taken = new Set(draft.zones.map((z) => z.name));
    let n = draft.zones.length + 1;
    while (taken.has(`${ZONE_NAME_PREFIX}${n}`)) n++;
    zone = { name: `${ZONE_NAME_PREFIX}${n}`, rule: "keep-inside", level: 2, ...shape };
    draft.zones.push(zone);
  }
  page.unsaved.add(zone);
  const form = formOf(instance);
  if (form) renderZones(instance, form, true);
  renderTrack();
  const what = shape.circle ? `a circle of ${shape.circle.radius_m} m` : `a polygon of ${shape.polygon.length} vertices`;
  status.replaceChildren(el("span", { class: "ok", "data-drawn": zone.name }, `Zone “${zone.name}” drawn: ${what}. `),
    "Name it and choose its rule below, then save through the ledger to deploy it.");
  form?.querySelector(`fieldset[data-zone-name="${CSS.escape(zone.name)}"] input[data-part=name]`)?.focus();
}

function removeZone(instance, zone) {
  const draft = page.drafts.get(instance.instance);
  const status = $("draw-status");
  if (!draft) return;
  if (draft.zones.length <= 1) {
    status.replaceChildren(el("span", { class: "error" }, "A geofence keeps at least one zone: draw another first, or change this one."));
    return;
  }
  draft.zones = draft.zones.filter((z) => z !== zone);
  const form = formOf(instance);
  if (form) renderZones(instance, form, true);
  renderTrack();
  status.replaceChildren(el("span", { class: "muted" }, `Zone “${zone.name}” removed from the draft; save through the ledger to deploy the change.`));
}

function unitOf(metric) {
  return CHARTS.find((c) => c.metric === metric)?.unit ?? "";
}

function readParams(instance, form) {
  const p = structuredClone(instance.params);
  if (p.kind === "threshold") {
    const scale = SCALE[p.metric] ?? 1;
    for (const input of form.querySelectorAll("[data-field]")) {
      const field = input.dataset.field;
      if (input.value === "") delete p[field];
      else {
        const v = Number(input.value);
        if (!Number.isFinite(v)) throw new Error(`${field.replace("_", " ")} must be a number.`);
        p[field] = Math.round(v * scale);
      }
    }
    return p;
  }
  // A geofence: its draft (drawn, and kept in step with the zone fields), or the JSON when
  // edited by hand.
  const json = form.querySelector("[data-json]");
  let q = structuredClone(page.drafts.get(instance.instance) ?? p);
  if (json && json.value.trim() !== (json.dataset.shown ?? "").trim()) {
    try { q = JSON.parse(json.value); } catch { throw new Error("The parameters are not valid JSON."); }
  } else {
    for (const input of form.querySelectorAll("[data-zone]")) {
      const zone = q.zones?.[Number(input.dataset.zone)];
      if (!zone) continue;
      const part = input.dataset.part;
      if (part === "name") {
        if (!input.value.trim()) throw new Error("Every zone needs a name.");
        zone.name = input.value.trim();
        continue;
      }
      if (part === "rule") { zone.rule = input.value; continue; }
      if (!zone.circle) continue;
      const v = Number(input.value);
      if (input.value === "" || !Number.isFinite(v)) throw new Error("Every circle needs a centre and a radius.");
      if (part === "lat") zone.circle.lat_udeg = Math.round(v * 1e6);
      if (part === "lon") zone.circle.lon_udeg = Math.round(v * 1e6);
      if (part === "radius") zone.circle.radius_m = Math.round(v);
    }
  }
  const dwell = form.querySelector("[data-field=dwell_s]");
  if (dwell && dwell.value !== "") q.dwell_ms = Math.round(Number(dwell.value) * 1000);
  return q;
}

async function save(instance, form) {
  const status = $("editor-status");
  const button = form.querySelector("button[type=submit]");
  let params;
  try { params = readParams(instance, form); } catch (e) { status.replaceChildren(el("span", { class: "error" }, e.message)); return; }
  button.disabled = true;
  status.replaceChildren(el("span", { class: "muted" }, "Submitting the replacement to the ledger…"));
  try {
    const reply = await api("PUT", `/api/instances/${instance.instance}`, { person: instance.person, device: instance.device, params });
    status.replaceChildren(el("span", { class: "muted" }, "Submitted; waiting for the ledger to finalize it…"));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      await new Promise((ok) => setTimeout(ok, 700));
      const { instances } = await api("GET", `/api/instances?person=${page.person}`);
      const fresh = instances.find((i) => i.instance === reply.instance && i.active);
      if (fresh) {
        await loadInstances();
        $("editor-status").replaceChildren(el("span", { class: "ok", "data-deployed-height": fresh.deployed_height },
          `✓ Saved: instance ${short(fresh.instance)} deployed in block ${fresh.deployed_height}. `),
          el("a", { href: `#ledger/${fresh.deployed_height}` }, `See block ${fresh.deployed_height} in the ledger explorer`));
        return;
      }
    }
    status.replaceChildren(el("span", { class: "error" }, "The ledger has not finalized the change within a minute. It may still arrive; reload to check."));
  } catch (e) {
    status.replaceChildren(el("span", { class: "error" }, e.message));
  } finally {
    button.disabled = false;
  }
}


