// Vigil dashboard: plain ES modules, no build step. Talks to the node's JSON API with the
// bearer token the user pasted (kept in sessionStorage only), and follows the live alert
// stream over server-sent events. Roles are enforced by the node; the page only hides what
// a role cannot use.

import { $, api, el, state, LEVELS, short, time, isStaff, hasRole, canAct, liveLevels, personLink } from "./util.js";
import { initMap, openMap } from "./map.js";
import { openPerson, verifyRecord } from "./person.js";
import { openQueries } from "./query.js";

const ORDERS = [
  ["call", "Call the person"],
  ["return-to-quarantine-area", "Return to quarantine area"],
  ["hospital-transfer", "Hospital transfer"],
];
/** Alerts shown at most in the feed (newest first); the count says how many there are. */
const FEED_MAX = 200;
const PEOPLE_ROWS_MAX = 500;

// For measurements (web/tests/scale.mjs): when each alert id first entered the DOM, and
// when its event arrived with the node's finalization time.
window.__vigilSeen = new Map();
window.__vigilArrived = new Map();

// ---------- login ----------

function rolesOf(me) {
  return me.kind === "patient" ? ["patient"] : me.roles;
}

async function login(token) {
  state.token = token;
  const me = await api("GET", "/api/me");
  state.me = me;
  sessionStorage.setItem("vigil-token", token);
  $("login-view").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  const roles = rolesOf(me);
  for (const a of document.querySelectorAll("#nav a")) {
    a.hidden = !a.dataset.roles.split(" ").some((r) => roles.includes(r));
  }
  $("whoami").textContent = `${me.name} (${isStaff() ? me.roles.join(", ") || "no role yet" : "patient"})`;
  if (mayReadAlerts()) {
    startStream();
    await loadAlerts();
  }
  route();
}

const mayReadAlerts = () => !isStaff() || hasRole("cdcp-operator", "auditor", "admin");

function logout() {
  sessionStorage.removeItem("vigil-token");
  state.source?.close();
  location.hash = "";
  location.reload();
}

// ---------- alerts ----------

function alertItem(alert) {
  const level = alert.level ?? 0;
  const what = alert.reason?.kind ?? "monitor alert";
  const detail = alert.reason ? describeReason(alert.reason) : "";
  const actions = el("div", { class: "actions" });
  if (canAct() && alert.status !== "resolved") {
    if (alert.status === "open") {
      actions.append(el("button", { type: "button", onclick: (e) => act(alert, "acknowledge", undefined, e.target) }, "Acknowledge"));
    }
    const select = el("select", { "aria-label": `Order for alert ${short(alert.id)}` },
      ORDERS.map(([v, label]) => el("option", { value: v }, label)));
    actions.append(select,
      el("button", { type: "button", onclick: (e) => act(alert, "order", { kind: select.value }, e.target) }, "Order"),
      el("button", { type: "button", onclick: (e) => act(alert, "resolve", {}, e.target) }, "Resolve"));
  }
  const who = isStaff() ? ["person ", personLink(alert.person)] : ["you"];
  const orders = alert.orders?.length ? ` · ordered: ${alert.orders.map((o) => o.kind).join(", ")}` : "";
  // An escalation is a ledger transaction: once its block is known, the badge links to it.
  const escalatedText = `escalated ×${alert.escalations}: not acknowledged in time`;
  const escalated = !alert.escalations ? null : alert.escalatedHeight
    ? el("a", { class: "escalated", "data-escalations": alert.escalations, href: `#ledger/${alert.escalatedHeight}` }, escalatedText)
    : el("span", { class: "escalated", "data-escalations": alert.escalations }, escalatedText);
  const reminded = alert.reminders ? ` · person reminded ×${alert.reminders}` : "";
  // A no-signal alert is the gateway's word (silence cannot be signed); every other alert was
  // re-derived by each validator from the device's signed readings.
  const basis = alert.basis === "attested"
    ? el("span", { class: "basis attested", title: "No signed reading can show silence: this alert is the gateway's attestation" }, "attested by the gateway")
    : alert.basis === "device-signed"
      ? el("span", { class: "basis", title: "Every validator re-derived this alert from the device's signed readings" }, "device-signed")
      : null;
  return el("li", { class: `alert level-${level}`, "data-alert": alert.id, "data-status": alert.status },
    el("div", {},
      el("span", { class: `badge level-${level}` }, LEVELS[level] ?? `Level ${level}`), " ",
      el("strong", {}, what), " — ", ...who, " ",
      el("span", { class: "status" }, `${alert.status ?? "open"} · reading at ${time(alert.reading_time_ms)}${alert.height ? ` · block ${alert.height}` : ""}${orders}${reminded}`),
      basis ? " · " : null, basis,
      escalated ? " · " : null, escalated,
      detail ? el("div", { class: "muted" }, detail) : null),
    actions);
}

