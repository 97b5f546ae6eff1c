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
//    people and queries pages.
// Screenshots of the main pages, at 1280×800 and at phone width, go to ./artifacts (git-ignored).
//
//   VIGIL_BIN=../../target/debug/vigil node demo.test.mjs
//
// Uses playwright-core with Debian's chromium (CHROMIUM=/usr/bin/chromium by default).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

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
// MIT-BIH records for the demo's ECG patches when present (synthetic ECG otherwise).
const MITDB = process.env.VIGIL_MITDB ?? resolve(here, "../../../shared/data/mitdb");

function portFree(port) {
  return new Promise((ok) => {
    const server = createServer();
    server.once("error", () => ok(false));
    server.listen(port, "127.0.0.1", () => server.close(() => ok(true)));
  });
}

/** A port P with P and P+1 free on 127.0.0.1 (HTTP and MQTT). */
async function freePorts() {
  for (let i = 0; i < 50; i++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await portFree(port)) && (await portFree(port + 1))) return port;
  }
  throw new Error("no free port pair");
}

function startDemo(port, dataDir) {
  const child = spawn(VIGIL, ["demo", "--people", "20", "--speed", "10", "--port", String(port),
    "--data-dir", dataDir, "--duration-s", "900", ...(existsSync(MITDB) ? ["--mitdb", MITDB] : []),
    // An alert nobody acknowledges is escalated after 20 s of block time (the policy is
    // deployed through the ledger), its person reminded after 10 s.
    "--escalate-after-s", "20", "--remind-after-s", "10", "--repeat-s", "60"],
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

async function operator(browser, base, { tokens, person }) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));

  // A wrong token is refused in plain words.
  await page.goto(base);
  await page.fill("#token", "not-a-token");
  await page.press("#token", "Enter");
  await page.waitForSelector("#login-error:text('not recognised')");
  check(true, "a wrong token is refused in plain words");
  await accessible(page, "login");

  await page.fill("#token", tokens.operator);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#whoami:text('operator')");
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

  // The map: positions, zones and a scale bar.
  await page.click("nav a[href='#map']");
  await page.waitForFunction(() => Number(document.querySelector("#map-canvas")?.dataset.draws ?? 0) > 0
    && /with a position/.test(document.querySelector("#map-status").textContent));
  const scale = await page.getAttribute("#map-canvas", "data-scale");
  check(/\d+ k?m/.test(scale ?? ""), `the map draws a scale bar (${scale})`);
  await page.waitForSelector("#map-alerted a");
  await page.screenshot({ path: join(ARTIFACTS, "map.png") });
  await accessible(page, "map");
  // Keyboard: the canvas takes focus and zooms with "+".
  await page.focus("#map-canvas");
  await page.keyboard.press("+");

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

  // The change in the ledger explorer.
  await page.click(`a[href="#ledger/${height}"]`);
  await page.waitForSelector("#block-detail tr[data-kind=ReplaceInstance]");
  check(true, `the ledger explorer shows the ReplaceInstance transaction in block ${height}`);
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
  await page.goto(`${base}#person/${person}`);
  await page.waitForSelector('figure.chart[data-metric="body-temperature"] svg path');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the person page fits a phone's width (overflow ${overflow}px)`);
  await page.screenshot({ path: join(ARTIFACTS, "person-phone.png"), fullPage: true });
  check(errors.length === 0, `no script error in the operator's session ${errors.join("; ")}`);
  const { people } = await page.evaluate(async () => (await fetch("/api/people", { headers: { Authorization: `Bearer ${sessionStorage.getItem("vigil-token")}` } })).json());
  await page.close();
  return people.map((p) => p.person).filter((p) => p !== person);
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
  const { child, ready } = startDemo(port, dataDir);
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
    const others = await operator(browser, base, demo);
    await patient(browser, base, demo, others);
    await doctor(browser, base, demo);
    await silence(browser, base, demo);
    console.log("ok: dashboard browser test passed");
  } finally {
    await browser?.close();
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
