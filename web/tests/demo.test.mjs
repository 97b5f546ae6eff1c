// Browser test of the dashboard against a real `vigil demo` (20 people, speed ×10):
//  - an operator logs in, sees the alert of the simulated fever (the demo scripts one for
//    person 0 at start), acknowledges it, opens the map, changes that person's temperature
//    threshold and finds the replacement in the ledger explorer, verifies the block and a
//    health record against its anchor;
//  - a patient sees only their own data: the page shows no one else, and the API refuses
//    every other person's data;
//  - a doctor runs a private statistics query and sees a verified result (a demo without
//    private statistics fails);
//  - left unacknowledged, the fever alert is escalated (a ledger transaction the explorer
//    shows), and after a reload the feed still names its metric and value;
//  - the phone switched off at start raises a no-signal alert that reads in minutes;
//  - the fever alert is labelled device-signed, the temperature chart labels its axis, and
//    axe-core finds no serious or critical violation on the login, alerts, map, person, ledger,
//    people and queries pages;
//  - the map lies over tiles from a tile server the test runs on 127.0.0.1 (the demo started
//    with --map-tiles): tiles are requested and drawn, and the dashboard's policy admits that
//    origin and no other; the person page draws the person's track; an operator draws a
//    circle and a polygon zone on the map with the mouse, saves them through the ledger and
//    finds them in the finalized replacement instance; with no tile server (the answer of
//    /api/map/config replaced), the map is the local plane with its scale bar;
//  - the fever alert and its escalation reach a webhook receiver and an SMTP sink the test runs
//    on 127.0.0.1 (the demo started with --notify-webhook and --notify-smtp): the webhooks'
//    signatures verify under the demo's secret, and neither message carries a health value;
//  - no page logs a script or console error once logged in.
// Screenshots of the main pages, at 1280×800 and at phone width, go to ./artifacts (git-ignored).
//
//   VIGIL_BIN=../../target/debug/vigil node demo.test.mjs
//
// Uses playwright-core with Debian's chromium (CHROMIUM=/usr/bin/chromium by default).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createRequire } from "node:module";
import { createServer as createHttpServer } from "node:http";
import { get as httpsGet } from "node:https";
import { createServer } from "node:net";
import { deflateSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import { SMTPServer } from "smtp-server";

const here = new URL(".", import.meta.url).pathname;
// axe-core, evaluated in the page through the DevTools protocol (not a script tag: the
// dashboard's CSP allows only its own scripts, and stays as served).
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const VIGIL = process.env.VIGIL_BIN ?? resolve(here, "../../target/debug/vigil");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = join(here, "artifacts");
const START_TIMEOUT_MS = 240_000;
const ALERT_TIMEOUT_MS = 150_000;
const FINALIZE_TIMEOUT_MS = 60_000;
const PHONE = { width: 390, height: 844 };
const TILE_ATTRIBUTION = "Vigil test tiles";
// MIT-BIH records for the demo's ECG patches when present (synthetic ECG otherwise).
const MITDB = process.env.VIGIL_MITDB ?? resolve(here, "../../../shared/data/mitdb");

function portFree(port) {
  return new Promise((ok) => {
    const server = createServer();
    server.once("error", () => ok(false));
    server.listen(port, "127.0.0.1", () => server.close(() => ok(true)));
  });
}

/** A port P with P … P+3 free on 127.0.0.1 (HTTP, MQTT, HTTPS, MQTT over TLS). */
async function freePorts() {
  for (let i = 0; i < 50; i++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    let free = true;
    for (let k = 0; k < 4 && free; k++) free = await portFree(port + k);
    if (free) return port;
  }
  throw new Error("no four free ports in a row");
}

/** GET over HTTPS trusting only `ca` (PEM): the status and body, or the TLS error. */
function httpsFetch(url, ca) {
  return new Promise((ok) => {
    const request = httpsGet(url, { ca, timeout: 10_000 }, (response) => {
      let body = "";
      response.on("data", (c) => { body += c; });
      response.on("end", () => ok({ status: response.statusCode, body }));
    });
    request.on("error", (error) => ok({ error: error.code ?? error.message }));
    request.on("timeout", () => request.destroy(new Error("timeout")));
  });
}

/** The dashboard and API over HTTPS with the demo's CA, by name and by address; refused to a
 * client that trusts only another authority (the system's). */
async function overTls(port, dataDir) {
  const ca = readFileSync(join(dataDir, "tls", "ca.pem"));
  for (const host of ["localhost", "127.0.0.1"]) {
    const page = await httpsFetch(`https://${host}:${port + 2}/`, ca);
    check(page.status === 200 && /<html/i.test(page.body), `the dashboard over HTTPS at ${host} with the demo's CA`);
  }
  const health = await httpsFetch(`https://localhost:${port + 2}/api/health`, ca);
  check(health.status === 200, "the API over HTTPS");
  const stranger = await httpsFetch(`https://localhost:${port + 2}/`, undefined);
  check(stranger.error !== undefined, `a client without the demo's CA refuses the certificate (${stranger.error})`);
}

/** CRC-32 (ISO 3309), as PNG chunks carry it. */
function crc32(bytes) {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** A valid 256×256 RGB PNG: a pale fill with a darker two-pixel border, so that drawn tiles
 * show as a grid in the screenshots. */
function tilePng() {
  const size = 256;
  const raw = Buffer.alloc(size * (1 + size * 3));
  for (let y = 0; y < size; y++) {
    const row = y * (1 + size * 3);
    raw[row] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const edge = x < 2 || y < 2;
      raw.set(edge ? [170, 190, 205] : [226, 236, 222], row + 1 + x * 3);
    }
  }
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(8 + data.length + 4);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, no filter set, no interlace
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

/** A tile server on 127.0.0.1: every `/tiles/{z}/{x}/{y}.png` gets the same PNG; each request
 * is counted, and anything else is a 404 (counted apart). */
async function startTileServer() {
  const png = tilePng();
  const tiles = { requests: [], other: [], server: null, port: 0 };
  tiles.server = createHttpServer((request, response) => {
    const m = request.url.match(/^\/tiles\/(\d+)\/(\d+)\/(\d+)\.png$/);
    if (!m) { tiles.other.push(request.url); response.writeHead(404).end(); return; }
    tiles.requests.push(m.slice(1).map(Number));
    response.writeHead(200, { "Content-Type": "image/png", "Content-Length": png.length, "Cache-Control": "no-store" });
    response.end(png);
  });
  await new Promise((ok) => tiles.server.listen(0, "127.0.0.1", ok));
  tiles.port = tiles.server.address().port;
  return tiles;
}

/** Where the demo's notifications land, on 127.0.0.1: a webhook receiver (every POST kept
 * with its headers and body) and an SMTP sink (smtp-server, plaintext on loopback as the demo
 * sends to a loopback relay; every message kept as received). */
async function startInbox() {
  const inbox = { posts: [], mails: [], webhook: null, smtp: null, webhookPort: 0, smtpPort: 0 };
  inbox.webhook = createHttpServer((request, response) => {
    const chunks = [];
    request.on("data", (c) => chunks.push(c));
    request.on("end", () => {
      if (request.method === "POST" && request.url === "/hook") {
        inbox.posts.push({ headers: request.headers, body: Buffer.concat(chunks) });
        response.writeHead(204).end();
      } else {
        response.writeHead(404).end();
      }
    });
  });
  await new Promise((ok) => inbox.webhook.listen(0, "127.0.0.1", ok));
  inbox.webhookPort = inbox.webhook.address().port;
  inbox.smtp = new SMTPServer({
    authOptional: true, disabledCommands: ["STARTTLS", "AUTH"], logger: false, size: 1 << 20,
    onData(stream, session, done) {
      const chunks = [];
      stream.on("data", (c) => chunks.push(c));
      stream.on("end", () => {
        inbox.mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString("utf8") });
        done();
      });
    },
  });
  await new Promise((ok) => inbox.smtp.listen(0, "127.0.0.1", ok));
  inbox.smtpPort = inbox.smtp.server.address().port;
  return inbox;
}

