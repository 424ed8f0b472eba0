// The books closed by hand after `make run` (issue 14's "done when"), in Debian's headless Chromium: parents pay a
// few orders in the demo; finance opens today's 对账 page from the back office, reconciles it and sees it matched;
// the sandbox's bill page adds a foreign row; finance reconciles again, sees it flagged and records a decision.
//   node books.js BASE_URL SANDBOX_URL SHOTS_DIR '{"username", "password", "payments"}'
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

async function main() {
  const [baseUrl, sandboxUrl, shots, raw] = process.argv.slice(2);
  if (!baseUrl || !sandboxUrl || !shots || !raw) {
    throw new Error("usage: node books.js BASE_URL SANDBOX_URL SHOTS_DIR JSON");
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "books-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000,
    viewport: { width: 1280, height: 860 }, locale: "zh-CN", timezoneId: "Asia/Shanghai",
  });
  try {
    const problems = [];
    const open = async () => {
      const page = context.pages().find((p) => p.url() === "about:blank") || (await context.newPage());
      page.setDefaultTimeout(15000);
      page.on("pageerror", (e) => problems.push(String(e)));
      page.on("console", (msg) => {
        if (msg.type() === "error" && /Content Security Policy|Refused to/.test(msg.text())) problems.push(msg.text());
      });
      for (const origin of [baseUrl, sandboxUrl]) await lendCJKFont(page, origin);
      return page;
    };
    const snap = (page, name) => shoot(page, path.join(shots, `books-${name}.png`));
    const result = await closeTheBooks({ open, snap, baseUrl, sandboxUrl }, JSON.parse(raw));
    if (problems.length) throw new Error(`problems on the pages: ${problems.join("; ")}`);
    process.stdout.write(JSON.stringify(result));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

async function lendCJKFont(page, origin) {
  // This machine may have no Chinese system font: Noto Sans SC from the npm package, under each page's own origin.
  const css = fs.readFileSync(path.join(FONT_DIR, "index.css"), "utf8")
    .replaceAll("'Noto Sans SC Variable'", "'Noto Sans SC'")
    .replaceAll("url(./files/", "url(/__test-fonts/");
  await page.route(`${origin}/__test-fonts/*`, (route) => {
    const name = path.basename(new URL(route.request().url()).pathname);
    if (name === "font.css") return route.fulfill({ body: css, contentType: "text/css" });
    return route.fulfill({ path: path.join(FONT_DIR, "files", name), contentType: "font/woff2" });
  });
}

async function shoot(page, file) {
  // The font linked, every glyph on screen loaded, then the picture.
  const href = `${new URL(page.url()).origin}/__test-fonts/font.css`;
  if (!(await page.locator(`link[href="${href}"]`).count())) await page.addStyleTag({ url: href }).catch(() => {});
  await page.evaluate(async () => {
    document.body.style.fontFamily = '"Noto Sans SC", sans-serif';
    await document.fonts.load('16px "Noto Sans SC"', document.body.innerText);
    await document.fonts.ready;
  }).catch(() => {}); // a page whose CSP refuses the font is pictured in the system font
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file, fullPage: true });
}

async function payInTheDemo(page, run, count) {
  // A new parent for each payment (微信一键登录 is a new WeChat user), each on the next session in the list.
  const orders = [];
  for (let i = 0; i < count; i += 1) {
    await page.goto(`${run.baseUrl}/demo/`);
    await page.click("#login-btn");
    const sessions = page.locator("#view-schedules:not([hidden]) [data-schedule-id]");
    await sessions.first().waitFor();
    await sessions.nth(i % (await sessions.count())).click();
    await page.click("#book-btn");
    await page.click("#confirm-pay");
    await page.locator("#wxpay-sheet").waitFor();
    await page.click("#sheet-pay");
    await page.locator('#view-result[data-status="paid"]').waitFor();
    orders.push(await page.locator("#order-no").innerText());
  }
  await run.snap(page, "1-demo-paid");
  return orders;
}

