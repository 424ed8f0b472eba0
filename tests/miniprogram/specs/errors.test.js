// Every error code of the contract's table (../shared/contract.md §2), and the service's own extra ones, shown to the
// parent with the API's Chinese message, wherever the refusal comes from; and what the page does next.
const { launch } = require("../platform/launch");
const { until, settle } = require("../platform/mina");

// [status, code, the service's message (errors.py and the services that raise it), extra fields]
const CONTRACT_TABLE = [
  [400, "INVALID_REQUEST", "course_schedule_id 必须是整数"],
  [401, "UNAUTHENTICATED", "登录状态无效，请重新登录"],
  [403, "FORBIDDEN", "无权执行此操作"],
  [404, "NOT_FOUND", "课程不存在"],
  [409, "TRIAL_ALREADY_BOOKED", "您已预约过体验课，无法重复预约"],
  [409, "PENDING_ORDER_EXISTS", "您有一笔待支付的订单，请先完成支付或取消", { order_id: "e".repeat(32) }],
  [409, "SOLD_OUT", "名额已满", { alternatives: [] }],
  [409, "SEATS_AVAILABLE", "该课程还有名额，请直接预约"],
  [409, "ORDER_NOT_RESCHEDULABLE", "该订单不能改期"],
  [409, "ORDER_NOT_PAYABLE", "订单已不可支付"],
  [422, "AMOUNT_MISMATCH", "订单金额与体验课价格不符"],
  [409, "ORDER_NOT_REFUNDABLE", "订单不是已支付或待退款状态，不能退款"],
  [422, "REFUND_EXCEEDS_PAID", "退款金额须在 1 分到可退金额之间"],
  [409, "REFUND_REJECTED", "微信支付拒绝了退款"],
  [409, "OPERATOR_EXISTS", "该用户名已存在"],
  [413, "PAYLOAD_TOO_LARGE", "请求体超过 65536 字节"],
  [429, "RATE_LIMITED", "请求过于频繁，请稍后再试"],
  [503, "PAYMENT_UNAVAILABLE", "微信支付暂时不可用，请稍后重试"],
  [503, "SERVICE_UNAVAILABLE", "服务暂时不可用，请稍后重试"],
];

const SERVICE_EXTRAS = [
  [422, "IDEMPOTENCY_KEY_REUSED", "该 Idempotency-Key 已用于另一个请求"],
  [409, "SCHEDULE_CLOSED", "该课程已开始，无法预约"],
  [422, "PAYMENT_REJECTED", "微信支付拒绝了该订单：商户号无效", { wechat_code: "INVALID_REQUEST" }],
  [500, "INTERNAL_ERROR", "服务器内部错误"],
];

async function orderPage(serviceOptions) {
  const world = launch(serviceOptions);
  const page = world.mp.open("pages/order/order", { scheduleId: "7" });
  await page.shows("剩余名额3");
  return Object.assign(world, { page });
}

async function confirmPay(page) {
  await page.tap("#book");
  await page.tap("#confirm-pay");
}

const CREATE = "/api/v1/payment/orders/create";

test.each(CONTRACT_TABLE.concat(SERVICE_EXTRAS))("%i %s on 确认支付 is shown as the API words it", async (status, code, message, extra = {}) => {
  const { page, service, platform } = await orderPage();
  service.seedOrder({ order_id: "e".repeat(32), course_schedule_id: 8, status: "pending" });  // PENDING_ORDER_EXISTS names it
  // UNAUTHENTICATED twice: once is mended by logging in again (see below); the second is the parent's to see.
  service.refuse("POST", CREATE, { status, code, message, extra }, code === "UNAUTHENTICATED" ? 2 : 1);
  await confirmPay(page);
  await page.shows(message);
  expect(page.text()).not.toContain("确认预约");
  expect(page.data.busy).toBe(false);
  expect(platform.payments).toEqual([]);
  expect(page.text()).not.toContain("请求失败");
});

test("PENDING_ORDER_EXISTS: besides the message, the page follows the open order it names", async () => {
  const { page, service } = await orderPage();
  service.seedOrder({ order_id: "e".repeat(32), course_schedule_id: 8, status: "pending" });
  service.refuse("POST", CREATE, { status: 409, code: "PENDING_ORDER_EXISTS", message: "您有一笔待支付的订单，请先完成支付或取消", extra: { order_id: "e".repeat(32) } });
  await confirmPay(page);
  await page.shows("您有一笔待支付的订单");
  await until(() => service.sockets.length && service.sockets[0].sent.length, "the subscription");
  expect(service.sockets[0].sent).toEqual([{ op: "subscribe", order_id: "e".repeat(32) }]);
  await page.shows("订单待支付");
  expect(page.text()).toContain("您有一笔待支付的订单，请先完成支付或取消");
  expect(page.label("#resume")).toBe("继续支付");
});

test("SOLD_OUT: the seats are read again, and 立即预约 leads nowhere on a full session", async () => {
  const { page, service } = await orderPage();
  service.schedule(7).remaining = 0;  // the last seat went to another parent a moment ago
  await confirmPay(page);
  await page.shows("名额已满");
  await until(() => service.callsTo("GET", "/api/v1/courses/schedules/7").length === 2, "the detail again");
  await page.shows("剩余名额名额已满");
  await page.tap("#book");
  await settle();
  expect(page.text()).not.toContain("确认预约");
});