/** An e-mail as its reader sees it: headers unfolded, quoted-printable decoded. */
function readMail(raw) {
  const [head, ...rest] = raw.split(/\r?\n\r?\n/);
  const headers = head.replace(/\r?\n[ \t]+/g, " ");
  let body = rest.join("\n\n");
  if (/content-transfer-encoding:\s*quoted-printable/i.test(headers)) {
    body = Buffer.from(body.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))), "latin1").toString("utf8");
  }
  const subject = headers.match(/^subject:\s*(.*)$/im)?.[1] ?? "";
  return { headers, subject, body };
}

/** The webhook POSTs whose body has `event` and matches `pick`, each checked against its
 * signature (`Vigil-Signature: t=<s>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`). */
function signedPosts(inbox, secret, event, pick) {
  return inbox.posts.filter((post) => {
    let body;
    try { body = JSON.parse(post.body.toString("utf8")); } catch { return false; }
    if (body.event !== event || !pick(body)) return false;
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(post.headers["vigil-signature"] ?? "");
    check(m !== null, `the ${event} webhook is signed (${post.headers["vigil-signature"]})`);
    const mac = createHmac("sha256", secret).update(`${m[1]}.`).update(post.body).digest();
    check(timingSafeEqual(mac, Buffer.from(m[2], "hex")), `the ${event} webhook's signature verifies under the demo's secret`);
    return true;
  });
}

