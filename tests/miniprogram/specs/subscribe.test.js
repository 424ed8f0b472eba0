// wx.requestSubscribeMessage (the order's notices: 预约成功, 支付失败, 订单已过期): WeChat lets it run only synchronously
// inside a tap handler, and for three templates at most, so the page asks for the three in the tap on 确认支付 (and
// 继续支付), before any call to the service; the stand-in refuses it anywhere else, or for more, as WeChat does. A
// refusal, the parent's or WeChat's, costs only the notices.
const { launch } = require("../platform/launch");
const { until } = require("../platform/mina");

async function orderPage() {
  const world = launch();
  const page = world.mp.open("pages/order/order", { scheduleId: "7" });
  await page.shows("剩余名额3");
  return Object.assign(world, { page });
}

test("确认支付 asks for the order's three templates inside the tap, before the order is created", async () => {
  const { page, service, platform, mp } = await orderPage();
  await page.tap("#book");
  expect(platform.subscribeRequests).toEqual([]);  // 立即预约 only opens the confirmation
  const before = service.calls.length;
  await page.tap("#confirm-pay");
  const { subscribeTemplateId, paymentFailedTemplateId, orderExpiredTemplateId } = mp.config;
  expect(platform.subscribeRequests).toEqual([{ tmplIds: [subscribeTemplateId, paymentFailedTemplateId, orderExpiredTemplateId], inTap: true }]);
  // The service's defaults (settings.py) for WECHAT_SUBSCRIBE_TEMPLATE_ID, ..._PAYMENT_FAILED_..., ..._ORDER_EXPIRED_...
  expect([subscribeTemplateId, paymentFailedTemplateId, orderExpiredTemplateId]).toEqual(["TRIAL_BOOKED_TEMPLATE", "PAYMENT_FAILED_TEMPLATE", "ORDER_EXPIRED_TEMPLATE"]);
  await until(() => platform.payments.length, "the WeChat Pay sheet");
  // Nothing reached the service before the request was made, and the order came after it.
  expect(service.calls.slice(before).map((c) => c.path)[0]).toBe("/api/v1/payment/orders/create");
});

test("the stand-in holds the page to the rule: the same handler run outside a tap is refused, and the booking goes on", async () => {
  const { page, platform } = await orderPage();
  await page.tap("#book");
  page.instance.onConfirmPay();  // not a tap: what a handler that awaited something first would look like to WeChat
  await until(() => platform.payments.length, "the WeChat Pay sheet");
  expect(platform.subscribeRequests).toEqual([{ tmplIds: ["TRIAL_BOOKED_TEMPLATE", "PAYMENT_FAILED_TEMPLATE", "ORDER_EXPIRED_TEMPLATE"], inTap: false }]);
});

test.each([["reject"], ["ban"]])("the parent answers %s: no notice, the booking and payment go on", async (answer) => {
  const { page, platform, service } = await orderPage();
  platform.subscribeAnswer = answer;
  await page.tap("#book");
  await page.tap("#confirm-pay");
  await until(() => platform.payments.length, "the WeChat Pay sheet");
  platform.payments[0].pay();
  service.settle(page.data.order.order_id, "paid");
  await page.shows("预约成功");
});
