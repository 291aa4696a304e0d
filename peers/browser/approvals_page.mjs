#!/usr/bin/env node
// Drives the gateway's approvals page (`portcullis run --admin ADDR`, GET /approvals) in Debian's
// headless Chromium with playwright-core, as a human would: open the page with the admin token in
// the URL fragment, wait for each expected pending call, check that its exact arguments, effect
// class and rule are shown (and that nothing in them was rendered as HTML), screenshot it, click
// Approve or Deny, and wait until the page shows it resolved.
//
//   node peers/browser/approvals_page.mjs --url http://127.0.0.1:PORT --token-file STATE/admin.token \
//        --steps STEPS.json [--timeout-ms 20000]
//
// STEPS.json is a list, one entry per pending call, in the order they are expected:
//   {"expect": {"server": "echo", "tool": "write_file", "arguments": {...}, "effect": "write",
//               "rule": "browser-writes"},
//    "action": "approve" | "deny",
//    "screenshot": "pending.png" (optional), "screenshot_after": "resolved.png" (optional)}
// A step's call may already be pending when the page opens, or appear later: the page must show it
// without a reload (the driver fails if the page was loaded more than once).
//
// Output (stdout, one JSON object a line): {"event": "resolved", "step": N, "id": ...} after each
// step, so a test can create the next call only once the page has shown the previous one resolved;
// then a summary {"ok": true|false, ...}. Exit status 0 when every check passed, 1 when one failed,
// 2 on bad usage or when Chromium or playwright-core is missing (install: scripts/install-browser).
//
// Environment: CHROMIUM (default /usr/bin/chromium), PORTCULLIS_PEERS_DIR (playwright-core is taken
// from $PORTCULLIS_PEERS_DIR/browser, default <repo>/.peers/browser).
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const started = Date.now();
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const peersDir = process.env.PORTCULLIS_PEERS_DIR || path.join(repo, ".peers");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
// The flags known to work on this machine's closed network (see peers/README.md).
const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];
// The only elements the page itself creates inside its lists.
const PAGE_TAGS = new Set(["ARTICLE", "H2", "DL", "DT", "DD", "SPAN", "P", "PRE", "BUTTON", "LI"]);

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function usage(message) {
  emit({ ok: false, error: message });
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { timeoutMs: 20000 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) usage(`${flag} needs a value`);
    if (flag === "--url") opts.url = value.replace(/\/+$/, "");
    else if (flag === "--token-file") opts.tokenFile = value;
    else if (flag === "--steps") opts.steps = value;
    else if (flag === "--timeout-ms") opts.timeoutMs = Number(value);
    else usage(`unknown argument ${flag}`);
  }
  if (!opts.url || !opts.tokenFile || !opts.steps) usage("need --url, --token-file and --steps");
  return opts;
}

