// Drives the back office (/admin/) in Debian's headless Chromium, as the gym's finance desk and front desk use it.
//   node backoffice.js refund BASE_URL SHOTS_DIR '{"username", "password", "orderId"}'
//   node backoffice.js plain BASE_URL SHOTS_DIR '{"username", "password", "orderId"}'   (htmx blocked)
//   node backoffice.js roster BASE_URL SHOTS_DIR '{"username", "password", "orderId", "sessionId", "parent"}'
// Prints one JSON object: what the pages showed. Fails on any script error or Content-Security-Policy violation.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const FONT_DIR = path.join(__dirname, "node_modules", "@fontsource-variable", "noto-sans-sc");
const FONT_CSS = "/__test-fonts/font.css";

async function main() {
  const [scenario, baseUrl, shots, raw] = process.argv.slice(2);
  if (!SCENARIOS[scenario] || !baseUrl || !shots || !raw) {
    throw new Error("usage: node backoffice.js refund|plain|roster|reschedule|attendance BASE_URL SHOTS_DIR JSON");
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "backoffice-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000,
    viewport: { width: 1280, height: 860 }, locale: "zh-CN", timezoneId: "Asia/Shanghai",
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15000);
    const seen = watch(page);
    await lendCJKFont(page, baseUrl);
    const run = { baseUrl, seen, snap: (name) => snap(page, baseUrl, path.join(shots, `backoffice-${scenario}-${name}.png`)) };
    const result = await SCENARIOS[scenario](page, run, JSON.parse(raw));
    if (seen.problems.length) throw new Error(`problems on the page: ${seen.problems.join("; ")}`);
    process.stdout.write(JSON.stringify({ ...result, confirmPosts: seen.confirmPosts, htmxRequests: seen.htmx }));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

function watch(page) {
  // Script errors and CSP refusals fail the run; the refund confirmations the page sent are counted.
  const seen = { problems: [], confirmPosts: 0, htmx: 0 };
  page.on("pageerror", (e) => seen.problems.push(String(e)));
  page.on("console", (msg) => {
    if (msg.type() === "error" && /Content Security Policy|Refused to/.test(msg.text())) seen.problems.push(msg.text());
  });
  page.on("request", (req) => {
    if (req.headers()["hx-request"] === "true") seen.htmx += 1;
    if (req.method() === "POST" && req.url().endsWith("/refund") && (req.postData() || "").includes("step=confirm")) {
      seen.confirmPosts += 1;
    }
  });
  return seen;
}

async function lendCJKFont(page, baseUrl) {
  // This machine may have no Chinese system font: Noto Sans SC from the npm package, served under the page's own
  // origin (the CSP allows only 'self'); the stylesheet already names "Noto Sans SC" first.
  const css = fs.readFileSync(path.join(FONT_DIR, "index.css"), "utf8")
    .replaceAll("'Noto Sans SC Variable'", "'Noto Sans SC'")
    .replaceAll("url(./files/", "url(/__test-fonts/");
  await page.route(`${baseUrl}/__test-fonts/*`, (route) => {
    const name = path.basename(new URL(route.request().url()).pathname);
    if (name === "font.css") return route.fulfill({ body: css, contentType: "text/css" });
    return route.fulfill({ path: path.join(FONT_DIR, "files", name), contentType: "font/woff2" });
  });
}

async function snap(page, baseUrl, file) {
  // The font linked (once per document), every glyph on screen loaded, then the picture.
  if (!(await page.locator(`link[href="${baseUrl}${FONT_CSS}"]`).count())) {
    await page.addStyleTag({ url: `${baseUrl}${FONT_CSS}` });
  }
  await page.evaluate(async () => {
    await document.fonts.load('16px "Noto Sans SC"', document.body.innerText);
    await document.fonts.ready;
  });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file, fullPage: true });
}

async function logIn(page, run, { username, password }) {
  // The home page sends a stranger to the login form, which comes back to the home page.
  await page.goto(`${run.baseUrl}/admin/`);
  await page.locator("#login-submit").waitFor();
  const loginUrl = page.url();
  await page.fill("#username", username);
  await page.fill("#password", password);
  await run.snap("1-login");
  await Promise.all([page.waitForURL(`${run.baseUrl}/admin/`), page.click("#login-submit")]);
  const who = await page.locator("#who").innerText();
  const nav = await page.locator("header nav a").allInnerTexts();
  return { loginUrl, who, nav };
}

