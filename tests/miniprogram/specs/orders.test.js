// 我的订单: each order's story as the parent reads it (paid, refunded with the amount, cancelled, failed, expired),
// and the parent's places on waitlists.
const { launch } = require("../platform/launch");
const { until } = require("../platform/mina");

test("every order's story, newest first, with its session", async () => {
  const world = launch();
  const { service } = world;
  service.seedOrder({ order_id: "a".repeat(32), course_schedule_id: 7, status: "expired" });
  service.seedOrder({ order_id: "b".repeat(32), course_schedule_id: 7, status: "failed" });
  service.seedOrder({ order_id: "c".repeat(32), course_schedule_id: 7, status: "cancelled" });
  service.seedOrder({ order_id: "d".repeat(32), course_schedule_id: 8, status: "refunded", refunded_fen: 20000 });
  service.seedOrder({ order_id: "e".repeat(32), course_schedule_id: 7, status: "paid" });
  service.seedOrder({ order_id: "f".repeat(32), course_schedule_id: 8, status: "paid", refunded_fen: 5000 });
  const page = world.mp.open("pages/orders/orders");
  await page.shows("预约成功 · 已支付 200.00 元 · 已退款 50.00 元");  // refunded in part: still booked
  const text = page.text();
  expect(page.texts(".story")).toEqual([  // newest first
    "预约成功 · 已支付 200.00 元 · 已退款 50.00 元", "预约成功 · 已支付 200.00 元", "已退款 200.00 元", "已取消", "支付失败",
    "已过期 · 未支付，名额已释放"]);
  expect(text).toContain("周日体验课·基础体操");
  expect(text).toContain("12月12日 周六 10:00");
});

test("a place on a waitlist is listed, and a tap opens its session", async () => {
  const world = launch();
  world.service.entries.push({ id: 51, course_schedule_id: 8, status: "waiting", offer_expires_at: null, ahead: 1,
    created_at: "2026-12-02T08:00:00+08:00" });
  const page = world.mp.open("pages/orders/orders");
  await page.shows("候补第 2 位");
  expect(page.text()).toContain("还没有订单");
  await page.tap(".entry");
  await until(() => world.platform.navigations.length, "a navigation");
  expect(world.platform.navigations).toEqual(["/pages/order/order?scheduleId=8"]);
});

test("an error is shown with the API's words", async () => {
  const world = launch();
  world.service.refuse("GET", "/api/v1/payment/orders", { status: 503, code: "SERVICE_UNAVAILABLE", message: "服务暂时不可用，请稍后重试" });
  const page = world.mp.open("pages/orders/orders");
  await page.shows("服务暂时不可用，请稍后重试");
});