test("AMOUNT_MISMATCH: the price is read again", async () => {
  const { page, service } = await orderPage();
  service.refuse("POST", CREATE, { status: 422, code: "AMOUNT_MISMATCH", message: "订单金额与体验课价格不符" });
  await confirmPay(page);
  await page.shows("订单金额与体验课价格不符");
  await until(() => service.callsTo("GET", "/api/v1/courses/schedules/7").length === 2, "the detail again");
});

test("UNAUTHENTICATED once (an expired token): logged in again with a new code, the call repeated, the parent sees nothing", async () => {
  const { page, service, platform } = await orderPage();
  await until(() => platform.codes.length === 1 && service.tokens.size === 1, "the launch login");
  service.expireTokens();
  await confirmPay(page);
  await until(() => platform.payments.length, "the WeChat Pay sheet");
  expect(platform.codes).toEqual(["code-1", "code-2"]);
  const creates = service.callsTo("POST", CREATE);
  expect(creates.map((c) => c.header.Authorization)).toEqual(["Bearer token-1", "Bearer token-2"]);
  expect(creates[1].header["Idempotency-Key"]).toBe(creates[0].header["Idempotency-Key"]);
  expect(page.data.notice).toBe("");
});

test("a refused login (RATE_LIMITED at /auth/login) is shown at the tap that needed it", async () => {
  const world = launch();
  world.service.refuse("POST", "/api/v1/auth/login", { status: 429, code: "RATE_LIMITED", message: "请求过于频繁，请稍后再试" }, 2);
  const page = world.mp.open("pages/order/order", { scheduleId: "7" });
  await page.shows("剩余名额3");
  await confirmPay(page);
  await page.shows("请求过于频繁，请稍后再试");
  expect(world.service.callsTo("POST", CREATE)).toEqual([]);
});

test("wxpay/create refused (the hold lapsed): the message, and the order's state from its first frame", async () => {
  const { page, service, platform } = await orderPage();
  service.refuse("POST", "/api/v1/payment/wxpay/create", { status: 409, code: "ORDER_NOT_PAYABLE", message: "座位保留已过期，请重新下单" });
  await confirmPay(page);
  await page.shows("座位保留已过期，请重新下单");
  expect(platform.payments).toEqual([]);
  service.settle(page.data.order.order_id, "expired");
  await page.shows("订单已过期");
  expect(page.label("#retry")).toBe("重新预约");
});

test("the cancel refused (WeChat Pay down): the message, and 继续支付 / 取消订单 to try again", async () => {
  const { page, service, platform } = await orderPage();
  await confirmPay(page);
  await until(() => platform.payments.length, "the WeChat Pay sheet");
  await page.shows("订单待支付");
  service.refuse("POST", /\/cancel$/, { status: 503, code: "PAYMENT_UNAVAILABLE", message: "暂时无法关闭微信支付订单，请稍后重试" });
  platform.payments[0].cancel();
  await page.shows("暂时无法关闭微信支付订单，请稍后重试");
  await page.shows("订单待支付");
  await page.tap("#cancel-order");
  await page.shows("支付已取消");
});

test("the detail of an unknown session: 课程不存在, nothing to book", async () => {
  const world = launch();
  const page = world.mp.open("pages/order/order", { scheduleId: "99" });
  await page.shows("课程不存在");
  await page.tap("#book");
  await settle();
  expect(page.text()).not.toContain("确认预约");
});

test.each([["abc"], ["7 OR 1=1"], ["-1"], [""], ["0"], ["9".repeat(40)]])("a hostile scheduleId %p in the page's query asks the service nothing", async (id) => {
  const world = launch();
  const page = world.mp.open("pages/order/order", { scheduleId: id });
  await page.shows("课程不存在");
  await settle();
  expect(world.service.calls.filter((c) => c.path.startsWith("/api/v1/courses"))).toEqual([]);
});

test("the list refused: its message, over the list", async () => {
  const world = launch();
  world.service.refuse("GET", "/api/v1/courses/schedules", { status: 503, code: "SERVICE_UNAVAILABLE", message: "服务暂时不可用，请稍后重试" });
  const page = world.mp.open("pages/schedules/schedules");
  await page.shows("服务暂时不可用，请稍后重试");
  expect(page.text()).not.toContain("暂无可预约的课程");
});

test("no network: 网络异常，请稍后重试", async () => {
  const { page, platform } = await orderPage();
  platform.offline = true;
  await confirmPay(page);
  await page.shows("网络异常，请稍后重试");
});

test("an answer that is not the API's (a proxy's HTML 502): 请求失败（502）", async () => {
  const { page, service } = await orderPage();
  service.refuse("POST", CREATE, { status: 502, body: "<html>Bad Gateway</html>", headers: { "Content-Type": "text/html" } });
  await confirmPay(page);
  await page.shows("请求失败（502）");
});
