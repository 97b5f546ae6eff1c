// The doctors' query console: a private statistic (mean, variance, histogram) of RR intervals
// or heart rate across data providers, computed under homomorphic encryption and accepted
// only after the verifying nodes' verdicts; the result shows its verification status.
// Backend: `POST /api/queries`, then `GET /api/queries/{id}` until it is done.

import { $, api, el, svg, short } from "./util.js";

const POLL_MS = 1000;
const WAIT_MS = 180_000;
const history = [];

export function openQueries() {
  const form = $("query-form");
  if (!form.dataset.ready) {
    form.dataset.ready = "1";
    form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
  }
  renderHistory();
}

function spec() {
  const dps = $("query-dps").value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (dps.some((d) => !Number.isInteger(d) || d < 1)) throw new Error("Data providers are numbers separated by commas, such as 1,2,3 (or leave it empty for all).");
  const body = { statistic: $("query-stat").value, metric: $("query-metric").value };
  if (dps.length) body.dps = dps;
  return body;
}

async function run() {
  const out = $("query-result");
  const button = $("query-run");
  let body;
  try { body = spec(); } catch (e) { out.replaceChildren(el("p", { class: "error" }, e.message)); return; }
  button.disabled = true;
  out.replaceChildren(el("p", { class: "muted" }, "Sending the query to the data providers… their encrypted answers are aggregated, then checked by the verifying nodes."));
  try {
    const started = await api("POST", "/api/queries", body);
    const id = started.id ?? started.query ?? started.query_id;
    let q = started;
    const deadline = Date.now() + WAIT_MS;
    while (!finished(q) && id !== undefined) {
      if (Date.now() > deadline) throw new Error("The query did not finish within three minutes; it may still complete. Try again later.");
      await new Promise((ok) => setTimeout(ok, POLL_MS));
      q = await api("GET", `/api/queries/${encodeURIComponent(id)}`);
      out.replaceChildren(el("p", { class: "muted" }, `Running (${q.status ?? q.state ?? "in progress"})…`));
    }
    history.unshift({ body, q, at: new Date() });
    renderResult(out, body, q);
    renderHistory();
  } catch (e) {
    out.replaceChildren(el("p", { class: "error" }, e.message));
  } finally {
    button.disabled = false;
  }
}

function finished(q) {
  const s = q?.status ?? q?.state;
  return s === "done" || s === "finished" || s === "failed" || s === "error" || s === "complete" || s === "completed" || q?.result !== undefined && s === undefined;
}

/** Whether a query's result was accepted after a quorum of all-good verdicts. */
function verification(q) {
  const v = q.verification ?? {};
  const verified = q.verified ?? v.verified ?? v.accepted ?? false;
  const verdicts = q.verdicts ?? v.verdicts ?? [];
  const good = Array.isArray(verdicts) ? verdicts.filter((x) => x.all_good ?? x.all_valid ?? x.ok ?? x === true).length : (v.valid_verdicts ?? 0);
  const total = Array.isArray(verdicts) ? verdicts.length : (v.verdicts ?? 0);
  return { verified: Boolean(verified), good, total, height: v.height ?? q.height };
}

function renderResult(out, body, q) {
  const s = q.status ?? q.state;
  if (s === "failed" || s === "error") {
    out.replaceChildren(el("p", { class: "error" }, `The query failed: ${q.error ?? q.message ?? "no reason given"}.`));
    return;
  }
  const r = q.result ?? q;
  const v = verification(q);
  const unit = body.metric === "rr" ? "ms" : "beats/min";
  const rows = [];
  const num = (x) => (typeof x === "number" ? x.toLocaleString(undefined, { maximumFractionDigits: 2 }) : x);
  if (r.count !== undefined) rows.push(["Readings counted", num(r.count)]);
  if (r.mean !== undefined) rows.push(["Mean", `${num(r.mean)} ${unit}`]);
  if (r.variance !== undefined) rows.push(["Variance", `${num(r.variance)} ${unit}²`]);
  if (r.std !== undefined) rows.push(["Standard deviation", `${num(r.std)} ${unit}`]);
  if (r.value !== undefined && typeof r.value !== "object") rows.push([body.statistic, `${num(r.value)} ${unit}`]);
  out.replaceChildren(
    el("p", { class: v.verified ? "ok" : "error", "data-verified": String(v.verified) },
      v.verified
        ? `✓ Verified: ${v.good} of ${v.total} verifying nodes checked every proof${v.height ? ` (verdicts on the ledger at height ${v.height})` : ""}.`
        : `✗ Not verified${v.total ? `: ${v.good} of ${v.total} verdicts were good` : ""}. Do not use this result.`),
    rows.length ? el("table", { class: "compact" }, el("tbody", {}, rows.map(([k, x]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, x))))) : null,
    histogram(r.histogram ?? r.bins, r.edges ?? body.edges, unit),
    el("details", {}, el("summary", {}, "Full answer"), el("pre", { class: "params" }, JSON.stringify(q, null, 1))));
}

/** Bars of a histogram: counts per bin, labelled by bin edges when known. */
function histogram(bins, edges, unit) {
  if (!Array.isArray(bins) || !bins.length) return null;
  const counts = bins.map((b) => (typeof b === "number" ? b : b.count ?? 0));
  const W = 480, H = 180, B = 28, L = 8;
  const max = Math.max(1, ...counts);
  const w = (W - L * 2) / counts.length;
  const label = (i) => (edges && edges[i] !== undefined ? `${edges[i]}` : bins[i]?.from ?? `${i + 1}`);
  return el("figure", { class: "chart" },
    el("figcaption", {}, el("strong", {}, "Histogram"), ` (${unit})`),
    svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Histogram: ${counts.join(", ")}` },
      counts.map((c, i) => {
        const h = ((H - B - 8) * c) / max;
        return [
          svg("rect", { x: L + i * w + 1, y: H - B - h, width: Math.max(1, w - 2), height: h, fill: "#12355b" }, svg("title", {}, `${label(i)}: ${c}`)),
          counts.length <= 16 ? svg("text", { x: L + i * w + w / 2, y: H - B + 14, "text-anchor": "middle", class: "axis" }, label(i)) : null,
        ];
      })));
}

function renderHistory() {
  const box = $("query-history");
  if (!history.length) { box.replaceChildren(el("li", { class: "muted" }, "No query yet in this session.")); return; }
  box.replaceChildren(...history.slice(0, 10).map((h) => {
    const v = verification(h.q);
    return el("li", {}, `${h.at.toLocaleTimeString()}: ${h.body.statistic} of ${h.body.metric} — `,
      el("span", { class: v.verified ? "ok" : "error" }, v.verified ? "verified" : "not verified"),
      h.q.id ? ` (query ${short(String(h.q.id))})` : "");
  }));
}