/** Canonical fixed-point units per display unit, and the unit (see vigil_core::Metric). */
const METRIC_UNITS = {
  "body-temperature": [100, "°C"], "heart-rate": [10, "beats/min"], spo2: [10, "%"],
  "respiration-rate": [10, "breaths/min"], "systolic-bp": [1, "mmHg"], "rr-interval": [1, "ms"],
};

function describeReason(reason) {
  if (reason.kind === "threshold" && METRIC_UNITS[reason.metric]) {
    const [scale, unit] = METRIC_UNITS[reason.metric];
    return `${reason.metric.replaceAll("-", " ")} ${reason.value / scale} ${unit} (${String(reason.band).replaceAll("-", " ")})`;
  }
  if (reason.kind === "no-signal") {
    const minutes = reason.silence_ms === null || reason.silence_ms === undefined ? null : Math.floor(reason.silence_ms / 60_000);
    const last = reason.last_seen_ms ? `last reading at ${time(reason.last_seen_ms)}` : "no reading yet";
    return minutes === null ? `no signal: ${last}` : `no signal for ${minutes} min (${last})`;
  }
  if (reason.kind === "heart-rhythm" && reason.irregular_permille !== undefined && reason.irregular_permille !== null) {
    return `RR irregularity ${reason.irregular_permille / 10} %${reason.irregular ? ": irregular rhythm" : ""}`;
  }
  if (typeof reason.text === "string") return reason.text;
  try {
    return Object.entries(reason).filter(([k]) => k !== "kind")
      .map(([k, v]) => `${k.replaceAll("_", " ")}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
      .join(", ");
  } catch { return ""; }
}

function renderAlerts() {
  const list = $("alert-list");
  list.setAttribute("aria-busy", "false");
  const filter = $("alert-filter").value;
  const open = [...state.alerts.values()].filter((a) => a.status !== "resolved");
  const shown = open
    .filter((a) => filter === "all" || (filter === "2" ? a.level === 2 : a.status === "open"))
    .sort((a, b) => ((b.height ?? b.raised_height ?? 0) - (a.height ?? a.raised_height ?? 0))
      || ((b.reading_time_ms ?? 0) - (a.reading_time_ms ?? 0)));
  $("alert-count").textContent = `${shown.length} of ${open.length} open alerts` + (shown.length > FEED_MAX ? `; the newest ${FEED_MAX} are listed` : "");
  // Keep the rows that did not change, so focus and selections survive live updates.
  const existing = new Map([...list.querySelectorAll("li[data-alert]")].map((li) => [li.dataset.alert, li]));
  const rows = shown.slice(0, FEED_MAX).map((a) => {
    const key = `${a.status}|${a.level}|${a.orders?.length ?? 0}|${a.reason ? 1 : 0}|${a.escalations ?? 0}|${a.reminders ?? 0}`;
    const old = existing.get(a.id);
    if (old && old.dataset.key === key) return old;
    const li = alertItem(a);
    li.dataset.key = key;
    return li;
  });
  if (!rows.length) {
    list.replaceChildren(el("li", { class: "muted" }, open.length
      ? "No alert matches this filter."
      : "No open alerts. New ones appear here as soon as the ledger finalizes them."));
  } else {
    // Move nodes only where the order changed.
    rows.forEach((row, i) => { if (list.children[i] !== row) list.insertBefore(row, list.children[i] ?? null); });
    while (list.children.length > rows.length) list.lastChild.remove();
  }
  const now = Date.now();
  for (const row of rows) {
    if (!window.__vigilSeen.has(row.dataset.alert)) window.__vigilSeen.set(row.dataset.alert, now);
  }
}

async function loadAlerts() {
  try {
    const { alerts } = await api("GET", "/api/alerts");
    for (const a of alerts) {
      const known = state.alerts.get(a.id);
      // The listing carries each alert's reason from the health record (staff only), so a
      // reload, or an alert raised before the page opened, still says what fired.
      state.alerts.set(a.id, { ...a, height: a.raised_height, reason: a.reason ?? known?.reason });
    }
    renderAlerts();
    alertsChanged();
  } catch (e) {
    $("alert-list").replaceChildren(el("li", { class: "error" }, e.message));
  }
}

async function act(alert, action, body, button) {
  $("action-error").textContent = "";
  if (button) button.disabled = true;
  try {
    await api("POST", `/api/alerts/${alert.id}/${action}`, body);
    $("stream-state").textContent = `${action === "acknowledge" ? "Acknowledgement" : action === "order" ? "Order" : "Resolution"} sent; waiting for the ledger to finalize it…`;
    watchActions();
  } catch (e) {
    $("action-error").textContent = e.message;
    if (button) button.disabled = false;
  }
}

let renderQueued = false;
function alertsChanged() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    if (!$("alerts-view").hidden) renderAlerts();
    for (const f of state.onAlertsChanged) f();
  });
}

function startStream() {
  const source = new EventSource(`/api/alerts/stream?token=${encodeURIComponent(state.token)}`);
  state.source = source;
  source.onopen = () => {
    $("stream-state").textContent = "Live: new alerts appear as soon as the ledger finalizes them.";
  };
  source.onerror = () => { $("stream-state").textContent = "Live feed interrupted; reconnecting…"; };
  source.addEventListener("alert", (e) => {
    const a = JSON.parse(e.data);
    if (window.__vigilArrived.size < 100_000) window.__vigilArrived.set(a.id, { finalized: a.finalized_ms, arrived: Date.now() });
    const known = state.alerts.get(a.id);
    state.alerts.set(a.id, { ...known, ...a, status: known?.status ?? "open" });
    alertsChanged();
  });
  source.addEventListener("alert-status", (e) => {
    const s = JSON.parse(e.data);
    const known = state.alerts.get(s.id);
    if (known) known.status = s.status;
    $("stream-state").textContent = `Alert ${short(s.id)} is now ${s.status}.`;
    if (s.status !== "resolved" && isStaff()) refreshAlert(s.id);
    alertsChanged();
  });
  source.addEventListener("alert-escalated", (e) => {
    const s = JSON.parse(e.data);
    const known = state.alerts.get(s.id);
    if (known) { known.escalations = s.step; known.level = s.level; known.escalatedHeight = s.height; }
    $("stream-state").textContent = `Alert ${short(s.id)} was escalated (step ${s.step}): nobody acknowledged it in time.`;
    alertsChanged();
  });
  source.addEventListener("alert-reminder", (e) => {
    const s = JSON.parse(e.data);
    const known = state.alerts.get(s.id);
    if (known) { known.reminders = s.count; alertsChanged(); }
  });
  source.addEventListener("block", (e) => {
    const b = JSON.parse(e.data);
    state.tip = b.height;
    if (!$("ledger-view").hidden && ledger.from === null) {
      clearTimeout(ledger.timer);
      ledger.timer = setTimeout(loadBlocks, 1000);
    }
  });
}

/** After an order, the alert's record lists it: fetch it to show the orders. */
async function refreshAlert(id) {
  try {
    const { alerts } = await api("GET", "/api/alerts?reasons=false");
    const fresh = alerts.find((a) => a.id === id);
    const known = state.alerts.get(id);
    if (fresh && known) { known.orders = fresh.orders; alertsChanged(); }
  } catch { /* the live state is still right; orders show on the next load */ }
}

// ---------- the operator's own actions ----------

/** Every action the API accepted stays listed until the ledger settles it: pending, then
 *  finalized, or failed with the ledger's reason (nothing is lost silently after a 202). */
const ACTION_NAMES = { acknowledge: "Acknowledge", order: "Order", resolve: "Resolve" };
let actionsTimer = null;

async function watchActions() {
  clearTimeout(actionsTimer);
  let actions;
  try {
    ({ actions } = await api("GET", "/api/actions"));
  } catch {
    actionsTimer = setTimeout(watchActions, 3000);
    return;
  }
  const recent = actions.filter((a) => a.status !== "finalized" || Date.now() - a.submitted_ms < 60_000).slice(0, 10);
  $("actions-panel").hidden = recent.length === 0;
  $("action-list").replaceChildren(...recent.map((a) => el("li", { "data-action": a.action, "data-status": a.status, "data-tx": a.tx },
    el("strong", {}, ACTION_NAMES[a.action] ?? a.action), ` alert ${short(a.alert ?? "")} · `,
    a.status === "pending" ? "waiting for the ledger…"
      : a.status === "finalized" ? `finalized in block ${a.height}`
        : el("span", { class: "error" }, `failed: ${a.reason}`))));
  const failed = actions.find((a) => a.status === "failed" && Date.now() - a.submitted_ms < 120_000);
  if (failed) $("action-error").textContent = `${ACTION_NAMES[failed.action] ?? failed.action} of alert ${short(failed.alert ?? "")} failed: ${failed.reason}`;
  if (actions.some((a) => a.status === "pending")) actionsTimer = setTimeout(watchActions, 1500);
}

// ---------- people ----------

let people = [];

async function loadPeople() {
  const body = $("people-body");
  try {
    ({ people } = await api("GET", "/api/people"));
  } catch (e) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 3, class: "error" }, e.message)));
    return;
  }
  renderPeople();
}

function renderPeople() {
  const body = $("people-body");
  if (!people.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 3, class: "muted" }, "Nobody is registered yet.")));
    $("people-count").textContent = "";
    return;
  }
  const needle = $("people-filter").value.trim().toLowerCase();
  const alertedOnly = $("people-alerted").checked;
  const live = liveLevels();
  const rows = [];
  let matched = 0;
  for (const p of people) {
    const level = live.get(p.person) ?? p.open_alert_level ?? 0;
    if (needle && !p.person.startsWith(needle)) continue;
    if (alertedOnly && !level) continue;
    matched++;
    if (rows.length >= PEOPLE_ROWS_MAX) continue;
    rows.push(el("tr", {},
      el("td", {}, el("a", { href: `#person/${p.person}`, class: "mono" }, p.person)),
      el("td", {}, `${p.devices.filter((d) => d.active).length} active`),
      el("td", {}, el("span", { class: `badge level-${level}` }, level ? LEVELS[level] : "No alert"))));
  }
  $("people-count").textContent = `${matched} of ${people.length} people` + (matched > rows.length ? `; the first ${rows.length} are listed, narrow the search to see others` : "");
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 3, class: "muted" }, "Nobody matches."))]));
}

