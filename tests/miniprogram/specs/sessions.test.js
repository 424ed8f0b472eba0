// Launch, login and the session list (pages/schedules).
const { launch } = require("../platform/launch");
const { until } = require("../platform/mina");

test("the app logs in at launch with a wx.login code, and the list shows each session's price and seats", async () => {
  const { service, platform, mp } = launch();
  const page = mp.open("pages/schedules/schedules");

  await page.shows("周六体验课·幼儿体操");
  expect(platform.codes).toEqual(["code-1"]);
  await until(() => mp.app.globalData.token === "token-1", "the token from /api/v1/auth/login");
  expect(service.callsTo("POST", "/api/v1/auth/login").map((c) => c.data)).toEqual([{ code: "code-1" }]);
  expect(mp.app.globalData.user).toEqual({ id: 1, openid_masked: "oAb***xyz" });

  const list = service.callsTo("GET", "/api/v1/courses/schedules");
  expect(list).toHaveLength(1);
  expect(list[0].header.Authorization).toBeUndefined();  // the list needs no token
  expect(page.text()).toContain("12月12日 周六 10:00");
  expect(page.text()).toContain("200.00 元");
  expect(page.text()).toContain("剩余名额 3");
  expect(page.text()).toContain("周日体验课·基础体操");
  expect(page.text()).toContain("名额已满");
});

test("a session with seats opens its order page; a full one too, to join its waitlist", async () => {
  const { platform, mp } = launch();
  const page = mp.open("pages/schedules/schedules");
  await page.shows("名额已满 · 可候补");

  await page.tap(".session", 1);
  await page.tap(".session", 0);
  await until(() => platform.navigations.length === 2, "two navigations");
  expect(platform.navigations).toEqual(["/pages/order/order?scheduleId=8", "/pages/order/order?scheduleId=7"]);
  await page.tap("#my-orders");
  await until(() => platform.navigations.length === 3, "我的订单");
  expect(platform.navigations[2]).toBe("/pages/orders/orders");
});

test("pulling down reloads the list and ends the refresh", async () => {
  const { service, platform, mp } = launch();
  const page = mp.open("pages/schedules/schedules");
  await page.shows("剩余名额 3");

  service.schedule(7).remaining = 1;
  page.instance.onPullDownRefresh();
  await page.shows("剩余名额 1");
  await until(() => platform.refreshStops === 1, "wx.stopPullDownRefresh");
});

test("no sessions: the list says so", async () => {
  const { mp } = launch({ schedules: [] });
  const page = mp.open("pages/schedules/schedules");
  await page.shows("暂无可预约的课程");
});
