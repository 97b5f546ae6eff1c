// Vigil dashboard: plain ES module, no build step. Talks to the node's JSON API with the
// bearer token the user pasted (kept in sessionStorage only), and follows the live alert
// stream over server-sent events.

const $ = (id) => document.getElementById(id);
const state = { token: null, me: null, alerts: new Map(), source: null, blocksTimer: null };
const LEVELS = { 0: "OK", 1: "Warning", 2: "Critical" };
const ORDERS = [
  ["call", "Call the person"],
  ["return-to-quarantine-area", "Return to quarantine area"],
  ["hospital-transfer", "Hospital transfer"],
];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** Errors in plain words, from an HTTP status and the API's `{error, message}` body. */
function plain(status, body) {
  if (status === 0) return "The Vigil node cannot be reached. Is `vigil demo` still running?";
  if (status === 401) return "That token was not recognised. Check it and log in again.";
  if (status === 403) return "Your role does not allow this." + (body?.message ? ` (${body.message})` : "");
  if (status === 409) return "The ledger refused this: " + (body?.message ?? "it conflicts with what is already recorded.");
  if (status === 404) return body?.message ?? "Not found.";
  if (status >= 500) return "The node could not do this right now. Try again in a moment.";
  return body?.message ?? `Request failed (${status}).`;
}

async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: {
        Authorization: `Bearer ${state.token}`,
        ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new Error(plain(0));
  }
  let json = null;
  try { json = await response.json(); } catch { /* empty body */ }
  if (!response.ok) {
    const error = new Error(plain(response.status, json));
    error.status = response.status;
    throw error;
  }
  return json;
}

const short = (hex) => (hex ? `${hex.slice(0, 8)}…` : "");
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "");
const isStaff = () => state.me?.kind === "staff";
const canAct = () => isStaff() && state.me.roles.some((r) => r === "cdcp-operator" || r === "admin");

// ---------- login ----------

async function login(token) {
  state.token = token;
  const me = await api("GET", "/api/me");
  state.me = me;
  sessionStorage.setItem("vigil-token", token);
  $("login-view").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  for (const a of document.querySelectorAll("[data-staff]")) a.hidden = !isStaff();
  for (const a of document.querySelectorAll("[data-patient]")) a.hidden = isStaff();
  const roles = isStaff() ? me.roles.join(", ") || "no role yet" : "patient";
  $("whoami").textContent = `${me.name} (${roles})`;
  startStream();
  await loadAlerts();
  route();
}

function logout() {
  sessionStorage.removeItem("vigil-token");
  state.source?.close();
  location.hash = "";
  location.reload();
}

// ---------- alerts ----------

function alertItem(alert) {
  const level = alert.level ?? 0;
  const what = alert.reason?.kind ? `${alert.reason.kind}` : "monitor";
  const detail = alert.reason ? describeReason(alert.reason) : "";
  const actions = el("div", { class: "actions" });
  if (canAct() && alert.status !== "resolved") {
    if (alert.status === "open") {
      actions.append(el("button", { type: "button", onclick: () => act(alert, "acknowledge") }, "Acknowledge"));
    }
    const select = el("select", { "aria-label": "Order to give" },
      ORDERS.map(([v, label]) => el("option", { value: v }, label)));
    actions.append(select,
      el("button", { type: "button", onclick: () => act(alert, "order", { kind: select.value }) }, "Order"),
      el("button", { type: "button", onclick: () => act(alert, "resolve", {}) }, "Resolve"));
  }
  return el("li", { class: `alert level-${level}`, "data-alert": alert.id, "data-status": alert.status },
    el("div", {},
      el("span", { class: `badge level-${level}` }, LEVELS[level] ?? `Level ${level}`), " ",
      el("strong", {}, what), " — person ", el("code", {}, alert.person), " ",
      el("span", { class: "status" }, `${alert.status ?? "open"} · reading at ${time(alert.reading_time_ms)}`),
      detail ? el("div", { class: "muted" }, detail) : null),
    actions);
}

function describeReason(reason) {
  try {
    const parts = Object.entries(reason).filter(([k]) => k !== "kind")
      .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
    return parts.join(", ");
  } catch { return ""; }
}