// ---------- ledger explorer ----------

const ledger = { from: null, oldest: null, timer: null, shown: null };

async function loadBlocks() {
  try {
    const query = ledger.from === null ? "" : `&from=${ledger.from}`;
    const { tip, blocks } = await api("GET", `/api/ledger/blocks?limit=15${query}`);
    ledger.oldest = blocks.at(-1)?.height ?? null;
    $("ledger-tip").textContent = `Finalized height ${tip}. Select a block to see its transactions and certificate, and to verify it.`;
    $("blocks-body").replaceChildren(...(blocks.length ? blocks.map((b) =>
      el("tr", { class: b.height === ledger.shown ? "selected" : "" },
        el("td", {}, el("a", { href: `#ledger/${b.height}`, "aria-label": `Block ${b.height}` }, String(b.height))),
        el("td", {}, new Date(b.timestamp_ms).toLocaleTimeString()),
        el("td", {}, String(b.tx_count)),
        el("td", {}, el("code", {}, short(b.digest))))) : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No block finalized yet."))]));
  } catch (e) {
    $("ledger-tip").textContent = "";
    $("blocks-body").replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "error" }, e.message)));
  }
}

const TX_LABELS = {
  ReplaceInstance: "contract instance replaced", DeployInstance: "contract instance deployed",
  TerminateInstance: "contract instance terminated", Alert: "alert raised", Acknowledge: "alert acknowledged",
  Order: "order given", Resolve: "alert resolved", EhrAnchor: "health-record anchor", EhrAccess: "health-record read",
  RegisterPerson: "person registered", EnrollDevice: "device enrolled", RevokeDevice: "device revoked",
  GrantRole: "role granted", RevokeRole: "role revoked", StatsQuery: "statistics query",
  ProofVerdict: "verifying node's verdict", StatsKey: "statistics key",
};

