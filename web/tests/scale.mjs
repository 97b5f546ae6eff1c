// Responsiveness of the dashboard under a large fleet, against a running demo, e.g.
//
//   vigil demo --people 10000 --port 18080 --data-dir /tmp/vigil10k/data &
//   node web/tests/scale.mjs --url http://127.0.0.1:18080/ --data-dir /tmp/vigil10k/data --seconds 60
//
// Logs in as the operator (token read from the demo's state file), then measures, with the
// node's finalization timestamp of every alert (`finalized_ms` on the live stream) and the
// browser's clock (same machine):
//  - alert feed: time from finalization to the alert's row entering the DOM;
//  - map: time from finalization to the first map redraw after the alert's event, the
//    redraw's own duration, and the `GET /api/map` fetch time.
// Prints percentiles and one `key=value` line. Not part of CI: it needs a big demo running.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) =>
  (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const BASE = args.url ?? "http://127.0.0.1:8080/";
const SECONDS = Number(args.seconds ?? 60);
const token = args.token ?? JSON.parse(readFileSync(join(args["data-dir"] ?? "./vigil-demo-data", "demo-state.json"), "utf8")).operator_token;

function stats(values) {
  const v = [...values].sort((a, b) => a - b);
  if (!v.length) return { n: 0 };
  const q = (p) => v[Math.min(v.length - 1, Math.floor(p * v.length))];
  return { n: v.length, p50: q(0.5), p95: q(0.95), max: v.at(-1), within_1s: v.filter((x) => x <= 1000).length / v.length };
}

const fmt = (s) => (s.n ? `n=${s.n} p50=${s.p50.toFixed(0)}ms p95=${s.p95.toFixed(0)}ms max=${s.max.toFixed(0)}ms within1s=${(100 * s.within_1s).toFixed(1)}%` : "n=0");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const t0 = Date.now();
  await page.goto(BASE);
  await page.fill("#token", token);
  await page.press("#token", "Enter");
  await page.waitForSelector("#whoami:text('operator')");
  await page.waitForSelector("#alert-list[aria-busy=false]", { timeout: 120_000 });
  const openAlerts = await page.evaluate(() => document.querySelector("#alert-count").textContent);
  console.log(`logged in and alert feed loaded in ${Date.now() - t0} ms (${openAlerts})`);

  // Phase 1: the alert feed.
  const feedStart = Date.now();
  await page.waitForTimeout(SECONDS * 1000);
  const feed = await page.evaluate((since) => {
    const out = [];
    for (const [id, a] of window.__vigilArrived) {
      const seen = window.__vigilSeen.get(id);
      if (a.arrived >= since && seen !== undefined && a.finalized) out.push([seen - a.finalized, a.arrived - a.finalized]);
    }
    return out;
  }, feedStart);
  const feedStats = stats(feed.map((x) => x[0]));
  const transport = stats(feed.map((x) => x[1]));
  console.log(`alert feed, finalization -> row in the DOM: ${fmt(feedStats)}`);
  console.log(`  of which finalization -> event in the browser: ${fmt(transport)}`);

  // Phase 2: the map.
  await page.click("nav a[href='#map']");
  const mapOpen = Date.now();
  await page.waitForFunction(() => window.__vigilMap.draws > 0 && window.__vigilMap.people.length > 0, null, { timeout: 120_000 });
  console.log(`map: first draw ${Date.now() - mapOpen} ms after opening it, ${await page.evaluate(() => window.__vigilMap.people.length)} people`);
  const mapStart = Date.now();
  await page.waitForTimeout(SECONDS * 1000);
  const map = await page.evaluate((since) => {
    const draws = window.__vigilMap.drawLog.filter((d) => d[0] >= since);
    const toDraw = [];
    for (const a of window.__vigilArrived.values()) {
      if (a.arrived < since || !a.finalized) continue;
      const next = draws.find((d) => d[0] >= a.arrived);
      if (next) toDraw.push(next[0] - a.finalized);
    }
    const fetches = performance.getEntriesByType("resource")
      .filter((r) => r.name.endsWith("/api/map") && r.startTime + performance.timeOrigin >= since)
      .map((r) => r.duration);
    return { toDraw, durations: draws.map((d) => d[1]), fetches, people: window.__vigilMap.people.length };
  }, mapStart);
  const mapStats = stats(map.toDraw);
  const drawStats = stats(map.durations);
  const fetchStats = stats(map.fetches);
  console.log(`map, finalization -> redraw with the new state: ${fmt(mapStats)}`);
  console.log(`map redraw duration (${map.people} people): ${fmt(drawStats)}`);
  console.log(`GET /api/map (every 2 s): ${fmt(fetchStats)}`);
  console.log(`feed_p50_ms=${feedStats.p50 ?? -1} feed_p95_ms=${feedStats.p95 ?? -1} feed_max_ms=${feedStats.max ?? -1} feed_n=${feedStats.n} map_p50_ms=${mapStats.p50 ?? -1} map_p95_ms=${mapStats.p95 ?? -1} map_max_ms=${mapStats.max ?? -1} map_n=${mapStats.n} draw_p95_ms=${(drawStats.p95 ?? -1).toFixed?.(1)} map_fetch_p95_ms=${(fetchStats.p95 ?? -1).toFixed?.(0)} people=${map.people}`);
  await page.screenshot({ path: new URL("./artifacts/map-10k.png", import.meta.url).pathname });
} finally {
  await browser.close();
}
