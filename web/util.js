// Shared helpers of the dashboard: the session, the JSON API client with errors in plain
// words, and a tiny DOM builder. No framework, no build step.

export const $ = (id) => document.getElementById(id);

/** The session: the bearer token (sessionStorage only), who the user is, what is known live. */
export const state = {
  token: null,
  me: null,
  /** Alerts by id: from `GET /api/alerts`, then kept live by the event stream. */
  alerts: new Map(),
  source: null,
  /** Called after alerts change (the map and the person page redraw). */
  onAlertsChanged: [],
};

export const LEVELS = { 0: "OK", 1: "Warning", 2: "Critical" };
export const LEVEL_COLOURS = ["#2e7d32", "#e0a800", "#c62828"];

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** Errors in plain words, from an HTTP status and the API's `{error, message}` body. */
export function plain(status, body) {
  if (status === 0) return "The Vigil node cannot be reached. Is `vigil demo` still running?";
  if (status === 401) return "That token was not recognised. Check it and log in again.";
  if (status === 403) return "Your role does not allow this." + (body?.message ? ` (${body.message})` : "");
  if (status === 409) return "The ledger refused this: " + (body?.message ?? "it conflicts with what is already recorded.");
  if (status === 404) return body?.message ? `Not found: ${body.message}.` : "Not found.";
  if (status === 400) return "The request was not valid: " + (body?.message ?? "check the values entered.");
  if (status === 410) return "This person's data was erased.";
  if (status >= 500) return "The node could not do this right now. Try again in a moment." + (body?.message ? ` (${body.message})` : "");
  return body?.message ?? `Request failed (${status}).`;
}

export async function api(method, path, body) {
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

export const short = (hex) => (hex ? `${hex.slice(0, 8)}…` : "");
export const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "");
export const isStaff = () => state.me?.kind === "staff";
export const hasRole = (...roles) => isStaff() && state.me.roles.some((r) => roles.includes(r));
export const canAct = () => hasRole("cdcp-operator", "admin");

/** The highest open-alert level of a person, from the live alert state. */
export function liveLevel(person, fallback = 0) {
  let level = fallback;
  for (const a of state.alerts.values()) {
    if (a.person === person && a.status !== "resolved") level = Math.max(level, a.level ?? 0);
  }
  return level;
}

/** Every person the live alert state knows of, with their highest open level (0 when all of
 * their known alerts are resolved): one pass, for drawing thousands of people. */
export function liveLevels() {
  const levels = new Map();
  for (const a of state.alerts.values()) {
    const open = a.status !== "resolved" ? (a.level ?? 0) : 0;
    levels.set(a.person, Math.max(levels.get(a.person) ?? 0, open));
  }
  return levels;
}

export function message(target, text, kind = "muted") {
  target.replaceChildren(el("p", { class: kind }, text));
}

export function personLink(person, text) {
  return el("a", { href: `#person/${person}`, class: "mono" }, text ?? short(person));
}