async function openOrderBySearch(page, run, orderId) {
  // 订单 → type the order id → the results swap in place (htmx) → the order's page.
  await page.click("header nav >> text=订单");
  await page.fill("#filter-q", orderId);
  await page.press("#filter-q", "Enter");
  const row = page.locator(`#results tr[data-order-id="${orderId}"]`);
  await row.waitFor();
  const listed = await row.innerText();
  await page.waitForURL((url) => url.searchParams.get("q") === orderId); // htmx pushes it once the swap settles
  const searchUrl = page.url();
  await run.snap("2-search");
  await row.locator("a").click();
  await page.locator("#story").waitFor();
  return { listed, searchUrl };
}

const SCENARIOS = {
  async refund(page, run, args) {
    const login = await logIn(page, run, args);
    const home = { abnormalCard: await page.locator("#fig-abnormal").count() };
    const search = await openOrderBySearch(page, run, args.orderId);
    const statusBefore = await page.locator("#order-status").innerText();
    await run.snap("3-order");

    await page.click("#refund-button");
    const dialog = page.locator('#dialog #refund-dialog[data-step="form"]');
    await dialog.waitFor();
    const prefilled = await page.inputValue("#refund-amount");
    const dialogUrl = page.url(); // the dialog opens over the order page: no navigation
    await page.fill("#refund-reason", "家长临时有事，全额退款");
    await run.snap("4-dialog");
    await page.click("#refund-next");
    await page.locator('#refund-dialog[data-step="review"]').waitFor();
    const review = await page.locator("#refund-review").innerText();
    await run.snap("5-confirm");

    await page.dblclick("#refund-confirm"); // a double click must refund once
    await page.locator("#refund-result").waitFor();
    const result = await page.locator("#refund-result").innerText();
    await run.snap("6-submitted");

    // The sandbox settles the refund and notifies the service; the order page redraws itself until it says so.
    await page.locator('#story[data-order-status="refunded"]').waitFor({ timeout: 30000 });
    await page.click("#refund-close");
    await page.locator('#story[data-order-status="refunded"]').waitFor();
    const statusAfter = await page.locator("#order-status").innerText();
    const refundRows = await page.locator("#refunds-table tr.refund-row").evaluateAll(
      (rows) => rows.map((r) => ({ status: r.dataset.status, text: r.innerText })));
    const refundButton = await page.locator("#refund-button").count();
    await run.snap("7-refunded");
    return { ...login, home, ...search, statusBefore, prefilled, dialogUrl, orderUrl: page.url(), review, result,
      statusAfter, refundRows, refundButton };
  },

  async plain(page, run, args) {
    // htmx never arrives (a failed npm step): the same refund as plain links and form posts.
    await page.route(`${run.baseUrl}/admin/static/htmx.min.js`, (route) => route.abort());
    await logIn(page, run, args);
    const search = await openOrderBySearch(page, run, args.orderId);
    await Promise.all([page.waitForURL(/\/refund$/), page.click("#refund-button")]);
    const prefilled = await page.inputValue("#refund-amount");
    await Promise.all([page.waitForNavigation(), page.click("#refund-next")]);
    const review = await page.locator("#refund-review").innerText();
    await Promise.all([page.waitForNavigation(), page.click("#refund-confirm")]);
    const result = await page.locator("#refund-result").innerText();
    await run.snap("3-submitted");
    await page.click("#refund-close");
    // Without htmx the page does not redraw itself: the person reloads until WeChat Pay has settled it.
    const deadline = Date.now() + 30000;
    while (!(await page.locator('#story[data-order-status="refunded"]').count())) {
      if (Date.now() > deadline) throw new Error("the order never showed as refunded");
      await page.waitForTimeout(500);
      await page.reload();
    }
    await run.snap("4-refunded");
    return { ...search, prefilled, review, result, statusAfter: await page.locator("#order-status").innerText() };
  },

  async roster(page, run, args) {
    const login = await logIn(page, run, args);
    await page.click("header nav >> text=课程");
    const session = page.locator(`#schedules-table tr[data-schedule-id="${args.sessionId}"]`);
    const listed = await session.innerText();
    await run.snap("2-sessions");
    await session.locator("a").click();
    const row = page.locator(`#roster-table tr[data-order-id="${args.orderId}"]`);
    await row.waitFor();
    const rostered = await row.innerText();
    const editable = await page.locator("#edit-schedule").count();
    await run.snap("3-roster");

    await row.locator(`a[href="/admin/orders/${args.orderId}"]`).click();
    await page.locator("#story").waitFor();
    const status = await page.locator("#order-status").innerText();
    const refundButton = await page.locator("#refund-button").count();
    await run.snap("4-order");

    // Straight at the refund form, with this session's own XSRF token: the server refuses the role.
    const direct = await page.evaluate(async (orderId) => {
      const xsrf = document.querySelector('input[name="_xsrf"]').value;
      const body = new URLSearchParams({ _xsrf: xsrf, step: "confirm", amount: "200.00", reason: "试试", key: "staff-try" });
      const post = await fetch(`/admin/orders/${orderId}/refund`, { method: "POST", body });
      const get = await fetch(`/admin/orders/${orderId}/refund`);
      return { post: post.status, postText: await post.text(), get: get.status };
    }, args.orderId);
    await page.goto(`${run.baseUrl}/admin/orders/${args.orderId}/refund`);
    const forbiddenPage = await page.locator("main").innerText();
    await run.snap("5-forbidden");
    return { ...login, listed, rostered, editable, status, refundButton, direct, forbiddenPage };
  },
};