async function until(what, probe, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const found = probe();
    if (found) return found;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 250));
  }
}

/** The fever alert and its escalation, received outside the dashboard: signed webhooks and an
 * e-mail, with no health value in either (the demo's channels are not allowed any). */
async function notified(inbox, dataDir, person, alertId) {
  const secret = readFileSync(join(dataDir, "notify-webhook.secret"), "utf8").trimEnd();
  const [hook] = await until("the fever alert's webhook",
    () => { const s = signedPosts(inbox, secret, "alert", (b) => b.id === alertId); return s.length ? s : null; },
    FINALIZE_TIMEOUT_MS);
  const body = JSON.parse(hook.body.toString("utf8"));
  check(body.person === person && body.kind === "threshold" && body.basis === "device-signed"
    && hook.headers["vigil-event-id"] === alertId,
    `the webhook receiver got the fever alert (person, kind, basis, event id): level ${body.level_name}, block ${body.height}`);
  const noHealth = (text) => !/temperature|°C|reason|value|Why:/i.test(text);
  const fields = ["version", "event", "id", "person", "instance", "kind", "level", "level_name", "basis",
    "reading_time", "reading_time_ms", "finalized_ms", "height", "dashboard"];
  check(Object.keys(body).every((k) => fields.includes(k)) && noHealth(hook.body.toString("utf8")),
    `the fever alert's webhook carries no health value (${Object.keys(body).join(", ")})`);
  const [step] = await until("the escalation's webhook",
    () => { const s = signedPosts(inbox, secret, "escalation", (b) => b.alert === alertId); return s.length ? s : null; },
    FINALIZE_TIMEOUT_MS);
  const escalation = JSON.parse(step.body.toString("utf8"));
  check(escalation.person === person && escalation.step >= 1, `the webhook receiver got the escalation (step ${escalation.step}, ${escalation.level_name})`);
  const mail = await until("the fever alert's e-mail", () => inbox.mails.map((m) => ({ ...m, ...readMail(m.raw) }))
    .find((m) => m.body.includes(alertId)), FINALIZE_TIMEOUT_MS);
  check(mail.to.includes("duty-officer@localhost") && /threshold alert for person/.test(mail.subject) && mail.subject.includes(person),
    `the SMTP sink got the fever alert's e-mail: "${mail.subject}"`);
  check(noHealth(`${mail.subject}\n${mail.body.replace("does not carry health values", "")}`) && /does not carry health values/.test(mail.body),
    "the e-mail carries no health value, only a link to the dashboard");
  check(mail.body.includes(`#person/${person}`), "the e-mail links to the person's page");
}

function startDemo(port, dataDir, tiles, inbox) {
  const child = spawn(VIGIL, ["demo", "--people", "20", "--speed", "10", "--port", String(port),
    "--data-dir", dataDir, "--duration-s", "900", ...(existsSync(MITDB) ? ["--mitdb", MITDB] : []),
    // An alert nobody acknowledges is escalated after 20 s of block time (the policy is
    // deployed through the ledger), its person reminded after 10 s.
    "--escalate-after-s", "20", "--remind-after-s", "10", "--repeat-s", "60",
    "--map-tiles", `http://127.0.0.1:${tiles.port}/tiles/{z}/{x}/{y}.png`, "--map-attribution", TILE_ATTRIBUTION,
    // Alerts and escalations also go to a webhook and by e-mail, to sinks this test runs.
    "--notify-webhook", `http://127.0.0.1:${inbox.webhookPort}/hook`,
    "--notify-smtp", `127.0.0.1:${inbox.smtpPort}`, "--notify-email", "duty-officer@localhost"],
  { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const ready = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`demo did not start in time:\n${output}`)), START_TIMEOUT_MS);
    const onData = (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
      const tokens = Object.fromEntries([...output.matchAll(/^\s+(operator|admin|doctor|auditor|patient)\s+([0-9a-f]{64})/gm)]
        .map((m) => [m[1], m[2]]));
      const person = output.match(/\(person ([0-9a-f]{32})\)/)?.[1];
      if (tokens.operator && tokens.patient && person && output.includes("Dashboard:")) {
        clearTimeout(timer);
        ok({ tokens, person });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (c) => process.stderr.write(c));
    child.on("exit", (code) => { clearTimeout(timer); fail(new Error(`demo exited (${code}):\n${output}`)); });
  });
  return { child, ready };
}

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function login(page, base, token, who) {
  await page.goto(base);
  await page.fill("#token", token);
  await page.press("#token", "Enter");
  await page.waitForSelector(`#whoami:text('${who}')`);
}

