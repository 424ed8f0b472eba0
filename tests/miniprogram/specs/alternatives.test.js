// SOLD_OUT carries other sessions with a seat left (contract §2 `alternatives`): the order page lists them, each
// with 立即预约, which opens that session's confirmation and books it as any booking is made.
const { launch } = require("../platform/launch");
const { until } = require("../platform/mina");

const SESSIONS = [
  { id: 7, title: "周六体验课·幼儿体操", starts_at: "2026-12-12T10:00:00+08:00", capacity: 12, remaining: 1 },
  { id: 9, title: "周五体验课·亲子体操", starts_at: "2026-12-11T18:00:00+08:00", capacity: 12, remaining: 4 },
  { id: 10, title: "周日体验课·基础体操", starts_at: "2026-12-13T09:00:00+08:00", capacity: 12, remaining: 2 },
  { id: 11, title: "下周六体验课", starts_at: "2026-12-19T10:00:00+08:00", capacity: 12, remaining: 6 },
  { id: 12, title: "下下周体验课", starts_at: "2026-12-26T10:00:00+08:00", capacity: 12, remaining: 6 },
  { id: 13, title: "周六下午·已满", starts_at: "2026-12-12T15:00:00+08:00", capacity: 12, remaining: 0 },
];

async function soldOutAtConfirm() {
  const world = launch({ schedules: SESSIONS });
  const page = world.mp.open("pages/order/order", { scheduleId: "7" });
  await page.shows("剩余名额1");
  await page.tap("#book");
  world.service.schedule(7).remaining = 0;  // the last seat went to another parent while this one read the price
  await page.tap("#confirm-pay");
  await page.shows("名额已满");
  await page.shows("这些课程还有名额");
  return Object.assign(world, { page });
}

test("SOLD_OUT lists the nearest three sessions with a seat, each with 立即预约", async () => {
  const { page } = await soldOutAtConfirm();
  expect(page.data.alternatives.map((a) => a.id)).toEqual([9, 10, 11]);
  const text = page.text();
  expect(text).toContain("周日体验课·基础体操");
  expect(text).toContain("12月13日 周日 09:00 · 剩余名额 2");
  expect(text).toContain("周五体验课·亲子体操");
  expect(text).not.toContain("周六下午·已满");
  expect(text).not.toContain("下下周体验课");
  expect(page.label(".book-alternative")).toBe("立即预约");
});

test("立即预约 on an alternative opens its confirmation and books that session", async () => {
  const { page, service, platform } = await soldOutAtConfirm();
  await page.tap(".book-alternative", 0);  // 周五体验课·亲子体操, the nearest
  await page.shows("确认预约");
  expect(page.text()).toContain("周五体验课·亲子体操");
  expect(page.text()).toContain("金额固定为200元");
  expect(page.data.alternatives).toEqual([]);
  await page.tap("#confirm-pay");
  await until(() => platform.payments.length === 1, "the WeChat Pay sheet");
  const [create] = service.callsTo("POST", "/api/v1/payment/orders/create").slice(-1);
  expect(create.data).toEqual({ course_schedule_id: 9, amount: "200.00" });
  platform.payments[0].pay();
  const [order] = [...service.orders.values()];
  service.settle(order.order_id, "paid");
  await page.shows("预约成功");
});

test("an alternative that filled up meanwhile shows its seats and no confirmation", async () => {
  const { page, service } = await soldOutAtConfirm();
  service.schedule(10).remaining = 0;
  await page.tap(".book-alternative", 1);
  await page.shows("周日体验课·基础体操");
  await page.shows("剩余名额名额已满");
  expect(page.text()).not.toContain("确认预约");
});

test("no session with a seat: only the refusal, no list", async () => {
  const world = launch({ schedules: [SESSIONS[0], SESSIONS[5]] });
  const page = world.mp.open("pages/order/order", { scheduleId: "7" });
  await page.shows("剩余名额1");
  await page.tap("#book");
  world.service.schedule(7).remaining = 0;
  await page.tap("#confirm-pay");
  await page.shows("名额已满");
  expect(page.data.alternatives).toEqual([]);
  expect(page.text()).not.toContain("这些课程还有名额");
});
