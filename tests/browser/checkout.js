// Drives the demo checkout (/demo/) in Debian's headless Chromium, as a parent would click through it.
//   node checkout.js success|cancel|fail|queued BASE_URL SCHEDULE_ID SCREENSHOT.png [SANDBOX_URL]
// Prints one JSON object: what the page showed, the order it made, the WebSocket frames it received and any
// order-status request it made (there must be none: the status comes over the WebSocket).
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const FONT_DIR = path.join(__dirname, "node_modules", "@fontsource-variable", "noto-sans-sc");

async function main() {
  const [scenario, baseUrl, scheduleId, screenshot, sandboxUrl] = process.argv.slice(2);
  if (!SCENARIOS[scenario] || !baseUrl || !scheduleId || !screenshot) {
    throw new Error("usage: node checkout.js success|cancel|fail|queued BASE_URL SCHEDULE_ID SCREENSHOT.png [SANDBOX_URL]");
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "demo-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000,
    viewport: { width: 390, height: 780 }, deviceScaleFactor: 2, locale: "zh-CN", timezoneId: "Asia/Shanghai",
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15000);
    const seen = watch(page);
    const fontCss = await lendCJKFont(page, baseUrl);
    const result = await SCENARIOS[scenario](page, { baseUrl, scheduleId, screenshot, seen, fontCss, sandboxUrl });
    if (seen.pageErrors.length) throw new Error(`errors on the page: ${seen.pageErrors.join("; ")}`);
    process.stdout.write(JSON.stringify({ ...result, frames: seen.frames, polled: seen.polled }));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

function watch(page) {
  // The pushes the page received, and any order read it made after paying started.
  const seen = { frames: [], polled: [], pageErrors: [], paying: false };
  page.on("pageerror", (e) => seen.pageErrors.push(String(e)));
  page.on("websocket", (ws) => ws.on("framereceived", ({ payload }) => {
    try { seen.frames.push(JSON.parse(payload)); } catch (e) { /* not JSON: ignore */ }
  }));
  page.on("request", (req) => {
    if (seen.paying && req.method() === "GET" && req.url().includes("/api/v1/payment/orders")) seen.polled.push(req.url());
  });
  return seen;
}

async function lendCJKFont(page, baseUrl) {
  // This machine may have no Chinese system font: serve Noto Sans SC from the npm package, so the
  // screenshots read as a person sees them. The page's own font stack already names "Noto Sans SC".
  const css = fs.readFileSync(path.join(FONT_DIR, "index.css"), "utf8")
    .replaceAll("'Noto Sans SC Variable'", "'Noto Sans SC'")
    .replaceAll("url(./files/", "url(/__test-fonts/");
  await page.route(`${baseUrl}/__test-fonts/*`, (route) => route.fulfill({
    path: path.join(FONT_DIR, "files", path.basename(new URL(route.request().url()).pathname)),
    contentType: "font/woff2",
  }));
  return css;
}

async function snap(page, file) {
  // Every glyph on screen loaded, then the picture.
  await page.evaluate(async () => {
    await document.fonts.load('16px "Noto Sans SC"', document.body.innerText);
    await document.fonts.ready;
  });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file, fullPage: true });
}

async function bookUpToTheSheet(page, { baseUrl, scheduleId, fontCss, screenshot, steps }) {
  // Log in, pick the session, 立即预约, 确认支付: the WeChat Pay sheet is up. With `steps`, a picture of each.
  const step = (name) => (steps ? snap(page, screenshot.replace(/\.png$/, `-${name}.png`)) : null);
  const loggedIn = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/login") && r.ok());
  await page.goto(`${baseUrl}/demo/`);
  await page.addStyleTag({ content: fontCss });
  await page.click("#login-btn");
  const token = (await (await loggedIn).json()).token;
  const item = page.locator(`[data-schedule-id="${scheduleId}"]`);
  const listed = await item.innerText();
  await step("1-list");
  await item.click();
  await page.locator("#view-detail").waitFor();
  const remainingBefore = await page.locator("#detail-remaining").innerText();
  await page.click("#book-btn");
  await page.locator("#confirm-dialog").waitFor();
  const fixedPrice = await page.locator("#confirm-amount").innerText();
  await step("2-confirm");
  await page.click("#confirm-pay");
  await page.locator("#wxpay-sheet").waitFor();
  const sheetAmount = await page.locator("#sheet-amount").innerText();
  await step("3-sheet");
  return { token, listed, remainingBefore, fixedPrice, sheetAmount };
}

async function outcome(page, status) {
  await page.locator(`#view-result[data-status="${status}"]`).waitFor();
  return { title: await page.locator("#result-title").innerText(), orderId: await page.locator("#order-no").innerText() };
}