/** axe-core on the page as it is now: no violation of impact serious or critical. */
async function accessible(page, name) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}) at ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
  });
  check(violations.length === 0, `axe-core finds no serious or critical violation on the ${name} page ${violations.join("; ")}`);
}

/** Calls the API from the page with its session token: the status. */
function apiStatus(page, path) {
  return page.evaluate(async (p) => {
    const r = await fetch(p, { headers: { Authorization: `Bearer ${sessionStorage.getItem("vigil-token")}` } });
    return r.status;
  }, path);
}

/** Script errors, and console errors from the moment `watch.on` is set (a refused login logs
 * its 401 before that, by design). */
function watchErrors(page) {
  const watch = { on: true, errors: [] };
  page.on("pageerror", (e) => watch.errors.push(e.message));
  page.on("console", (m) => { if (watch.on && m.type() === "error") watch.errors.push(`console: ${m.text()}`); });
  return watch;
}

async function operator(browser, base, { tokens, person }, tiles, inbox, dataDir) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const watch = watchErrors(page);
  watch.on = false;
  const errors = watch.errors;

  // A wrong token is refused in plain words.
  const served = await page.goto(base);
  const policy = served.headers()["content-security-policy"];
  check(policy === `default-src 'self'; img-src 'self' data: http://127.0.0.1:${tiles.port}; frame-ancestors 'none'`,
    `the dashboard's policy admits images from the tile server's origin and no other (${policy})`);
  await page.fill("#token", "not-a-token");
  await page.press("#token", "Enter");
  await page.waitForSelector("#login-error:text('not recognised')");
  check(true, "a wrong token is refused in plain words");
  await accessible(page, "login");

  await page.fill("#token", tokens.operator);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#whoami:text('operator')");
  watch.on = true;
  await page.screenshot({ path: join(ARTIFACTS, "alerts-loading.png") });

  // The simulated fever of person 0 raises a temperature alert that reaches the feed live.
  const fever = `li.alert:has(a[href="#person/${person}"]):has-text("threshold")`;
  const alert = await page.waitForSelector(fever, { timeout: ALERT_TIMEOUT_MS });
  console.log("alert seen:", (await alert.innerText()).replace(/\s+/g, " "));
  check(/temperature/i.test(await alert.innerText()), "the fever alert names the temperature");
  check(/device-signed/.test(await alert.innerText()),
    "the fever alert is labelled device-signed (every validator re-derived it from the thermometer's signed readings)");
  await page.screenshot({ path: join(ARTIFACTS, "alerts.png") });
  await accessible(page, "alerts");

  // Left unacknowledged, the fever alert is escalated by a ledger transaction, timed by the
  // blocks' time; the explorer shows it.
  const feverId = await alert.evaluate((li) => li.dataset.alert);
  const escalation = await page.waitForSelector(`li.alert[data-alert="${feverId}"] a[data-escalations]`, { timeout: ALERT_TIMEOUT_MS });
  check(/escalated/.test(await escalation.innerText()), "the unacknowledged fever alert was escalated");
  await escalation.click();
  await page.waitForSelector("#block-detail tr[data-kind=Escalate]");
  check(true, "the ledger explorer shows the Escalate transaction");
  await notified(inbox, dataDir, person, feverId);
  await page.click("nav a[href='#alerts']");

  // After a reload the listing still says what fired: the reason comes from the health record.
  await page.reload();
  const reloaded = await page.waitForSelector(`li.alert[data-alert="${feverId}"]`, { timeout: FINALIZE_TIMEOUT_MS });
  const reloadedText = (await reloaded.innerText()).replace(/\s+/g, " ");
  check(/body temperature \d+(\.\d+)? °C/.test(reloadedText), `after a reload the fever alert names its metric and value (${reloadedText})`);
  check(/escalated ×\d/.test(reloadedText), "after a reload the alert still shows its escalation");

  // Acknowledge it (or any open one if someone else got there) and see the ledger finalize it.
  const open = await page.waitForSelector(`${fever}[data-status=open] button:text('Acknowledge'), li.alert[data-status=open] button:text('Acknowledge')`);
  const id = await open.evaluate((b) => b.closest("li").dataset.alert);
  await open.click();
  await page.waitForSelector(`li.alert[data-alert="${id}"][data-status=acknowledged]`, { timeout: FINALIZE_TIMEOUT_MS });
  check(true, "the acknowledgement was finalized and shown");
  await page.waitForSelector(`#action-list li[data-action=acknowledge][data-status=finalized]`, { timeout: FINALIZE_TIMEOUT_MS });
  check(true, "the operator's own action list shows the acknowledgement finalized");

  // The map: positions, zones and a scale bar, over the tile server's tiles.
  await page.click("nav a[href='#map']");
  await page.waitForFunction(() => Number(document.querySelector("#map-canvas")?.dataset.draws ?? 0) > 0
    && /with a position/.test(document.querySelector("#map-status").textContent));
  check(await page.getAttribute("#map-canvas", "data-mode") === "tiles", "the map is drawn over tiles (a tile server is configured)");
  const scale = await page.getAttribute("#map-canvas", "data-scale");
  check(/\d+ k?m/.test(scale ?? ""), `the map draws a scale bar (${scale})`);
  // Drawn: tile images loaded at their full 256 pixels, from the test's server.
  await page.waitForFunction((port) => [...document.querySelectorAll("#map-canvas img.leaflet-tile-loaded")]
    .some((img) => img.naturalWidth === 256 && img.src.startsWith(`http://127.0.0.1:${port}/tiles/`)), tiles.port, { timeout: 20_000 });
  const drawnTiles = await page.$$eval("#map-canvas img.leaflet-tile-loaded", (imgs) => imgs.filter((i) => i.naturalWidth === 256).length);
  check(tiles.requests.length > 0 && drawnTiles > 0 && tiles.requests.every(([z]) => z >= 1 && z <= 19),
    `the tile server was asked for ${tiles.requests.length} tiles (zoom ${[...new Set(tiles.requests.map((r) => r[0]))].join(", ")}), ${drawnTiles} are drawn`);
  check(tiles.other.length === 0, `nothing but tiles was asked of the tile server (${tiles.other.join(", ")})`);
  check((await page.innerText("#map-canvas .leaflet-control-attribution")).includes(TILE_ATTRIBUTION), "the map shows the tile server's attribution");
  await page.waitForSelector("#map-alerted a");
  await page.screenshot({ path: join(ARTIFACTS, "map.png") });
  await accessible(page, "map");
  // Keyboard: the map takes focus and zooms with "+" (new tiles are fetched for the new zoom).
  const zoomBefore = tiles.requests.length;
  await page.focus("#map-canvas");
  await page.keyboard.press("+");
  await page.waitForFunction((n) => window.__vigilMap.draws > n, await page.evaluate(() => window.__vigilMap.draws));
  await page.waitForTimeout(500);
  check(tiles.requests.length > zoomBefore, `zooming in with "+" fetches the next zoom level's tiles (${tiles.requests.length - zoomBefore} more)`);

  // The person page: live charts, then the threshold editor.
  await page.goto(`${base}#person/${person}`);
  await page.waitForSelector('figure.chart[data-metric="body-temperature"] svg path');
  check(true, "the person page charts the temperature");
  const ticks = await page.$$eval('figure.chart[data-metric="body-temperature"] svg text.tick', (t) => t.map((e) => e.textContent));
  check(ticks.filter((t) => /^-?\d+(\.\d+)?$/.test(t)).length >= 3, `the temperature chart labels its y-axis (${ticks.join(", ")})`);
  check((await page.textContent("figure.chart")).includes("°C"), "the chart says °C");
  const unlabelled = await page.$$eval("figure.chart", (charts) => charts
    .filter((c) => [...c.querySelectorAll("svg text.tick")].filter((t) => /^-?\d+(\.\d+)?$/.test(t.textContent)).length < 3)
    .map((c) => c.dataset.metric));
  const charts = await page.locator("figure.chart").count();
  check(charts >= 3 && unlabelled.length === 0, `every chart (${charts}) labels its y-axis with at least three ticks ${unlabelled.join(", ")}`);
  // The track: the person's recent positions, drawn on the same map over tiles.
  await page.waitForFunction(() => Number(document.querySelector("#track-status")?.dataset.fixes ?? 0) >= 2
    && Number(document.querySelector("#person-map")?.dataset.draws ?? 0) > 0, null, { timeout: 60_000 });
  check(await page.getAttribute("#person-map", "data-mode") === "tiles", `the person page draws the track over tiles: ${await page.innerText("#track-status")}`);
  await page.waitForSelector("#person-map img.leaflet-tile-loaded");
  const form = 'form.instance[data-kind=threshold][data-metric="body-temperature"]';
  await page.waitForSelector(`${form} input[data-field=warning_above]`);
  await page.screenshot({ path: join(ARTIFACTS, "person.png"), fullPage: true });
  await accessible(page, "person");
  const before = Number(await page.inputValue(`${form} input[data-field=warning_above]`));
  const after = (before + 0.2).toFixed(2);
  await page.fill(`${form} input[data-field=warning_above]`, after);
  await page.click(`${form} button[type=submit]`);
  const saved = await page.waitForSelector("[data-deployed-height]", { timeout: FINALIZE_TIMEOUT_MS });
  const height = Number(await saved.getAttribute("data-deployed-height"));
  check(height > 0, `the new threshold (${before} → ${after} °C) was deployed in block ${height}`);
  check(Number(await page.inputValue(`${form} input[data-field=warning_above]`)) === Number(after), "the editor shows the new threshold");

  // A geofence drawn on the map with the mouse: a circle (press, drag), then a triangle
  // (three clicks, then the first vertex again), saved through the ledger in one replacement.
  const fence = "form.instance[data-kind=geofence]";
  await page.waitForSelector(`${fence} button[data-draw=circle]`);
  const fenceBefore = await page.getAttribute(fence, "data-instance");
  await page.click(`${fence} button[data-draw=circle]`);
  await page.waitForSelector("#person-map[data-drawing=circle]");
  const box = await page.locator("#person-map").boundingBox();
  const cx = box.x + box.width * 0.3, cy = box.y + box.height * 0.5;
  await page.mouse.move(cx, cy);
  await page.mouse.down();
  await page.mouse.move(cx + 30, cy, { steps: 4 });
  await page.mouse.move(cx + 60, cy, { steps: 4 });
  await page.mouse.up();
  const circleName = await page.getAttribute("#draw-status [data-drawn]", "data-drawn", { timeout: 5000 });
  const circleZone = `${fence} fieldset[data-zone-name="${circleName}"]`;
  const drawn = {
    lat: Number(await page.inputValue(`${circleZone} input[data-part=lat]`)),
    lon: Number(await page.inputValue(`${circleZone} input[data-part=lon]`)),
    radius: Number(await page.inputValue(`${circleZone} input[data-part=radius]`)),
  };
  check(drawn.radius > 0 && Math.abs(drawn.lat) > 0, `dragging on the map draws a circle zone “${circleName}” (${drawn.lat}°, ${drawn.lon}°, ${drawn.radius} m)`);
  await page.click(`${fence} button[data-draw=polygon]`);
  await page.waitForSelector("#person-map[data-drawing=polygon]");
  const vertices = [[0.6, 0.3], [0.8, 0.35], [0.7, 0.7]].map(([fx, fy]) => [box.x + box.width * fx, box.y + box.height * fy]);
  for (const [x, y] of vertices) await page.mouse.click(x, y);
  await page.mouse.click(...vertices[0]);
  await page.waitForFunction((name) => {
    const d = document.querySelector("#draw-status [data-drawn]")?.dataset.drawn;
    return d && d !== name;
  }, circleName, { timeout: 5000 });
  const polygonName = await page.getAttribute("#draw-status [data-drawn]", "data-drawn");
  check(!(await page.isVisible("#person-map[data-drawing]")), `clicking three vertices and the first again draws a polygon zone “${polygonName}”`);
  await page.screenshot({ path: join(ARTIFACTS, "person-geofence-drawn.png"), fullPage: true });
  await page.click(`${fence} button[type=submit]`);
  const fenceSaved = await page.waitForSelector(`[data-deployed-height]:not([data-deployed-height="${height}"])`, { timeout: FINALIZE_TIMEOUT_MS });
  const fenceHeight = Number(await fenceSaved.getAttribute("data-deployed-height"));
  // The finalized state, through the API: the new instance holds both zones as drawn, the
  // old one is no longer active.
  const { instances } = await page.evaluate(async (p) => (await fetch(`/api/instances?person=${p}`,
    { headers: { Authorization: `Bearer ${sessionStorage.getItem("vigil-token")}` } })).json(), person);
  const active = instances.filter((i) => i.active && i.params?.kind === "geofence");
  const zones = active[0]?.params.zones ?? [];
  const circle = zones.find((z) => z.name === circleName)?.circle;
  const polygon = zones.find((z) => z.name === polygonName)?.polygon;
  check(active.length === 1 && active[0].instance !== fenceBefore && active[0].deployed_height === fenceHeight
    && !instances.some((i) => i.instance === fenceBefore && i.active),
  `the drawn geofence replaced instance ${fenceBefore.slice(0, 8)}… in block ${fenceHeight}`);
  check(circle && circle.lat_udeg === Math.round(drawn.lat * 1e6) && circle.lon_udeg === Math.round(drawn.lon * 1e6) && circle.radius_m === drawn.radius,
    `the finalized instance holds the drawn circle ${JSON.stringify(circle)}`);
  check(polygon?.length === 3 && zones.some((z) => z.name === "home"), `the finalized instance holds the drawn triangle ${JSON.stringify(polygon)} beside the home zone`);
  await page.waitForSelector(`${fence} fieldset[data-zone-name="${circleName}"]:not(:has(.unsaved))`);
  await page.screenshot({ path: join(ARTIFACTS, "person-map.png") });

  // A health record against its ledger anchor (the next finalized block anchors new records).
  let verified = false;
  for (let attempt = 0; attempt < 10 && !verified; attempt++) {
    if (attempt) await page.waitForTimeout(2000);
    const row = page.locator("#records tbody tr").last();
    await row.locator("button").click();
    const result = await row.locator("[data-verified]").waitFor({ timeout: 20_000 }).then(() => row.locator("[data-verified]").first());
    verified = (await result.getAttribute("data-verified")) === "true";
    if (!verified) console.log("record not verified yet:", await result.innerText());
  }
  check(verified, "a health record verifies against its anchor (Merkle inclusion proof)");

  // The geofence change in the ledger explorer (the editor links its block).
  await page.click(`a[href="#ledger/${fenceHeight}"]`);
  await page.waitForSelector("#block-detail tr[data-kind=ReplaceInstance]");
  check(true, `the ledger explorer shows the ReplaceInstance transaction in block ${fenceHeight}`);
  await page.click("#verify-block");
  await page.waitForSelector("#block-verify [data-verified=true]", { timeout: 20_000 });
  const checks = await page.innerText("#block-verify");
  check(/certificate/.test(checks) && /hash link/.test(checks), "the block verifies: hash link, signatures, certificate");
  await page.screenshot({ path: join(ARTIFACTS, "ledger.png"), fullPage: true });
  await accessible(page, "ledger");

  // People, and phone width.
  await page.click("nav a[href='#people']");
  await page.waitForSelector("#people-body a");
  await page.screenshot({ path: join(ARTIFACTS, "people.png") });
  await accessible(page, "people");
  await page.setViewportSize(PHONE);
  await page.click("nav a[href='#alerts']");
  await page.waitForSelector("li.alert");
  await page.screenshot({ path: join(ARTIFACTS, "alerts-phone.png"), fullPage: true });
  await page.click("nav a[href='#map']");
  await page.waitForFunction(() => document.querySelectorAll("#map-canvas img.leaflet-tile-loaded").length > 0
    && Number(document.querySelector("#map-canvas")?.dataset.draws ?? 0) > 0);
  const mapOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(mapOverflow <= 1, `the map fits a phone's width (overflow ${mapOverflow}px)`);
  await page.screenshot({ path: join(ARTIFACTS, "map-phone.png"), fullPage: true });
  await page.goto(`${base}#person/${person}`);
  await page.waitForSelector('figure.chart[data-metric="body-temperature"] svg path');
  await page.waitForFunction(() => Number(document.querySelector("#track-status")?.dataset.fixes ?? 0) > 0
    && document.querySelectorAll("#person-map img.leaflet-tile-loaded").length > 0);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the person page fits a phone's width (overflow ${overflow}px)`);
  await page.screenshot({ path: join(ARTIFACTS, "person-phone.png"), fullPage: true });
  check(errors.length === 0, `no script or console error in the operator's session ${errors.join("; ")}`);
  const { people } = await page.evaluate(async () => (await fetch("/api/people", { headers: { Authorization: `Bearer ${sessionStorage.getItem("vigil-token")}` } })).json());
  await page.close();
  return people.map((p) => p.person).filter((p) => p !== person);
}

