// The order page through wx.requestPayment: paid (支付处理中, then 预约成功 from the socket alone), the sheet closed
// (支付已取消, and paying again: seed AC4), any other failure (支付失败，请重试), and an order left open.
const { launch } = require("../platform/launch");
const { createWx } = require("../platform/fake-wx");
const { boot } = require("../platform/mina");
const { until, settle } = require("../platform/mina");

// The order page of session 7, its detail shown.
async function orderPage(options) {
  const world = launch(options);
  const page = world.mp.open("pages/order/order", { scheduleId: "7" });
  await page.shows("剩余名额3");
  return Object.assign(world, { page });
}

// 立即预约, then 确认支付 in the confirmation; resolves once the WeChat Pay sheet is up.
async function bookAndOpenSheet({ page, platform }) {
  const sheets = platform.payments.length;
  await page.tap("#book");
  await page.shows("金额固定为200元");
  await page.tap("#confirm-pay");
  await until(() => platform.payments.length > sheets, () => `the WeChat Pay sheet; the page shows ${page.text()}`);
  return platform.payments[platform.payments.length - 1];
}

const orderId = (page) => page.data.order.order_id;

// The same parent opening the mini-program anew (same WeChat account, so the service still knows their order).
function launchAgain(service) {
  const { wx, platform } = createWx(service);
  return { platform, mp: boot({ wx, platform }) };
}

test("paid: 支付处理中 while WeChat Pay's notification is on its way, 预约成功 only when the socket says paid", async () => {
  const { page, platform, service } = await orderPage();
  expect(page.text()).toContain("周六体验课·幼儿体操");
  expect(page.text()).toContain("200.00 元");
  expect(page.label("#book")).toBe("立即预约");

  await page.tap("#book");
  await page.shows("确认预约");
  expect(page.text()).toContain("金额固定为200元");
  expect(page.label("#confirm-pay")).toBe("确认支付");

  const sheet = await bookAndOpenSheet({ page, platform });
  const [create] = service.callsTo("POST", "/api/v1/payment/orders/create");
  expect(create.data).toEqual({ course_schedule_id: 7, amount: "200.00" });
  expect(create.header.Authorization).toBe("Bearer token-1");
  expect(create.header["Idempotency-Key"]).toMatch(/^[0-9a-z]+-[0-9a-z]+$/);
  expect(service.callsTo("POST", "/api/v1/payment/wxpay/create").map((c) => c.data)).toEqual([{ order_id: orderId(page) }]);
  expect(sheet.params).toEqual({
    timeStamp: "1764637200", nonceStr: "nonce1", package: `prepay_id=wx${orderId(page).slice(-12)}`,
    signType: "RSA", paySign: `sig-of-wx${orderId(page).slice(-12)}`,
  });
  const [socket] = service.sockets;
  expect(socket.url).toBe("ws://127.0.0.1:8000/ws/orders?token=token-1");
  await until(() => socket.sent.length, "the subscribe frame");
  expect(socket.sent).toEqual([{ op: "subscribe", order_id: orderId(page) }]);
  expect(page.text()).not.toContain("确认预约");  // the confirmation closed when the sheet opened

  sheet.pay();
  await page.shows("支付处理中，请稍候…");
  await settle();
  expect(page.text()).not.toContain("预约成功");

  service.settle(orderId(page), "paid");
  await page.shows("预约成功");
  expect(page.text()).not.toContain("支付处理中");
  expect(page.label("#back")).toBe("返回课程列表");
  expect(page.has("#resume")).toBe(false);
  await until(() => service.callsTo("GET", "/api/v1/courses/schedules/7").length === 2, "the detail read again");
  expect(service.callsTo("GET", /^\/api\/v1\/payment\/orders/)).toEqual([]);  // never polled

  await page.tap("#back");
  await until(() => platform.navigations.includes("back"), "wx.navigateBack");
});

test("a requestPayment success alone never shows 预约成功, even with the order's frames coming in", async () => {
  const { page, platform, service } = await orderPage();
  const sheet = await bookAndOpenSheet({ page, platform });
  sheet.pay();
  await page.shows("支付处理中");
  service.dropSockets();
  await settle();
  page.show();  // back from the sheet with the socket gone: it connects again at once; its first frame says pending
  await until(() => service.sockets.length === 2 && service.sockets[1].sent.length, "the page to subscribe again");
  await settle();
  expect(page.text()).toContain("支付处理中");
  expect(page.text()).not.toContain("预约成功");
  expect(page.has("#resume")).toBe(false);
});