async function showBlock(height) {
  const target = $("block-detail");
  ledger.shown = height;
  target.replaceChildren(el("p", { class: "muted" }, `Loading block ${height}…`));
  try {
    const b = await api("GET", `/api/ledger/blocks/${height}`);
    const verdict = el("div", { id: "block-verify", "aria-live": "polite" });
    const certificate = b.certificate.present
      ? el("details", {}, el("summary", {}, "Finalization certificate: present (a quorum of validators signed it)"),
        el("pre", { class: "params" }, b.certificate.text))
      : el("p", {}, `Certificate: ${b.certificate.note}.`);
    target.replaceChildren(
      el("h3", { id: "block-title", tabindex: "-1" }, `Block ${b.height}`),
      el("dl", { class: "facts" },
        el("dt", {}, "Time"), el("dd", {}, new Date(b.timestamp_ms).toLocaleString()),
        el("dt", {}, "Digest"), el("dd", {}, el("code", {}, b.digest)),
        el("dt", {}, "Parent"), el("dd", {}, el("code", {}, b.parent)),
        el("dt", {}, "Transactions root"), el("dd", {}, el("code", {}, b.tx_root)),
        el("dt", {}, "State root"), el("dd", {}, el("code", {}, b.state_root))),
      certificate,
      el("button", { type: "button", id: "verify-block", onclick: () => verifyBlock(b.height, verdict) }, "Verify this block"),
      verdict,
      b.txs.length
        ? el("table", { class: "txs" },
          el("caption", {}, `${b.txs.length} transaction${b.txs.length > 1 ? "s" : ""}`),
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Kind"), el("th", { scope: "col" }, "Id"), el("th", { scope: "col" }, "Signer"), el("th", { scope: "col" }, "Nonce"))),
          el("tbody", {}, b.txs.map((t) => el("tr", { "data-kind": t.kind },
            el("td", {}, el("strong", {}, t.kind), el("br"), el("small", { class: "muted" }, TX_LABELS[t.kind] ?? "")),
            el("td", {}, el("code", { title: t.id }, short(t.id))),
            el("td", {}, el("code", { title: t.signer }, short(t.signer))),
            el("td", {}, String(t.nonce))))))
        : el("p", { class: "muted" }, "This block carries no transaction."));
    for (const row of $("blocks-body").children) row.classList.toggle("selected", row.textContent.startsWith(`${height}`));
  } catch (e) {
    target.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

async function verifyBlock(height, target) {
  target.replaceChildren(el("p", { class: "muted" }, "Re-checking the block…"));
  try {
    const v = await api("GET", `/api/ledger/blocks/${height}/verify`);
    target.replaceChildren(
      el("p", { class: v.verified ? "ok" : "error", "data-verified": String(v.verified) },
        v.verified ? `✓ Block ${height} verified.` : `✗ Block ${height} did not pass every check.`),
      el("ul", { class: "plain checks" }, v.checks.map((c) =>
        el("li", { class: c.ok ? "ok" : "error" }, `${c.ok ? "✓" : "✗"} ${c.check.replaceAll("-", " ")}: ${c.detail}`))));
  } catch (e) {
    target.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

// ---------- routing ----------

const VIEWS = ["alerts", "map", "people", "person", "ledger", "queries"];

function allowed(page) {
  const link = document.querySelector(`#nav a[href="#${page}"]`);
  if (page === "person") return isStaff() ? hasRole("cdcp-operator", "doctor", "auditor", "admin") : true;
  return link && !link.hidden;
}

function route() {
  if (!state.me) return;
  let [page, arg] = location.hash.slice(1).split("/");
  if (page === "mine") { page = "person"; arg = state.me.person; }
  if (!isStaff() && page === "person") arg = state.me.person;
  if (!page || !VIEWS.includes(page) || !allowed(page)) {
    const first = [...document.querySelectorAll("#nav a")].find((a) => !a.hidden);
    page = first ? first.getAttribute("href").slice(1) : "alerts";
    if (page === "mine") { page = "person"; arg = state.me.person; }
  }
  for (const name of VIEWS) $(`${name}-view`).hidden = name !== page;
  const current = page === "person" && !isStaff() ? "mine" : page;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#${current}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (page === "alerts") renderAlerts();
  if (page === "map") openMap();
  if (page === "people") loadPeople();
  if (page === "person" && arg) openPerson(arg, $("person-view")).then(() => {});
  if (page === "ledger") {
    loadBlocks();
    if (arg && Number(arg) > 0) showBlock(Number(arg));
  }
  if (page === "queries") openQueries();
  // Move focus to the new page's heading, so keyboard and screen-reader users land there.
  const heading = $(`${page}-view`).querySelector("h2");
  if (heading && document.activeElement?.closest("nav")) heading.focus();
}

window.addEventListener("hashchange", route);
$("logout").addEventListener("click", logout);
$("alert-filter").addEventListener("change", renderAlerts);
$("people-filter").addEventListener("input", renderPeople);
$("people-alerted").addEventListener("change", renderPeople);
$("blocks-newer").addEventListener("click", () => { ledger.from = null; loadBlocks(); });
$("blocks-older").addEventListener("click", () => {
  if (ledger.oldest !== null && ledger.oldest > 1) { ledger.from = ledger.oldest - 1; loadBlocks(); }
});
$("block-goto").addEventListener("submit", (e) => {
  e.preventDefault();
  const h = Number($("block-height").value);
  if (Number.isInteger(h) && h > 0) location.hash = `#ledger/${h}`;
});
$("record-verify").addEventListener("submit", (e) => {
  e.preventDefault();
  verifyRecord($("record-seq").value, $("record-result"));
});
state.onAlertsChanged.push(() => { if (!$("people-view").hidden) renderPeople(); });
initMap();
$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const token = $("token").value.trim();
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    await login(token);
    $("main").focus();
  } catch (e) {
    state.token = null;
    $("login-error").textContent = e.message;
  } finally {
    button.disabled = false;
  }
});
const saved = sessionStorage.getItem("vigil-token");
if (saved) login(saved).catch(() => sessionStorage.removeItem("vigil-token"));