const SCENARIOS = {
  async queued(page, run) {
    // The service's budget is full (the test holds it with a WeChat Pay call the sandbox keeps waiting): the
    // login is turned away, 排队中 shows, and the login is sent again after Retry-After; once this script lets the
    // held call go, the budget frees and the login goes through.
    const answers = [];
    page.on("response", (r) => {
      if (r.url().endsWith("/api/v1/auth/login")) answers.push({ status: r.status(), retryAfter: r.headers()["retry-after"] || null });
    });
    await page.goto(`${run.baseUrl}/demo/`);
    await page.addStyleTag({ content: run.fontCss });
    await page.click("#login-btn");
    await page.locator("#queued:not([hidden])").waitFor();
    const queuedText = await page.locator("#queued").innerText();
    await snap(page, run.screenshot);
    const release = await fetch(`${run.sandboxUrl}/sandbox/faults/release`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    const released = await release.json();
    await page.locator("#view-schedules").waitFor();
    const listed = await page.locator(`[data-schedule-id="${run.scheduleId}"]`).innerText();
    return { answers, queuedText, released, queuedAfter: await page.locator("#queued").isHidden(), listed };
  },

  async success(page, run) {
    const booked = await bookUpToTheSheet(page, { ...run, steps: true });
    run.seen.paying = true;
    await page.click("#sheet-pay");
    const shown = await outcome(page, "paid");
    await snap(page, run.screenshot);
    // The same parent books again: the API's refusal is shown as it words it.
    run.seen.paying = false;
    await page.click("#back-to-list");
    await page.locator(`[data-schedule-id="${run.scheduleId}"]`).click();
    await page.click("#book-btn");
    await page.click("#confirm-pay");
    const again = await page.locator("#error:not([hidden])").innerText();
    await snap(page, run.screenshot.replace(/\.png$/, "-4-again.png"));
    return { ...booked, ...shown, again };
  },

  async fail(page, run) {
    // 稍后支付 leaves the order pending; 继续支付 brings the sheet back, where the payment then fails.
    const booked = await bookUpToTheSheet(page, run);
    run.seen.paying = true;
    await page.click("#sheet-later");
    const pending = await outcome(page, "pending");
    await page.click("#resume-pay");
    await page.locator("#wxpay-sheet").waitFor();
    await page.click("#sheet-fail");
    const shown = await outcome(page, "failed");
    await snap(page, run.screenshot);
    return { ...booked, ...shown, pendingTitle: pending.title };
  },

  async cancel(page, run) {
    const booked = await bookUpToTheSheet(page, run);
    run.seen.paying = true;
    await page.click("#sheet-cancel");
    const shown = await outcome(page, "cancelled");
    await snap(page, run.screenshot);
    run.seen.paying = false;
    await page.click("#back-to-list");
    const listedAfter = await page.locator(`[data-schedule-id="${run.scheduleId}"]`).innerText();
    return { ...booked, ...shown, listedAfter };
  },
};

SCENARIOS.waitlist = async (page, run) => {
  // The "done when", as a person does it in one tab: 家长1 fills the one-seat session (稍后支付: the order
  // holds the seat), 家长2 (＋ 另一位家长) finds it full and joins its waitlist, 家长1 cancels from 我的订单, and
  // 家长2 finds the seat kept (有名额了！) and books it.
  const shot = (name) => snap(page, run.screenshot.replace(/\.png$/, `-${name}.png`));
  const booked = await bookUpToTheSheet(page, run);
  await page.click("#sheet-later");
  await outcome(page, "pending");
  await page.click("#back-to-list");
  await page.click("#new-parent");
  await page.locator('#parent-select option:nth-child(2)').waitFor({ state: "attached" });
  const full = await page.locator(`[data-schedule-id="${run.scheduleId}"]`).innerText();
  await page.locator(`[data-schedule-id="${run.scheduleId}"]`).click();
  await page.locator("#join-btn").waitFor();
  const joinOffered = await page.locator("#waitlist-text").innerText();
  await page.click("#join-btn");
  await page.locator('#waitlist[data-status="waiting"]').waitFor();
  const waiting = await page.locator("#waitlist-text").innerText();
  await shot("1-waiting");
  await page.selectOption("#parent-select", "0");  // back to 家长1
  await page.locator("#view-schedules").waitFor();
  await page.click("#my-orders");
  const order = page.locator(`#order-list [data-status="pending"]`);
  await order.waitFor();
  const story = await order.innerText();
  await order.locator("button").click();
  await page.click("#cancel-order");
  const cancelled = await outcome(page, "cancelled");
  await page.selectOption("#parent-select", "1");  // 家长2
  await page.locator("#view-schedules").waitFor();
  await page.locator(`[data-schedule-id="${run.scheduleId}"]`).click();
  await page.locator('#waitlist[data-status="offered"]').waitFor();
  const offered = await page.locator("#waitlist-text").innerText();
  await shot("2-offered");
  await page.click("#book-btn");
  await page.click("#confirm-pay");
  await page.locator("#wxpay-sheet").waitFor();
  await page.click("#sheet-pay");
  const paid = await outcome(page, "paid");
  await snap(page, run.screenshot);
  await page.click("#back-to-list");
  await page.click("#my-orders");
  await page.locator(`#view-orders:not([hidden]) #order-list [data-order-id="${paid.orderId}"]`).waitFor();
  const stories = await page.locator("#order-list .story").allInnerTexts();
  return { ...booked, full, joinOffered, waiting, story, cancelled: cancelled.title, offered, title: paid.title,
    orderId: paid.orderId, stories };
};

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
