// The mini-program's own pages against the running service and the WeChat sandbox, from Node: the request sequence
// a phone makes, made by the page code itself. Started by tests/miniprogram/test_miniprogram_live.py, which passes
// the addresses and two fresh sessions in the environment and checks the outcome through the API afterwards;
// what the pages did is written to GYM_LIVE_OUT for it.
const fs = require("fs");
const { boot } = require("../platform/mina");
const { createNodeWx, exchange } = require("./node-wx");

const env = {
  apiBase: process.env.GYM_API_BASE,
  wsBase: process.env.GYM_WS_BASE,
  sandbox: process.env.GYM_SANDBOX,
  sandboxEnv: process.env.GYM_SANDBOX_ENV,
  sessions: JSON.parse(process.env.GYM_LIVE_SESSIONS || "{}"),
  out: process.env.GYM_LIVE_OUT,
};

const outcome = {};

afterAll(() => {
  fs.writeFileSync(env.out, JSON.stringify(outcome, null, 2));
});

// Real time here (a real service answers): polls every 20 ms for up to `ms`.
async function eventually(predicate, what, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === "function" ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const showing = (page, text) => eventually(() => page.text().includes(text), () => `the page to show ${text}; it shows: ${page.text()}`);

function phone() {
  const { wx, platform } = createNodeWx(env);
  const mp = boot({ wx, platform, config: { apiBase: env.apiBase, wsBase: env.wsBase } });
  return { platform, mp };
}

async function sandbox(method, path, data) {
  const res = await exchange(env.sandbox + path, { method, data, header: { "Content-Type": "application/json" } });
  if (res.statusCode >= 300) throw new Error(`sandbox ${method} ${path}: ${res.statusCode} ${JSON.stringify(res.data)}`);
  return res.data;
}

test("a parent logs in, picks a session, books and pays: 支付处理中, then 预约成功 pushed by the service", async () => {
  const session = env.sessions.pay;
  const { platform, mp } = phone();
  const list = mp.open("pages/schedules/schedules");
  await showing(list, session.title);
  await eventually(() => mp.app.globalData.token, "the login at launch");
  const index = list.data.items.findIndex((s) => s.id === session.id);
  expect(list.text()).toContain("剩余名额 3");
  await list.tap(".session", index);
  await eventually(() => platform.navigations.length, "the order page to be opened");
  const query = Object.fromEntries(new URLSearchParams(platform.navigations[0].split("?")[1]));
  const page = mp.open("pages/order/order", query);
  await showing(page, "剩余名额3");

  await page.tap("#book");
  await showing(page, "金额固定为200元");
  // WeChat Pay's notification is held for a second, so that the page is seen between the sheet and the push.
  await sandbox("POST", "/sandbox/notifications/next", { action: "delay", count: 1, delay_seconds: 1.0 });
  await page.tap("#confirm-pay");
  await showing(page, "支付处理中");
  const sawProcessingAlone = !page.text().includes("预约成功");
  await showing(page, "预约成功");
  await showing(page, "剩余名额2");
  page.unload();

  Object.assign(outcome, {
    pay: {
      openid: platform.openid, token: mp.app.globalData.token, orderId: page.data.order.order_id, sawProcessingAlone,
      requests: platform.requests, frames: platform.frames, sent: platform.sent, payments: platform.payments,
      subscribeRequests: platform.subscribeRequests, problems: platform.problems, text: page.text(),
    },
  });
  expect(platform.problems).toEqual([]);
});

test("a parent closes the WeChat Pay sheet (支付已取消, the seat back), then pays again from the order page", async () => {
  const session = env.sessions.cancel;
  const { platform, mp } = phone();
  const page = mp.open("pages/order/order", { scheduleId: String(session.id) });
  await showing(page, "剩余名额3");
  platform.holdPayment = () => "cancel";

  await page.tap("#book");
  await page.tap("#confirm-pay");
  await showing(page, "支付已取消");
  const cancelled = page.data.order.order_id;
  await showing(page, "剩余名额3");

  platform.holdPayment = null;
  await page.tap("#retry");
  await showing(page, "金额固定为200元");
  await page.tap("#confirm-pay");
  await showing(page, "预约成功");
  await showing(page, "剩余名额2");
  page.unload();

  Object.assign(outcome, {
    cancel: {
      openid: platform.openid, token: mp.app.globalData.token, cancelled, paid: page.data.order.order_id,
      requests: platform.requests, payments: platform.payments, problems: platform.problems,
    },
  });
  expect(platform.problems).toEqual([]);
});