/** With no tile server (the node's answer replaced by `{tiles: null}`), the map is the local
 * plane: drawn, with its scale bar, zoomable from the keyboard, and no tile is fetched. */
async function plane(browser, base, { tokens }, tiles) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.route("**/api/map/config", (route) => route.fulfill({ json: { tiles: null } }));
  await login(page, base, tokens.operator, "operator");
  const watch = watchErrors(page);
  const asked = tiles.requests.length;
  await page.click("nav a[href='#map']");
  await page.waitForFunction(() => Number(document.querySelector("#map-canvas")?.dataset.draws ?? 0) > 0
    && /with a position/.test(document.querySelector("#map-status").textContent));
  check(await page.getAttribute("#map-canvas", "data-mode") === "plane", "without a tile server the map is the local plane");
  const before = await page.getAttribute("#map-canvas", "data-scale");
  check(/\d+ k?m/.test(before ?? ""), `the plane draws a scale bar (${before})`);
  await page.focus("#map-canvas");
  for (let i = 0; i < 4; i++) await page.keyboard.press("+");
  await page.waitForFunction((b) => document.querySelector("#map-canvas").dataset.scale !== b, before);
  check(true, `"+" zooms the plane in (scale bar ${before} → ${await page.getAttribute("#map-canvas", "data-scale")})`);
  await page.screenshot({ path: join(ARTIFACTS, "map-plane.png") });
  await accessible(page, "map (plane)");
  check(await page.locator("#map-canvas img").count() === 0 && tiles.requests.length === asked, "the plane fetches no tile");
  check(watch.errors.length === 0, `no script or console error on the plane ${watch.errors.join("; ")}`);
  await page.close();
}