async function logIn(page, run, { username, password }) {
  await page.goto(`${run.baseUrl}/admin/`);
  await page.fill("#username", username);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL(`${run.baseUrl}/admin/`), page.click("#login-submit")]);
}

async function dayPage(page) {
  // What a day's 对账 page shows: its status, the two totals rows, the discrepancies with their forms.
  const cells = async (id) => page.locator(`#${id} td`).allInnerTexts();
  const rows = await page.locator("#discrepancies tbody tr").evaluateAll((trs) => trs.map((tr) => ({
    id: tr.dataset.discrepancyId, category: tr.dataset.category, resolution: tr.dataset.resolution,
    text: tr.innerText, form: !!tr.querySelector("form.decide"),
  })));
  return { status: await page.locator("#bill-status").getAttribute("data-status"),
    label: await page.locator("#bill-status").innerText(), wechat: await cells("totals-wechat"),
    ledger: await cells("totals-ledger"), discrepancies: rows,
    noDiscrepancies: await page.locator("#no-discrepancies").count(),
    decideHint: await page.locator("#decide-hint").count() };
}

async function addForeignRow(page, run, amount) {
  // The sandbox's dashboard → 账单 → 今天 → the foreign-row form: a payment WeChat Pay "made" that nobody ordered.
  await page.goto(`${run.sandboxUrl}/sandbox/`);
  await Promise.all([page.waitForURL(/\/sandbox\/bill\?date=/), page.click('#bills + p a:has-text("今天 Today")')]);
  const billUrl = page.url();
  await page.fill('form[action$="/rows"] input[name="amount"]', String(amount));
  await Promise.all([page.waitForNavigation(), page.click('form[action$="/rows"] button[type="submit"]')]);
  const columns = await page.locator(".wide table tr").first().locator("th").allInnerTexts();
  const foreign = page.locator("tr.bill-row.foreign");
  await foreign.waitFor();
  const values = await foreign.locator("td").allInnerTexts();
  await run.snap(page, "4-sandbox-foreign-row");
  return { billUrl, outTradeNo: values[columns.indexOf("商户订单号")], status: values[columns.indexOf("交易状态")] };
}

async function closeTheBooks(run, args) {
  const demo = await run.open();
  const orders = await payInTheDemo(demo, run, args.payments);

  const office = await run.open();
  await logIn(office, run, args);
  await office.click("header nav >> text=对账");
  await office.locator("#reconcile-form").waitFor();
  const prefilled = await office.inputValue("#bill-date");
  const listing = await office.locator("#reconcile-form").innerText();
  await run.snap(office, "2-bills");
  await office.click("#today-link"); // today's page, not yet reconciled
  const before = await office.locator("#bill-status").innerText();
  await Promise.all([office.waitForURL(/saved=reconciled/), office.click("#reconcile-again")]);
  const day = new URL(office.url()).pathname.split("/").pop();
  const first = await dayPage(office);
  await run.snap(office, "3-matched");

  const sandbox = await run.open();
  const foreign = await addForeignRow(sandbox, run, args.foreignAmount);

  await office.bringToFront();
  await Promise.all([office.waitForURL(/saved=reconciled/), office.click("#reconcile-again")]);
  const second = await dayPage(office);
  await run.snap(office, "5-flagged");
  await office.goto(`${run.baseUrl}/admin/`);
  const banner = await office.locator(`.banner-undecided[data-bill-date="${day}"]`).innerText();
  await office.click(`.banner-undecided[data-bill-date="${day}"] a`);

  const row = office.locator(`#discrepancies tr[data-category="missing_in_ledger"]`);
  await row.locator('select[name="resolution"]').selectOption("written_off");
  await row.locator('input[name="note"]').fill("外来交易，已与微信支付核对");
  await Promise.all([office.waitForURL(/saved=decided/), row.locator('button[type="submit"]').click()]);
  const decided = await dayPage(office);
  await run.snap(office, "6-decided");
  await office.goto(`${run.baseUrl}/admin/`);
  const bannerAfter = await office.locator(".banner-undecided").count();
  return { orders, prefilled, listing, before, day, first, foreign, second, banner, decided, bannerAfter };
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