function renderAlerts() {
  const list = $("alert-list");
  list.setAttribute("aria-busy", "false");
  const alerts = [...state.alerts.values()]
    .filter((a) => a.status !== "resolved")
    .sort((a, b) => (b.level - a.level) || ((b.reading_time_ms ?? 0) - (a.reading_time_ms ?? 0)))
    .slice(0, 300);
  list.replaceChildren(...(alerts.length
    ? alerts.map(alertItem)
    : [el("li", { class: "muted" }, "No open alerts. New ones appear here as soon as the ledger finalizes them.")]));
}

async function loadAlerts() {
  try {
    const { alerts } = await api("GET", "/api/alerts");
    for (const a of alerts) {
      const known = state.alerts.get(a.id);
      state.alerts.set(a.id, { ...a, reason: known?.reason });
    }
    renderAlerts();
  } catch (e) {
    $("alert-list").replaceChildren(el("li", { class: "error" }, e.message));
  }
}

async function act(alert, action, body) {
  $("action-error").textContent = "";
  try {
    await api("POST", `/api/alerts/${alert.id}/${action}`, body);
    $("stream-state").textContent = `${action} sent; waiting for the ledger to finalize it…`;
  } catch (e) {
    $("action-error").textContent = e.message;
  }
}

let renderQueued = false;
function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; renderAlerts(); if (isStaff()) renderMap(); });
}

function startStream() {
  const source = new EventSource(`/api/alerts/stream?token=${encodeURIComponent(state.token)}`);
  state.source = source;
  source.onopen = () => { $("stream-state").textContent = "Live: new alerts appear as soon as they are finalized."; };
  source.onerror = () => { $("stream-state").textContent = "Live feed interrupted; reconnecting…"; };
  source.addEventListener("alert", (e) => {
    const a = JSON.parse(e.data);
    state.alerts.set(a.id, { ...a, status: "open" });
    queueRender();
  });
  source.addEventListener("alert-status", (e) => {
    const s = JSON.parse(e.data);
    const known = state.alerts.get(s.id);
    if (known) known.status = s.status;
    $("stream-state").textContent = `Alert ${short(s.id)} is now ${s.status}.`;
    queueRender();
  });
  source.addEventListener("block", () => {
    if (location.hash === "#ledger" && !state.blocksTimer) {
      state.blocksTimer = setTimeout(() => { state.blocksTimer = null; loadBlocks(); }, 1000);
    }
  });
}

// ---------- people ----------

let people = [];

async function loadPeople() {
  const body = $("people-body");
  try {
    ({ people } = await api("GET", "/api/people"));
  } catch (e) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "error" }, e.message)));
    return;
  }
  if (!people.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "Nobody is registered yet.")));
    return;
  }
  renderMap();
  body.replaceChildren(...people.slice(0, 2000).map((p) => {
    const level = levelOf(p);
    return el("tr", {},
      el("td", {}, el("code", {}, p.person)),
      el("td", {}, String(p.devices.filter((d) => d.active).length)),
      el("td", {}, el("span", { class: `badge level-${level}` }, level ? LEVELS[level] : "No alert")),
      el("td", {}, el("button", { type: "button", onclick: () => showReadings(p.person, $("readings")) }, "Latest readings")));
  }));
}

function levelOf(p) {
  let level = p.open_alert_level ?? 0;
  for (const a of state.alerts.values()) {
    if (a.person === p.person && a.status !== "resolved") level = Math.max(level, a.level);
  }
  return level;
}

/** One square per person, coloured by alert state: a compact overview of the whole fleet. */
function renderMap() {
  const svg = $("people-map");
  if (!people.length) return;
  const cols = Math.max(20, Math.ceil(Math.sqrt(people.length * 6)));
  const size = 400 / cols;
  const rows = Math.ceil(people.length / cols);
  svg.setAttribute("viewBox", `0 0 400 ${Math.max(size, rows * size)}`);
  const ns = "http://www.w3.org/2000/svg";
  const colours = ["#66bb6a", "#f9a825", "#c62828"];
  const squares = people.map((p, i) => {
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", (i % cols) * size + 0.5);
    r.setAttribute("y", Math.floor(i / cols) * size + 0.5);
    r.setAttribute("width", size - 1);
    r.setAttribute("height", size - 1);
    r.setAttribute("fill", colours[levelOf(p)] ?? "#999");
    const t = document.createElementNS(ns, "title");
    t.textContent = `${p.person}: ${LEVELS[levelOf(p)]}`;
    r.append(t);
    return r;
  });
  svg.replaceChildren(...squares);
}