async function patient(browser, base, { tokens, person }, others) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await login(page, base, tokens.patient, "patient");
  for (const section of ["map", "people", "ledger", "queries"]) {
    check(!(await page.isVisible(`nav a[href='#${section}']`)), `a patient has no ${section} section`);
  }
  await page.click("nav a[href='#mine']");
  await page.waitForSelector('figure.chart[data-metric="body-temperature"] svg path');
  await page.waitForSelector("form.instance");
  check(await page.locator("form.instance button[type=submit]").count() === 0, "a patient sees their limits but cannot change them");
  await page.screenshot({ path: join(ARTIFACTS, "patient.png"), fullPage: true });
  await page.click("nav a[href='#alerts']");
  await page.waitForTimeout(1000);
  const text = await page.innerText("body");
  check(!others.some((p) => text.includes(p) || text.includes(p.slice(0, 8))), "a patient's pages show nobody else");
  const other = others[0];
  for (const path of ["/api/people", "/api/map", "/api/map/zones", `/api/people/${other}/readings`,
    `/api/instances?person=${other}`, "/api/ledger/blocks", "/api/ledger/blocks/1/verify"]) {
    check([401, 403].includes(await apiStatus(page, path)), `a patient is refused ${path}`);
  }
  check(await apiStatus(page, `/api/people/${person}/readings`) === 200, "a patient reads their own readings");
  await page.close();
}