test("the socket's paid can come before requestPayment's success: the page stays 预约成功", async () => {
  const { page, platform, service } = await orderPage();
  const sheet = await bookAndOpenSheet({ page, platform });
  service.settle(orderId(page), "paid");
  await page.shows("预约成功");
  sheet.pay();
  await settle();
  expect(page.text()).toContain("预约成功");
  expect(page.text()).not.toContain("支付处理中");
});

test("requestPayment:fail cancel: 支付已取消 with the seat back, and the parent pays again (AC4)", async () => {
  const { page, platform, service } = await orderPage();
  const sheet = await bookAndOpenSheet({ page, platform });
  const first = orderId(page);
  expect(service.schedule(7).remaining).toBe(2);

  sheet.cancel();
  await page.shows("支付已取消");
  expect(service.callsTo("POST", `/api/v1/payment/orders/${first}/cancel`).map((c) => c.data)).toEqual([{ reason: "user_cancelled" }]);
  expect(service.schedule(7).remaining).toBe(3);
  await page.shows("剩余名额3");
  expect(page.label("#retry")).toBe("重新支付");

  await page.tap("#retry");
  await page.shows("金额固定为200元");
  await page.tap("#confirm-pay");
  await until(() => platform.payments.length === 2, "a second WeChat Pay sheet");
  const creates = service.callsTo("POST", "/api/v1/payment/orders/create");
  expect(creates).toHaveLength(2);
  expect(creates[1].header["Idempotency-Key"]).not.toBe(creates[0].header["Idempotency-Key"]);
  expect(orderId(page)).not.toBe(first);
  expect(service.sockets[0].sent).toContainEqual({ op: "unsubscribe", order_id: first });

  platform.payments[1].pay();
  await page.shows("支付处理中");
  service.settle(orderId(page), "paid");
  await page.shows("预约成功");
  expect(service.schedule(7).remaining).toBe(2);
});

test.each([
  ["requestPayment:fail"],
  ["requestPayment:fail 余额不足"],
  ["requestPayment:fail:jsapi has no permission"],
])("any other failure (%s): 支付失败，请重试, and the parent can pay again", async (errMsg) => {
  const { page, platform, service } = await orderPage();
  const sheet = await bookAndOpenSheet({ page, platform });
  const first = orderId(page);

  sheet.fail(errMsg);
  await page.shows("支付失败，请重试");
  expect(service.callsTo("POST", `/api/v1/payment/orders/${first}/cancel`).map((c) => c.data)).toEqual([{ reason: "payment_failed" }]);
  expect(service.schedule(7).remaining).toBe(3);

  await page.tap("#retry");
  await page.tap("#confirm-pay");
  await until(() => platform.payments.length === 2, "a second WeChat Pay sheet");
  expect(orderId(page)).not.toBe(first);
});

test("the cancel finds the order paid (WeChat Pay took the money meanwhile): 预约成功", async () => {
  const { page, platform, service } = await orderPage();
  const sheet = await bookAndOpenSheet({ page, platform });
  const paidMeanwhile = service.cancel.bind(service);
  service.cancel = (id, data) => {
    service.settle(id, "paid", { push: false });
    return paidMeanwhile(id, data);
  };
  sheet.cancel();
  await page.shows("预约成功");
  expect(page.text()).not.toContain("支付已取消");
});

test("a second tap on 确认支付 while the first is under way makes no second order", async () => {
  const { page, platform, service } = await orderPage();
  await page.tap("#book");
  await page.shows("金额固定为200元");
  page.tap("#confirm-pay");
  await page.tap("#confirm-pay");  // in the same moment, before the first has answered
  await until(() => platform.payments.length, "the WeChat Pay sheet");
  await settle();
  expect(service.callsTo("POST", "/api/v1/payment/orders/create")).toHaveLength(1);
  expect(platform.payments).toHaveLength(1);
});

test("取消 in the confirmation creates nothing", async () => {
  const { page, service } = await orderPage();
  await page.tap("#book");
  await page.shows("金额固定为200元");
  await page.tap("#close-confirm");
  await until(() => !page.text().includes("确认预约"), "the confirmation to close");
  expect(service.callsTo("POST", "/api/v1/payment/orders/create")).toEqual([]);
  expect(page.label("#book")).toBe("立即预约");
});