// JSON with sorted keys: the same value, however its keys were ordered.
function canonical(value) {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

function check(cond, what, details) {
  if (!cond) throw new Error(what + (details === undefined ? "" : ": " + JSON.stringify(details)));
}

const opts = parseArgs(process.argv.slice(2));
if (!existsSync(chromiumPath)) usage(`Chromium is missing at ${chromiumPath}: run scripts/install-browser`);
let chromium;
try {
  ({ chromium } = createRequire(path.join(peersDir, "browser", "package.json"))("playwright-core"));
} catch (e) {
  usage(`playwright-core is missing in ${path.join(peersDir, "browser")}: run scripts/install-browser (${e.message})`);
}
const token = readFileSync(opts.tokenFile, "utf8").trim();
const steps = JSON.parse(readFileSync(opts.steps, "utf8"));

const summary = { ok: false, steps: [], dialogs: [], page_errors: [], console_errors: [], loads: 0 };
let browser;
try {
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS });
  summary.browser = browser.version();
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  page.setDefaultTimeout(opts.timeoutMs);
  // Anything the arguments could make the page do, if they were ever rendered as HTML.
  page.on("dialog", (d) => {
    summary.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on("pageerror", (e) => summary.page_errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") summary.console_errors.push(m.text()); });
  page.on("load", () => { summary.loads += 1; });

  await page.goto(`${opts.url}/approvals#token=${token}`);
  // The token moves from the fragment to session storage at once.
  await page.waitForFunction(() => location.hash === "");
  check(!page.url().includes(token), "the token is still in the URL", page.url());
  // A reload would lose this marker; every step checks it is still there.
  await page.evaluate(() => { window.__driverMarker = "first-load"; });
  summary.launched_ms = Date.now() - started;

  for (const [n, step] of steps.entries()) {
    const t0 = Date.now();
    const want = step.expect;
    const id = await page.waitForFunction(({ server, tool, args, allowed }) => {
      // Markup from the arguments would show up as elements the page never creates: stop at once.
      for (const e of document.querySelectorAll("#approvals *, #resolved *")) {
        if (!allowed.includes(e.tagName)) return "INJECTED " + e.outerHTML.slice(0, 120);
      }
      for (const card of document.querySelectorAll("#approvals article.approval")) {
        const title = card.querySelector("h2")?.textContent;
        const pre = card.querySelector("pre.arguments")?.textContent;
        if (title !== server + "." + tool || pre === undefined) continue;
        let shown;
        try { shown = JSON.parse(pre); } catch { continue; }
        const canon = (v) => Array.isArray(v) ? "[" + v.map(canon).join(",") + "]"
          : v && typeof v === "object" ? "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canon(v[k])).join(",") + "}"
          : JSON.stringify(v);
        if (canon(shown) === args) return card.dataset.id;
      }
      return false;
    }, { server: want.server, tool: want.tool, args: canonical(want.arguments), allowed: [...PAGE_TAGS] })
      .then((h) => h.jsonValue());
    check(!id.startsWith("INJECTED "), `step ${n}: elements injected into the page`, id);
    const appeared_ms = Date.now() - t0;
    const card = page.locator(`#approvals article.approval[data-id="${id}"]`);
    const shown = await card.evaluate((c) => ({
      effect: c.querySelector(".effect")?.textContent,
      rule: c.querySelector(".rule")?.textContent,
      args_text: c.querySelector("pre.arguments")?.textContent,
      buttons: [...c.querySelectorAll("button")].map((b) => b.className + ":" + b.textContent),
    }));
    check(shown.effect === want.effect, `step ${n}: effect shown`, shown.effect);
    check(shown.rule === want.rule, `step ${n}: rule shown`, shown.rule);
    // Every string argument appears verbatim (as JSON text) in the arguments block.
    for (const v of Object.values(want.arguments)) {
      if (typeof v === "string") check(shown.args_text.includes(JSON.stringify(v)), `step ${n}: argument shown verbatim`, v);
    }
    check(await page.evaluate(() => window.__driverMarker) === "first-load" && summary.loads === 1,
      `step ${n}: the call appeared only after a reload`, summary.loads);
    const foreign = await page.evaluate((allowed) => {
      const bad = [];
      for (const e of document.querySelectorAll("#approvals *, #resolved *")) {
        if (!allowed.includes(e.tagName)) bad.push(e.outerHTML.slice(0, 120));
      }
      for (const e of document.querySelectorAll("img, iframe, object, embed, svg, [onerror], [onload], [src]:not(script[src='/approvals.js'])")) {
        bad.push(e.outerHTML.slice(0, 120));
      }
      return bad;
    }, [...PAGE_TAGS]);
    check(foreign.length === 0, `step ${n}: elements injected into the page`, foreign);
    if (step.screenshot) await page.screenshot({ path: step.screenshot, fullPage: true });

    const action = step.action || "approve";
    const outcome = action === "approve" ? "approved" : "denied";
    await card.locator(`button.${action}`).click();
    await page.locator(`#resolved li[data-id="${id}"][data-outcome="${outcome}"]`).waitFor();
    await card.waitFor({ state: "detached" });
    // The status line shows a successful refresh after the resolution.
    await page.waitForFunction(() => /pending · updated/.test(document.getElementById("status").textContent));
    if (step.screenshot_after) await page.screenshot({ path: step.screenshot_after, fullPage: true });
    const record = { step: n, id, action, effect: shown.effect, rule: shown.rule, appeared_ms, step_ms: Date.now() - t0 };
    summary.steps.push(record);
    emit({ event: "resolved", ...record });
  }
  check(summary.dialogs.length === 0, "the page opened dialogs", summary.dialogs);
  check(summary.page_errors.length === 0, "the page threw", summary.page_errors);
  check(summary.console_errors.length === 0, "the page logged errors", summary.console_errors);
  summary.ok = true;
} catch (e) {
  summary.error = String(e && e.message ? e.message : e);
} finally {
  if (browser) await browser.close().catch(() => {});
  summary.total_ms = Date.now() - started;
  emit(summary);
  process.exitCode = summary.ok ? 0 : 1;
}
