// The waitlist on the order page (contract §2 Waitlist): a full session offers 加入候补 (the 候补成功 notice asked for
// inside the tap), then shows 候补第 N 位; once a seat is kept, 有名额了！N 分钟内完成预约 and 立即预约 books it.
const { launch } = require("../platform/launch");
const { until, settle } = require("../platform/mina");

const WAITLIST = "/api/v1/waitlist";

async function fullSession(options) {
  const world = launch(options);
  world.service.queue.set(8, 2);  // two parents already wait on session 8 (full)
  const page = world.mp.open("pages/order/order", { scheduleId: "8" });
  await page.shows("名额已满，可加入候补");
  return Object.assign(world, { page });
}

test("a full session: 加入候补 asks for the 候补成功 notice in the tap, joins, and shows the place in line", async () => {
  const { page, service, platform, mp } = await fullSession();
  expect(page.label("#book")).toBe("立即预约");
  await page.tap("#book");
  await settle();
  expect(page.text()).not.toContain("确认预约");  // no seat: nothing to book
  await page.tap("#join");
  await page.shows("候补第 3 位");
  expect(platform.subscribeRequests).toEqual([{ tmplIds: [mp.config.waitlistTemplateId], inTap: true }]);
  const [join] = service.callsTo("POST", WAITLIST);
  expect(join.data).toEqual({ course_schedule_id: 8 });
  expect(join.header.Authorization).toBe("Bearer token-1");
  expect(page.label("#leave")).toBe("退出候补");
  expect(page.has("#join")).toBe(false);
});

test("a refused notice changes nothing but the notice: the parent still joins", async () => {
  const { page, service, platform } = await fullSession();
  platform.subscribeAnswer = "reject";
  await page.tap("#join");
  await page.shows("候补第 3 位");
  expect(service.callsTo("POST", WAITLIST)).toHaveLength(1);
});

test("offered: 有名额了！15 分钟内完成预约, and 立即预约 books the kept seat although none shows left", async () => {
  const { page, service, platform } = await fullSession();
  await page.tap("#join");
  await page.shows("候补第 3 位");
  const [entry] = service.entries;
  service.offer(entry.id, new Date(Date.now() + 15 * 60 * 1000 - 1000).toISOString());
  page.show();  // back from the 候补成功 message
  await page.shows("有名额了！15 分钟内完成预约");
  expect(page.text()).toContain("剩余名额名额已满");
  expect(page.label("#leave")).toBe("放弃名额");
  await page.tap("#book");
  await page.shows("确认预约");
  await page.tap("#confirm-pay");
  await until(() => platform.payments.length === 1, "the WeChat Pay sheet");
  expect(entry.status).toBe("booked");
  expect(page.text()).not.toContain("有名额了");
  platform.payments[0].pay();
  service.settle([...service.orders.keys()][0], "paid");
  await page.shows("预约成功");
});

test("退出候补 leaves the line; SEATS_AVAILABLE (a seat came free meanwhile) reads the seats again", async () => {
  const { page, service } = await fullSession();
  await page.tap("#join");
  await page.shows("候补第 3 位");
  await page.tap("#leave");
  await page.shows("名额已满，可加入候补");
  expect(service.callsTo("DELETE", /^\/api\/v1\/waitlist\/\d+$/)).toHaveLength(1);
  expect(service.entries[0].status).toBe("left");
  service.schedule(8).remaining = 1;  // someone cancelled, and nobody else waits
  await page.tap("#join");
  await page.shows("该课程还有名额，请直接预约");
  await page.shows("剩余名额1");
  expect(page.has("#join")).toBe(false);
});

test("the place in line is read at every show: an entry the parent made elsewhere is shown", async () => {
  const world = launch();
  world.service.schedule(8).remaining = 0;
  world.service.entries.push({ id: 41, course_schedule_id: 8, status: "waiting", offer_expires_at: null, ahead: 0,
    created_at: "2026-12-02T08:00:00+08:00" });
  const page = world.mp.open("pages/order/order", { scheduleId: "8" });
  await page.shows("候补第 1 位");
});