test("an order left unpaid (PENDING_ORDER_EXISTS): the page follows it, 继续支付 pays it with the same prepay", async () => {
  const { page, platform, service, mp } = await orderPage();
  await bookAndOpenSheet({ page, platform });  // and the app is closed with the sheet up: no callback ever comes
  const open = orderId(page);
  page.unload();
  expect(service.openSockets()).toEqual([]);

  service.schedules.push({ id: 9, title: "周日体验课·进阶", starts_at: "2026-12-13T09:00:00+08:00", capacity: 8, remaining: 8, price_fen: 20000, price: "200.00" });
  const other = mp.open("pages/order/order", { scheduleId: "9" });
  await other.shows("周日体验课·进阶");
  await other.tap("#book");
  await other.tap("#confirm-pay");
  await other.shows("您有一笔待支付的订单，请先完成支付或取消");
  await other.shows("订单待支付");
  expect(other.data.order.order_id).toBe(open);
  expect(other.label("#resume")).toBe("继续支付");
  expect(other.label("#cancel-order")).toBe("取消订单");

  const asked = platform.subscribeRequests.length;
  await other.tap("#resume");
  await until(() => platform.payments.length === 2, "the WeChat Pay sheet again");
  expect(platform.subscribeRequests.slice(asked)).toEqual([{ tmplIds: ["TRIAL_BOOKED_TEMPLATE", "PAYMENT_FAILED_TEMPLATE", "ORDER_EXPIRED_TEMPLATE"], inTap: true }]);
  expect(platform.payments[1].params.package).toBe(platform.payments[0].params.package);
  expect(other.text()).not.toContain("您有一笔待支付的订单");  // the notice went with the tap

  platform.payments[1].pay();
  await other.shows("支付处理中");
  service.settle(open, "paid");
  await other.shows("预约成功");
});

test("取消订单 on an order left unpaid: 支付已取消 and its seat is back", async () => {
  const { page, platform, service } = await orderPage();
  await bookAndOpenSheet({ page, platform });
  const id = orderId(page);
  service.dropSockets();  // the phone was switched off with the sheet up
  page.unload();

  service.schedules.push({ id: 9, title: "周日体验课·进阶", starts_at: "2026-12-13T09:00:00+08:00", capacity: 8, remaining: 8, price_fen: 20000, price: "200.00" });
  const again = launchAgain(service);
  const view = again.mp.open("pages/order/order", { scheduleId: "9" });
  await view.shows("周日体验课·进阶");
  await view.tap("#book");
  await view.tap("#confirm-pay");
  await view.shows("订单待支付");
  await view.tap("#cancel-order");
  await view.shows("支付已取消");
  expect(service.callsTo("POST", `/api/v1/payment/orders/${id}/cancel`).map((c) => c.data)).toEqual([{ reason: "user_cancelled" }]);
  expect(service.schedule(7).remaining).toBe(3);
});

test("booking the same session again while its order is open pays that order: no second one, the same prepay", async () => {
  const { page, platform, service } = await orderPage();
  await bookAndOpenSheet({ page, platform });
  const id = orderId(page);
  page.unload();

  const view = launchAgain(service).mp.open("pages/order/order", { scheduleId: "7" });
  await view.shows("剩余名额2");
  const sheets = service.orders.get(id).prepays;
  await view.tap("#book");
  await view.tap("#confirm-pay");
  await until(() => service.orders.get(id).prepays === sheets + 1, "wxpay/create for the open order");
  expect(view.data.order.order_id).toBe(id);
  expect(service.orders.size).toBe(1);
});

test("an order that expires while shown: 订单已过期, and 重新预约 starts over", async () => {
  const { page, platform, service } = await orderPage();
  await bookAndOpenSheet({ page, platform });
  service.settle(orderId(page), "expired");
  await page.shows("订单已过期");
  expect(page.label("#retry")).toBe("重新预约");
  await page.tap("#retry");
  await page.shows("金额固定为200元");
});

test.each([
  ["refund_required", "支付成功，但名额已满，工作人员将为您退款"],
  ["refunded", "订单已退款"],
])("the socket's %s is shown as %s", async (status, text) => {
  const { page, platform, service } = await orderPage();
  const sheet = await bookAndOpenSheet({ page, platform });
  sheet.pay();
  service.settle(orderId(page), status);
  await page.shows(text);
});
