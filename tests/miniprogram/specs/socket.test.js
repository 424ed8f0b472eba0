// The order's socket: it drops (the WeChat Pay sheet sends the app to the background, the network changes) and the
// page gets the state back from the first frame of its new subscription; 4401 logs in again; stale frames are
// ignored. The back-off runs on jest's fake clock, moved on by the spec.
const { launch } = require("../platform/launch");
const { until, settle } = require("../platform/mina");

beforeEach(() => {
  jest.useFakeTimers();
});

afterEach(() => {
  jest.useRealTimers();
});

async function payingPage() {
  const world = launch();
  const page = world.mp.open("pages/order/order", { scheduleId: "7" });
  await page.shows("剩余名额3");
  await page.tap("#book");
  await page.tap("#confirm-pay");
  await until(() => world.platform.payments.length, "the WeChat Pay sheet");
  await until(() => world.service.sockets[0].sent.length, "the subscription");
  return Object.assign(world, { page, sheet: world.platform.payments[0], orderId: page.data.order.order_id });
}

test("paid while the socket was down: the page reconnects after 0.5 s and the first frame says 预约成功", async () => {
  const { page, service, sheet, orderId } = await payingPage();
  sheet.pay();
  await page.shows("支付处理中");

  service.dropSockets();
  service.settle(orderId, "paid");  // WeChat Pay's notification lands meanwhile; its push reaches no one
  await settle();
  expect(page.text()).toContain("支付处理中");
  expect(service.sockets).toHaveLength(1);

  await jest.advanceTimersByTimeAsync(499);
  expect(service.sockets).toHaveLength(1);
  await jest.advanceTimersByTimeAsync(1);
  await until(() => service.sockets.length === 2, "a second socket");
  await page.shows("预约成功");
  expect(service.sockets[1].sent).toEqual([{ op: "subscribe", order_id: orderId }]);
  expect(service.callsTo("GET", /^\/api\/v1\/payment\/orders/)).toEqual([]);
});

test("cancelled while the socket was down and the cancel's answer lost: the snapshot says 支付已取消", async () => {
  const { page, service, platform, sheet, orderId } = await payingPage();
  service.dropSockets();
  platform.offline = true;  // the answer to the cancel never comes back (the cancel was made, by the service)
  service.settle(orderId, "cancelled");
  sheet.cancel();
  await page.shows("网络异常，请稍后重试");
  platform.offline = false;
  await jest.advanceTimersByTimeAsync(500);
  await page.shows("支付已取消");
});

test("the server refuses to connect: attempts 0.5 s, 1 s, 2 s, 4 s, 5 s, 5 s apart, then the snapshot when it lets in", async () => {
  const { page, service, sheet, orderId } = await payingPage();
  sheet.pay();
  service.refuseSockets = true;
  service.dropSockets();
  await settle();
  const gaps = [500, 1000, 2000, 4000, 5000, 5000];
  for (const [i, gap] of gaps.entries()) {
    await jest.advanceTimersByTimeAsync(gap - 1);
    expect(service.sockets).toHaveLength(1 + i);
    await jest.advanceTimersByTimeAsync(1);
    await until(() => service.sockets.length === 2 + i, `attempt ${i + 1}`);
  }
  service.refuseSockets = false;
  service.settle(orderId, "paid");
  await jest.advanceTimersByTimeAsync(5000);
  await page.shows("预约成功");
});

test("back from the background (onShow) with the socket closed: it connects at once, without waiting out the back-off", async () => {
  const { page, service, orderId } = await payingPage();
  service.dropSockets();
  service.settle(orderId, "paid");
  await settle();
  page.show();
  await page.shows("预约成功");
  expect(service.sockets).toHaveLength(2);
});

test("4401 (the token expired): the page logs in again with a new wx.login code and subscribes with the new token", async () => {
  const { page, service, platform, sheet, orderId } = await payingPage();
  sheet.pay();
  service.expireTokens();
  service.dropSockets();
  await jest.advanceTimersByTimeAsync(500);
  await until(() => service.sockets.length === 2 && service.sockets[1].state === "closed", "the refused socket");
  expect(service.sockets[1].url).toMatch(/token=token-1$/);
  await until(() => platform.codes.length === 2, "a new login");
  service.settle(orderId, "paid");
  await jest.advanceTimersByTimeAsync(1000);  // the back-off goes on: a token refused again would not loop
  await page.shows("预约成功");
  expect(service.sockets[2].url).toMatch(/token=token-2$/);
});

test("a socket closed again and again with 4401 keeps backing off instead of logging in in a loop", async () => {
  const { service, platform, sheet } = await payingPage();
  sheet.pay();
  const everyTokenRefused = service.accept.bind(service);
  service.accept = (conn) => { service.expireTokens(); everyTokenRefused(conn); };
  service.dropSockets();
  await jest.advanceTimersByTimeAsync(500 + 1000 + 2000);
  await settle();
  expect(service.sockets.length).toBeLessThanOrEqual(4);
  expect(platform.codes.length).toBeLessThanOrEqual(4);
});

test("4429 (a sixth socket of the same parent closed this one): it waits to be shown again", async () => {
  const { page, service, orderId } = await payingPage();
  service.sockets[0].serverClose(4429, "too many sockets");
  await jest.advanceTimersByTimeAsync(10000);
  expect(service.sockets).toHaveLength(1);
  service.settle(orderId, "paid");
  page.show();
  await page.shows("预约成功");
});

test("frames that cross: a subscription's first frame (pending) after the push of its cancel does not undo it", async () => {
  const { page, service, orderId } = await payingPage();
  const [socket] = service.sockets;
  const pendingAt = service.orders.get(orderId).at;
  service.settle(orderId, "cancelled");
  await page.shows("支付已取消");
  socket.push({ type: "order.status", order_id: orderId, status: "pending", reservation_status: "temporary", at: pendingAt });
  await settle();
  expect(page.text()).toContain("支付已取消");
  expect(page.has("#resume")).toBe(false);
});

test("a frame older than the one shown is stale: refunded stays refunded", async () => {
  const { page, service, orderId } = await payingPage();
  const [socket] = service.sockets;
  service.settle(orderId, "paid");
  const paidAt = service.orders.get(orderId).at;
  service.settle(orderId, "refunded");
  await page.shows("订单已退款");
  socket.push({ type: "order.status", order_id: orderId, status: "paid", reservation_status: "confirmed", at: paidAt });
  await settle();
  expect(page.text()).toContain("订单已退款");
});

test("a frame that is not JSON, or of another order, changes nothing", async () => {
  const { page, service, orderId } = await payingPage();
  const [socket] = service.sockets;
  socket.emit("message", { data: "not json" });
  socket.push({ type: "order.status", order_id: "f".repeat(32), status: "paid", reservation_status: "confirmed", at: "2030-01-01T00:00:00+08:00" });
  await settle();
  expect(page.text()).not.toContain("预约成功");
  service.settle(orderId, "paid");
  await page.shows("预约成功");
});

test("the socket's NOT_FOUND is shown with its message", async () => {
  const { page, service } = await payingPage();
  service.sockets[0].push({ type: "error", code: "NOT_FOUND", message: "订单不存在", order_id: "0".repeat(32) });
  await page.shows("订单不存在");
});

test("leaving the page closes its socket for good", async () => {
  const { page, service } = await payingPage();
  page.unload();
  await settle();
  expect(service.sockets[0].closedByPage).toBe(true);
  await jest.advanceTimersByTimeAsync(30000);
  expect(service.sockets).toHaveLength(1);
});