function observationText(o) {
  const name = o.code?.coding?.[0]?.display ?? o.code?.text ?? "reading";
  if (o.valueQuantity) return `${name}: ${o.valueQuantity.value} ${o.valueQuantity.unit ?? ""}`;
  if (o.component) {
    return `${name}: ` + o.component.map((c) => `${c.code?.coding?.[0]?.code ?? ""} ${c.valueQuantity?.value ?? ""}`).join(", ");
  }
  return name;
}

async function showReadings(person, target) {
  target.replaceChildren(el("p", { class: "muted" }, "Loading readings…"));
  try {
    const from = Date.now() - 15 * 60 * 1000;
    const { observations } = await api("GET", `/api/people/${person}/readings?from_ms=${from}&limit=200`);
    const latest = observations.slice(-30).reverse();
    target.replaceChildren(
      el("h3", {}, `Latest readings of ${short(person)}`),
      latest.length
        ? el("ul", {}, latest.map((o) => el("li", {}, `${new Date(o.effectiveDateTime).toLocaleTimeString()} — ${observationText(o)}`)))
        : el("p", { class: "muted" }, "No readings in the last 15 minutes."));
  } catch (e) {
    target.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

// ---------- ledger ----------

async function loadBlocks() {
  try {
    const { tip, blocks } = await api("GET", "/api/ledger/blocks?limit=20");
    $("ledger-tip").textContent = `Finalized height ${tip}. Select a block to see its transactions and certificate.`;
    $("blocks-body").replaceChildren(...(blocks.length ? blocks.map((b) =>
      el("tr", {},
        el("td", {}, el("button", { type: "button", onclick: () => showBlock(b.height), "aria-label": `Block ${b.height}` }, String(b.height))),
        el("td", {}, new Date(b.timestamp_ms).toLocaleTimeString()),
        el("td", {}, String(b.tx_count)),
        el("td", {}, el("code", {}, b.digest)))) : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No block finalized yet."))]));
  } catch (e) {
    $("ledger-tip").textContent = "";
    $("blocks-body").replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "error" }, e.message)));
  }
}

async function showBlock(height) {
  const target = $("block-detail");
  target.replaceChildren(el("p", { class: "muted" }, "Loading block…"));
  try {
    const b = await api("GET", `/api/ledger/blocks/${height}`);
    target.replaceChildren(
      el("h3", {}, `Block ${b.height}`),
      el("p", {}, "Parent ", el("code", {}, b.parent), el("br"), "State root ", el("code", {}, b.state_root),
        el("br"), b.certificate.present ? "Finalization certificate present." : `Certificate: ${b.certificate.note}`),
      b.txs.length
        ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Kind"), el("th", {}, "Id"), el("th", {}, "Signer"))),
          el("tbody", {}, b.txs.map((t) => el("tr", {}, el("td", {}, t.kind), el("td", {}, el("code", {}, short(t.id))), el("td", {}, el("code", {}, short(t.signer)))))))
        : el("p", { class: "muted" }, "This block carries no transaction."));
  } catch (e) {
    target.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

// ---------- routing ----------

function route() {
  if (!state.me) return;
  const views = { alerts: "alerts-view", people: "people-view", ledger: "ledger-view", mine: "mine-view" };
  let page = location.hash.slice(1) || "alerts";
  if (!isStaff() && (page === "people" || page === "ledger")) page = "alerts";
  if (isStaff() && page === "mine") page = "alerts";
  for (const [name, id] of Object.entries(views)) $(id).hidden = name !== page;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#${page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (page === "people") loadPeople();
  if (page === "ledger") loadBlocks();
  if (page === "mine") showReadings(state.me.person, $("my-readings"));
}

window.addEventListener("hashchange", route);
$("logout").addEventListener("click", logout);
$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const token = $("token").value.trim();
  try {
    await login(token);
    $("main").focus();
  } catch (e) {
    state.token = null;
    $("login-error").textContent = e.message;
  }
});
const saved = sessionStorage.getItem("vigil-token");
if (saved) login(saved).catch(() => sessionStorage.removeItem("vigil-token"));