async function doctor(browser, base, { tokens }) {
  check(Boolean(tokens.doctor), "the demo issues a doctor's token");
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await login(page, base, tokens.doctor, "doctor");
  check(!(await page.isVisible("nav a[href='#map']")), "a doctor has no map");
  await page.click("nav a[href='#queries']");
  const probe = await apiStatus(page, "/api/queries");
  // The demo always serves private statistics: a demo without them is a failure, not a skip.
  check(probe === 200, `GET /api/queries answers ${probe} (200 expected): the doctor's query is tested`);
  await page.waitForSelector("#query-dps-hint:text('available')");
  await page.selectOption("#query-stat", "mean");
  await page.selectOption("#query-metric", "rr");
  await page.click("#query-run");
  await page.waitForSelector("#query-result [data-verified]", { timeout: 200_000 });
  const verified = await page.getAttribute("#query-result [data-verified]", "data-verified");
  await page.screenshot({ path: join(ARTIFACTS, "query.png"), fullPage: true });
  await accessible(page, "queries");
  check(verified === "true", `the doctor's query result is verified: ${await page.innerText("#query-result")}`);
  await page.close();
}

/** The demo switches one person's phone off at start: its no-signal alert reads in minutes,
 *  with the last reading's time (or that none came yet), never in raw milliseconds. */
