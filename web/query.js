// The doctors' query console: a private statistic (mean, variance, histogram) of RR intervals
// or heart rate across data providers, computed under homomorphic encryption and accepted
// only after the verifying nodes' verdicts; the result shows its verification status.
// Backend (crates/node/src/stats.rs): `POST /api/queries` {stat, metric, dps?}, then
// `GET /api/queries/{id}` until its status is "accepted" (verified) or "rejected";
// `GET /api/queries` lists the data providers and the doctor's own queries.

import { $, api, el, svg, short } from "./util.js";

const POLL_MS = 1000;
const WAIT_MS = 180_000;
const history = [];

export async function openQueries() {
  const form = $("query-form");
  if (!form.dataset.ready) {
    form.dataset.ready = "1";
    form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
  }
  renderHistory();
  try {
    const { dps, queries } = await api("GET", "/api/queries");
    $("query-dps-hint").textContent = dps?.length
      ? `Data providers available: ${dps.join(", ")}.`
      : "No data provider is connected to this node.";
    if (!history.length && queries?.length) {
      for (const q of queries.slice(0, 10)) history.push({ body: { statistic: q.stat, metric: q.metric }, q, at: null });
      renderHistory();
    }
  } catch (e) {
    $("query-dps-hint").replaceChildren(el("span", { class: "error" }, e.message));
  }
}

function spec() {
  const dps = $("query-dps").value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (dps.some((d) => !Number.isInteger(d) || d < 1)) throw new Error("Data providers are numbers separated by commas, such as 1,2,3 (or leave it empty for all).");
  const body = { stat: $("query-stat").value, metric: $("query-metric").value };
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
    const id = started.id;
    let q = started;
    const deadline = Date.now() + WAIT_MS;
    while (!finished(q) && id !== undefined) {
      if (Date.now() > deadline) throw new Error("The query did not finish within three minutes; it may still complete. Try again later.");
      await new Promise((ok) => setTimeout(ok, POLL_MS));
      q = await api("GET", `/api/queries/${encodeURIComponent(id)}`);
      out.replaceChildren(el("p", { class: "muted" }, q.stage === "verifying"
        ? `The answers are in; the verifying nodes are checking the proofs (${q.valid_verdicts ?? 0} good verdicts of ${q.verdicts ?? 0} so far)…`
        : "The query is on the ledger; the data providers are answering…"));
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
  return q?.status === "accepted" || q?.status === "rejected" || q?.status === "unknown";
}

/** A result is accepted only after a quorum of verifying nodes found every proof good. */
function verification(q) {
  return { verified: q.status === "accepted", total: q.verdicts ?? 0, good: q.valid_verdicts ?? q.verdicts ?? 0 };
}

function renderResult(out, body, q) {
  if (q.status === "rejected" || q.status === "unknown") {
    out.replaceChildren(el("p", { class: "error", "data-verified": "false" },
      q.status === "unknown"
        ? "The node no longer knows this query."
        : `✗ Rejected: ${q.reason ?? "the verifying nodes refused it"}${q.failed?.length ? ` (failed checks: ${q.failed.join(", ")})` : ""}. No result is released.`));
    return;
  }
  const r = q.result ?? {};
  const v = verification(q);
  const unit = body.metric === "rr" ? "ms" : "beats/min";
  const rows = [];
  const num = (x) => (typeof x === "number" ? x.toLocaleString(undefined, { maximumFractionDigits: 2 }) : x);
  if (r.count !== undefined) rows.push(["Readings counted", num(r.count)]);
  if (typeof r.value === "number") {
    const label = { mean: "Mean", variance: "Variance", std: "Standard deviation" }[body.stat] ?? body.stat;
    rows.push([label, `${num(r.value)} ${body.stat === "variance" ? `${unit}²` : unit}`]);
  }
  if (q.dps?.length) rows.push(["Data providers", q.dps.join(", ")]);
  out.replaceChildren(...[
    el("p", { class: "ok", "data-verified": String(v.verified) },
      `✓ Verified: ${v.total} verifying node verdict${v.total === 1 ? "" : "s"} on the ledger found every proof good; the result was decrypted only then.`),
    rows.length ? el("table", { class: "compact" }, el("tbody", {}, rows.map(([k, x]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, x))))) : null,
    body.stat === "histogram" ? histogram(Array.isArray(r.value) ? r.value : r.bins, r.edges ?? q.bins, unit) : null,
    el("details", {}, el("summary", {}, "Full answer"), el("pre", { class: "params" }, JSON.stringify(q, null, 1))),
  ].filter(Boolean));
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
    return el("li", {}, `${h.at ? `${h.at.toLocaleTimeString()}: ` : ""}${h.body.stat ?? h.body.statistic} of ${h.body.metric} — `,
      el("span", { class: v.verified ? "ok" : h.q.status === "pending" ? "muted" : "error" }, v.verified ? "verified" : h.q.status === "pending" ? "pending" : "not verified"),
      h.q.id ? ` (query ${short(String(h.q.id))})` : "");
  }));
}
