// Browser test of the dashboard against a real `vigil demo`: an operator logs in, sees an
// alert appear (the demo scripts a fever, a trip away from home and a desaturation at start),
// acknowledges it and sees the ledger explorer. Screenshots go to ./artifacts (not committed).
//
//   VIGIL_BIN=../../target/debug/vigil node demo.test.mjs
//
// Uses playwright-core with Debian's chromium (CHROMIUM=/usr/bin/chromium by default).

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const here = new URL(".", import.meta.url).pathname;
const VIGIL = process.env.VIGIL_BIN ?? resolve(here, "../../target/debug/vigil");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = join(here, "artifacts");
const START_TIMEOUT_MS = 180_000;
const ALERT_TIMEOUT_MS = 150_000;

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
    "--data-dir", dataDir, "--duration-s", "600"], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const ready = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`demo did not start in time:\n${output}`)), START_TIMEOUT_MS);
    const onData = (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
      const tokens = Object.fromEntries([...output.matchAll(/^\s+(operator|admin|doctor|patient)\s+([0-9a-f]{64})/gm)]
        .map((m) => [m[1], m[2]]));
      if (tokens.operator && tokens.patient && output.includes("Dashboard:")) {
        clearTimeout(timer);
        ok(tokens);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (c) => process.stderr.write(c));
    child.on("exit", (code) => { clearTimeout(timer); fail(new Error(`demo exited (${code}):\n${output}`)); });
  });
  return { child, ready };
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-demo-test-"));
  const port = await freePorts();
  const { child, ready } = startDemo(port, dataDir);
  let browser;
  try {
    const tokens = await ready;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const base = `http://127.0.0.1:${port}/`;

    // A wrong token is refused in plain words.
    await page.goto(base);
    await page.fill("#token", "not-a-token");
    await page.press("#token", "Enter");
    await page.waitForSelector("#login-error:text('not recognised')");

    // The operator logs in and sees an alert arrive.
    await page.fill("#token", tokens.operator);
    await page.click("button[type=submit]");
    await page.waitForSelector("#whoami:text('operator')");
    await page.screenshot({ path: join(ARTIFACTS, "alerts-empty-or-loading.png") });
    const alert = await page.waitForSelector("li.alert", { timeout: ALERT_TIMEOUT_MS });
    console.log("alert seen:", (await alert.innerText()).replace(/\s+/g, " "));
    await page.screenshot({ path: join(ARTIFACTS, "alerts.png") });

    // Acknowledge the first open alert and see the ledger finalize it.
    const open = await page.waitForSelector("li.alert[data-status=open] button:text('Acknowledge')");
    const id = await open.evaluate((b) => b.closest("li").dataset.alert);
    await open.click();
    await page.waitForSelector(`li.alert[data-alert="${id}"][data-status=acknowledged]`, { timeout: 60_000 });

    // People and the ledger explorer.
    await page.click("nav a[href='#people']");
    await page.waitForSelector("#people-body code");
    await page.screenshot({ path: join(ARTIFACTS, "people.png") });
    await page.click("nav a[href='#ledger']");
    await page.waitForSelector("#blocks-body button");
    await page.click("#blocks-body button");
    await page.waitForSelector("#block-detail h3");
    await page.screenshot({ path: join(ARTIFACTS, "ledger.png") });

    // A patient sees no staff sections.
    const patient = await browser.newPage();
    await patient.goto(base);
    await patient.fill("#token", tokens.patient);
    await patient.press("#token", "Enter");
    await patient.waitForSelector("#whoami:text('patient')");
    if (await patient.isVisible("nav a[href='#people']")) throw new Error("a patient sees the people list");
    await patient.screenshot({ path: join(ARTIFACTS, "patient.png") });
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