async function silence(browser, base, { tokens }) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await login(page, base, tokens.operator, "operator");
  const alert = await page.waitForSelector('li.alert:has-text("no signal for")', { timeout: 300_000 });
  const text = (await alert.innerText()).replace(/\s+/g, " ");
  check(/no signal for \d+ min \((last reading at |no reading yet)/.test(text) && !/\d{10,}/.test(text),
    `the no-signal alert reads in minutes with the last reading's time (${text})`);
  check(/attested/.test(text), "the no-signal alert is labelled as the gateway's attestation");
  await page.close();
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-demo-test-"));
  const port = await freePorts();
  const tiles = await startTileServer();
  const inbox = await startInbox();
  const { child, ready } = startDemo(port, dataDir, tiles, inbox);
  let browser;
  try {
    const demo = await ready;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    const base = `http://127.0.0.1:${port}/`;
    await overTls(port, dataDir);
    const others = await operator(browser, base, demo, tiles, inbox, dataDir);
    await plane(browser, base, demo, tiles);
    await patient(browser, base, demo, others);
    await doctor(browser, base, demo);
    await silence(browser, base, demo);
    console.log("ok: dashboard browser test passed");
  } finally {
    await browser?.close();
    tiles.server.close();
    inbox.webhook.close();
    inbox.smtp.close();
    child.kill("SIGINT");
    await new Promise((ok) => { child.once("exit", ok); setTimeout(ok, 15_000); });
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
