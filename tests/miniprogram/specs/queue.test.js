// 503 with Retry-After (the service too busy to admit the call now, contract §2: safe to retry): the page shows
// 排队中 and sends the same call again after the time named, with the same Idempotency-Key; past its budget it shows
// the API's message. On jest's fake clock, moved on by the spec.
const { launch } = require("../platform/launch");
const { until, settle } = require("../platform/mina");

const CREATE = "/api/v1/payment/orders/create";
const BUSY = { status: 503, code: "SERVICE_UNAVAILABLE", message: "服务繁忙，请稍后重试", headers: { "Retry-After": "2" } };

beforeEach(() => {
  jest.useFakeTimers();
});

afterEach(() => {
  jest.useRealTimers();
});

async function orderPage() {
  const world = launch();
  const page = world.mp.open("pages/order/order", { scheduleId: "7" });
  await page.shows("剩余名额3");
  return Object.assign(world, { page });
}

test("orders/create turned away twice: 排队中, then the same call after Retry-After, the same key, one order", async () => {
  const { page, service, platform } = await orderPage();
  service.refuse("POST", CREATE, BUSY, 2);
  await page.tap("#book");
  await page.tap("#confirm-pay");
  await page.shows("排队中，请稍候…");
  expect(service.callsTo("POST", CREATE)).toHaveLength(1);

  await jest.advanceTimersByTimeAsync(1999);
  expect(service.callsTo("POST", CREATE)).toHaveLength(1);
  await jest.advanceTimersByTimeAsync(401);  // Retry-After plus at most a fifth of it, so a crowd comes back spread out
  await until(() => service.callsTo("POST", CREATE).length === 2, "the second try");
  expect(page.text()).toContain("排队中");

  await jest.advanceTimersByTimeAsync(2400);
  await until(() => platform.payments.length, "the WeChat Pay sheet");
  const keys = service.callsTo("POST", CREATE).map((c) => c.header["Idempotency-Key"]);
  expect(keys).toHaveLength(3);
  expect(new Set(keys).size).toBe(1);
  expect(service.orders.size).toBe(1);
  expect(page.text()).not.toContain("排队中");
  expect(page.data.notice).toBe("");
});

test("wxpay/create turned away once: 排队中, then the sheet", async () => {
  const { page, service, platform } = await orderPage();
  service.refuse("POST", "/api/v1/payment/wxpay/create", { status: 503, code: "PAYMENT_UNAVAILABLE", message: "微信支付暂时不可用，请稍后重试", headers: { "retry-after": "1" } });
  await page.tap("#book");
  await page.tap("#confirm-pay");
  await page.shows("排队中");
  await jest.advanceTimersByTimeAsync(1200);
  await until(() => platform.payments.length, "the WeChat Pay sheet");
  expect(page.text()).not.toContain("排队中");
});

test("still turned away after 30 s of waiting: the API's message, and no more tries", async () => {
  const { page, service } = await orderPage();
  service.refuse("POST", CREATE, BUSY, 1000);
  await page.tap("#book");
  await page.tap("#confirm-pay");
  await jest.advanceTimersByTimeAsync(31000);
  await page.shows("服务繁忙，请稍后重试");
  expect(page.text()).not.toContain("排队中");
  const tries = service.callsTo("POST", CREATE).length;
  expect(tries).toBeGreaterThanOrEqual(10);
  expect(tries).toBeLessThanOrEqual(16);
  await jest.advanceTimersByTimeAsync(60000);
  expect(service.callsTo("POST", CREATE)).toHaveLength(tries);
});

test("a Retry-After of an hour waits at most 10 s between tries", async () => {
  const { page, service } = await orderPage();
  service.refuse("POST", CREATE, Object.assign({}, BUSY, { headers: { "Retry-After": "3600" } }), 1);
  await page.tap("#book");
  await page.tap("#confirm-pay");
  await page.shows("排队中");
  await jest.advanceTimersByTimeAsync(12000);
  await until(() => service.callsTo("POST", CREATE).length === 2, "the second try");
});

test("a 503 without Retry-After is not queued: its message at once", async () => {
  const { page, service } = await orderPage();
  service.refuse("POST", CREATE, { status: 503, code: "SERVICE_UNAVAILABLE", message: "服务暂时不可用，请稍后重试" });
  await page.tap("#book");
  await page.tap("#confirm-pay");
  await page.shows("服务暂时不可用，请稍后重试");
  await settle();
  expect(page.text()).not.toContain("排队中");
  expect(service.callsTo("POST", CREATE)).toHaveLength(1);
});

test("login turned away: a fresh wx.login code for each try (a code is spent once used)", async () => {
  const world = launch();
  world.service.refuse("POST", "/api/v1/auth/login", BUSY, 1);
  await until(() => world.platform.codes.length === 1, "the launch login");
  await jest.advanceTimersByTimeAsync(2400);
  await until(() => world.mp.app.globalData.token, "the token");
  expect(world.platform.codes).toEqual(["code-1", "code-2"]);
  expect(world.service.callsTo("POST", "/api/v1/auth/login").map((c) => c.data.code)).toEqual(["code-1", "code-2"]);
});

test("the list turned away: 排队中 over the list, then the sessions", async () => {
  const world = launch();
  world.service.refuse("GET", "/api/v1/courses/schedules", BUSY, 1);
  const page = world.mp.open("pages/schedules/schedules");
  await page.shows("排队中，请稍候…");
  await jest.advanceTimersByTimeAsync(2400);
  await page.shows("剩余名额 3");
  expect(page.text()).not.toContain("排队中");
});