Object.assign(SCENARIOS, {
  async reschedule(page, run, args) {
    // The front desk moves a paid booking: 改期 on the order's page, the full session asked for first (名额已满 and
    // its alternatives), then 立即预约 on the first alternative.
    const login = await logIn(page, run, args);
    const search = await openOrderBySearch(page, run, args.orderId);
    await page.click("#reschedule-button");
    await page.locator('#dialog #reschedule-dialog[data-step="form"]').waitFor();
    const choices = await page.locator("#reschedule-target option").allInnerTexts();
    const offeredFull = choices.some((c) => c.includes(args.fullTitle)); // the list offers sessions with a seat
    // The session the parent asks for filled while the dialog was open: its choice stands in the list as it was.
    await page.evaluate((id) => {
      const select = document.querySelector("#reschedule-target");
      const option = new Option("满员", String(id));
      select.add(option);
      select.value = String(id);
    }, args.fullId);
    await run.snap("3-dialog");
    await page.click("#reschedule-submit");
    await page.locator("#reschedule-alternatives").waitFor();
    const refused = await page.locator("#reschedule-error").innerText();
    const alternatives = await page.locator("#reschedule-alternatives li").allInnerTexts();
    await run.snap("4-sold-out");
    await page.locator("#reschedule-alternatives .book-alternative").first().click();
    await page.locator("#reschedule-result").waitFor();
    const result = await page.locator("#reschedule-result").innerText();
    const movedTo = await page.locator("#reschedule-result").getAttribute("data-schedule-id");
    await run.snap("5-moved");
    await page.click("#reschedule-close");
    await page.locator("#story").waitFor();
    const story = await page.locator("#story").innerText();
    return { ...login, ...search, choices, offeredFull, refused, alternatives, result, movedTo, story };
  },

  async attendance(page, run, args) {
    // The front desk marks who came on a started session's roster: 到课, then 爽约 for the same seat.
    const login = await logIn(page, run, args);
    await page.goto(`${run.baseUrl}/admin/schedules/${args.sessionId}`);
    const row = page.locator(`#roster-table tr[data-order-id="${args.orderId}"]`);
    await row.waitFor();
    await run.snap("2-roster");
    await row.locator("button.mark-attended").click();
    await page.locator(`#roster-table tr[data-order-id="${args.orderId}"] td.attendance[data-attendance="attended"]`).waitFor();
    const attended = await page.locator(`#roster-table tr[data-order-id="${args.orderId}"] td.attendance`).innerText();
    await run.snap("3-attended");
    await page.locator(`#roster-table tr[data-order-id="${args.orderId}"] button.mark-no_show`).click();
    await page.locator(`#roster-table tr[data-order-id="${args.orderId}"] td.attendance[data-attendance="no_show"]`).waitFor();
    const noShow = await page.locator(`#roster-table tr[data-order-id="${args.orderId}"] td.attendance`).innerText();
    const waitlist = await page.locator("#waitlist-table tbody tr").allInnerTexts();
    await page.goto(`${run.baseUrl}/admin/`);
    const rate = await page.locator("#fig-no-show").innerText();
    await run.snap("4-home");
    return { ...login, attended, noShow, waitlist, rate };
  },
});

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
