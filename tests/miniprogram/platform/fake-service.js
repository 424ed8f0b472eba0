// The service as the network shows it to the mini-program, in memory: the contract's routes (§2 Users, Live status)
// with its answers and error bodies, for the page specs. The real service is held to the same calls by
// live/booking.live.js; here a spec can make any answer happen (a refusal, a 503, a dropped socket) at will.
const SCHEDULES = [
  { id: 7, title: "周六体验课·幼儿体操", starts_at: "2026-12-12T10:00:00+08:00", capacity: 12, remaining: 3 },
  { id: 8, title: "周日体验课·基础体操", starts_at: "2026-12-13T15:30:00+08:00", capacity: 12, remaining: 0 },
];

const hex32 = (n) => n.toString(16).padStart(32, "0");

class FakeService {
  constructor({ schedules = SCHEDULES } = {}) {
    this.schedules = schedules.map((s) => Object.assign({ price_fen: 20000, price: "200.00" }, s));
    this.calls = [];        // every HTTP request: {method, path, data, header}
    this.refusals = [];     // answers a spec put before the routes: {method, path, times, answer}
    this.tokens = new Set();
    this.orders = new Map();
    this.byKey = new Map();
    this.entries = [];      // the parent's waitlist entries, oldest first
    this.queue = new Map(); // schedule id -> how many other parents wait ahead of a new entry
    this.logins = 0;
    this.sockets = [];      // every socket the page opened, with what it sent
    this.clock = Date.parse("2026-12-02T09:00:00+08:00");
  }

  // The next `times` calls of METHOD path (a string, or a RegExp on the path) get `answer` instead:
  // {status, code, message, extra, headers} for an error body, or {status, body, headers} verbatim.
  refuse(method, path, answer, times = 1) {
    this.refusals.push({ method, path, times, answer });
  }

  // An order the service already has (made on another phone, or before this spec).
  seedOrder({ order_id: orderId, course_schedule_id: scheduleId, status, refunded_fen: refundedFen = 0 }) {
    this.orders.set(orderId, { order_id: orderId, status, course_schedule_id: scheduleId, prepays: 0, at: this.now(),
      refunded_fen: refundedFen });
  }

  callsTo(method, path) {
    return this.calls.filter((c) => c.method === method && (path instanceof RegExp ? path.test(c.path) : c.path === path));
  }

  schedule(id) {
    return this.schedules.find((s) => s.id === id);
  }

  // One HTTP exchange, answered as {statusCode, data, header}.
  handle({ method, path, data, header }) {
    this.calls.push({ method, path, data, header });
    const refusal = this.refusals.find((r) => r.times > 0 && r.method === method
      && (r.path instanceof RegExp ? r.path.test(path) : r.path === path));
    if (refusal) {
      refusal.times -= 1;
      return answerOf(refusal.answer);
    }
    return this.route(method, path, data || {}, header || {});
  }

  route(method, path, data, header) {
    let m;
    if (method === "POST" && path === "/api/v1/auth/login") return this.login(data);
    if (method === "GET" && path === "/api/v1/courses/schedules") return ok({ items: this.schedules.map((s) => Object.assign({}, s)) });
    if (method === "GET" && (m = path.match(/^\/api\/v1\/courses\/schedules\/(\d+)$/))) {
      const s = this.schedule(Number(m[1]));
      return s ? ok(Object.assign({}, s)) : error(404, "NOT_FOUND", "课程不存在");
    }
    const user = this.user(header);
    if (!user) return error(401, "UNAUTHENTICATED", "登录状态无效，请重新登录");
    if (method === "POST" && path === "/api/v1/payment/orders/create") return this.createOrder(data, header);
    if (method === "POST" && path === "/api/v1/payment/wxpay/create") return this.prepay(data);
    if (method === "POST" && (m = path.match(/^\/api\/v1\/payment\/orders\/([0-9a-f]{32})\/cancel$/))) return this.cancel(m[1], data);
    if (method === "GET" && path === "/api/v1/payment/orders") {
      return ok({ items: [...this.orders.values()].reverse().map(view) });
    }
    if (method === "GET" && path === "/api/v1/waitlist") return ok({ items: this.entries.slice().reverse().map((e) => this.entryView(e)) });
    if (method === "POST" && path === "/api/v1/waitlist") return this.join(data);
    if (method === "DELETE" && (m = path.match(/^\/api\/v1\/waitlist\/(\d+)$/))) return this.leave(Number(m[1]));
    if (method === "GET" && (m = path.match(/^\/api\/v1\/payment\/orders\/([0-9a-f]{32})$/))) {
      const order = this.orders.get(m[1]);
      return order ? ok(view(order)) : error(404, "NOT_FOUND", "订单不存在");
    }
    return error(404, "NOT_FOUND", "接口不存在");
  }

  login({ code }) {
    if (typeof code !== "string" || !code) return error(400, "INVALID_REQUEST", "code 必填");
    this.logins += 1;
    const token = `token-${this.logins}`;
    this.tokens.add(token);
    return ok({ token, expires_in: 7200, user: { id: 1, openid_masked: "oAb***xyz" } });
  }

  user(header) {
    const auth = header.Authorization || "";
    return auth.startsWith("Bearer ") && this.tokens.has(auth.slice(7)) ? 1 : null;
  }

  // Every token stops working, as after SECRET_KEY changes or a token's age runs out.
  expireTokens() {
    this.tokens.clear();
  }

  createOrder(data, header) {
    const key = header["Idempotency-Key"];
    if (key && this.byKey.has(key)) return ok(view(this.byKey.get(key)), 200);
    const s = this.schedule(data.course_schedule_id);
    if (!s) return error(404, "NOT_FOUND", "课程不存在");
    if (data.amount !== undefined && data.amount !== s.price) return error(422, "AMOUNT_MISMATCH", "订单金额与体验课价格不符");
    const open = [...this.orders.values()].find((o) => o.status === "pending");
    if (open && open.course_schedule_id === s.id) return ok(view(open), 200);
    if (open) return error(409, "PENDING_ORDER_EXISTS", "您有一笔待支付的订单，请先完成支付或取消", { order_id: open.order_id });
    const kept = this.entries.find((e) => e.course_schedule_id === s.id && e.status === "offered");
    if (s.remaining <= 0 && !kept) return error(409, "SOLD_OUT", "名额已满", { alternatives: this.alternativesTo(s) });
    if (kept) kept.status = "booked";  // the order takes the seat kept for this parent
    else s.remaining -= 1;
    const order = { order_id: hex32(0xabc000 + this.orders.size + 1), status: "pending", course_schedule_id: s.id, prepays: 0, at: this.now() };
    this.orders.set(order.order_id, order);
    if (key) this.byKey.set(key, order);
    return ok(view(order), 201);
  }

  // The waitlist (contract §2 Waitlist) of this one parent.
  join({ course_schedule_id: id }) {
    const s = this.schedule(id);
    if (!s) return error(404, "NOT_FOUND", "课程不存在");
    const live = this.entries.find((e) => e.course_schedule_id === id && ["waiting", "offered"].includes(e.status));
    if (live) return ok(this.entryView(live), 200);
    if (s.remaining > 0) return error(409, "SEATS_AVAILABLE", "该课程还有名额，请直接预约");
    const entry = { id: 30 + this.entries.length + 1, course_schedule_id: id, status: "waiting", offer_expires_at: null,
      ahead: this.queue.get(id) || 0, created_at: "2026-12-02T09:00:00+08:00" };
    this.entries.push(entry);
    return ok(this.entryView(entry), 201);
  }

  leave(id) {
    const entry = this.entries.find((e) => e.id === id);
    if (!entry) return error(404, "NOT_FOUND", "候补记录不存在");
    if (entry.status === "offered") this.schedule(entry.course_schedule_id).remaining += 1;  // passes on (to nobody here)
    if (["waiting", "offered"].includes(entry.status)) entry.status = "left";
    return ok(this.entryView(entry));
  }

  // A seat of the session freed and was kept for this parent until `until` (ISO), as the service does.
  offer(entryId, until) {
    const entry = this.entries.find((e) => e.id === entryId);
    entry.status = "offered";
    entry.offer_expires_at = until;
  }

  entryView(e) {
    return { id: e.id, course_schedule_id: e.course_schedule_id, status: e.status,
      position: e.status === "waiting" ? e.ahead + 1 : null, offer_expires_at: e.offer_expires_at, created_at: e.created_at };
  }

  // SOLD_OUT's alternatives as the contract words them: up to 3 other sessions with a seat left, nearest in start
  // time first.
  alternativesTo(asked) {
    const gap = (s) => Math.abs(Date.parse(s.starts_at) - Date.parse(asked.starts_at));
    return this.schedules.filter((s) => s.id !== asked.id && s.remaining > 0)
      .sort((a, b) => gap(a) - gap(b) || a.id - b.id).slice(0, 3)
      .map((s) => ({ id: s.id, title: s.title, starts_at: s.starts_at, remaining: s.remaining }));
  }

  prepay({ order_id: orderId }) {
    const order = this.orders.get(orderId);
    if (!order) return error(404, "NOT_FOUND", "订单不存在");
    if (order.status !== "pending") return error(409, "ORDER_NOT_PAYABLE", "订单已不是待支付状态");
    order.prepays += 1;
    order.prepayId = order.prepayId || `wx${orderId.slice(-12)}`;
    return ok({
      appId: "wxsandboxappid", timeStamp: "1764637200", nonceStr: `nonce${order.prepays}`,
      package: `prepay_id=${order.prepayId}`, signType: "RSA", paySign: `sig-of-${order.prepayId}`,
    });
  }

  cancel(orderId, { reason = "user_cancelled" }) {
    const order = this.orders.get(orderId);
    if (!order) return error(404, "NOT_FOUND", "订单不存在");
    if (order.status === "pending") this.settle(orderId, reason === "payment_failed" ? "failed" : "cancelled");
    return ok(view(order));
  }

  // An order's status changes in the service (WeChat Pay's notification applied, an expiry, a cancel); the
  // change is pushed to every socket following it unless `push` is false (the push lost with a dropped socket).
  settle(orderId, status, { push = true } = {}) {
    const order = this.orders.get(orderId);
    const freed = order.status === "pending" && ["failed", "cancelled", "expired"].includes(status);
    if (freed) this.schedule(order.course_schedule_id).remaining += 1;
    order.status = status;
    order.at = this.now();
    if (push) this.sockets.filter((s) => s.follows(orderId)).forEach((s) => s.push(frame(order)));
  }

  now() {
    this.clock += 1000;
    return new Date(this.clock).toISOString().replace(/\.\d+Z$/, "+00:00");
  }

  // A socket the page opened (platform/fake-wx.js): authenticated by its ?token=, then subscribe frames.
  accept(conn) {
    this.sockets.push(conn);
    const token = new URL(conn.url).searchParams.get("token");
    if (!this.tokens.has(token)) {
      conn.serverOpen();
      conn.serverClose(4401, "unauthenticated");
      return;
    }
    if (this.refuseSockets) {
      conn.serverFail();
      return;
    }
    conn.serverOpen();
  }

  // A frame from the page on one of its sockets.
  received(conn, message) {
    if (message.op === "subscribe") {
      const order = this.orders.get(message.order_id);
      if (!order) {
        conn.push({ type: "error", code: "NOT_FOUND", message: "订单不存在", order_id: message.order_id });
        return;
      }
      conn.subscriptions.add(order.order_id);
      conn.push(frame(order));
    } else if (message.op === "unsubscribe") {
      conn.subscriptions.delete(message.order_id);
    }
  }

  // Every open socket drops (a network change, the phone asleep): closed with 1006 as a lost connection is.
  dropSockets() {
    this.sockets.filter((s) => s.isOpen()).forEach((s) => s.serverClose(1006, ""));
  }

  openSockets() {
    return this.sockets.filter((s) => s.isOpen());
  }
}

function view(order) {
  return {
    order_id: order.order_id, status: order.status, amount_fen: 20000, amount: "200.00", currency: "CNY",
    course_schedule_id: order.course_schedule_id, created_at: "2026-12-02T09:00:00+08:00",
    expires_at: "2026-12-02T09:30:00+08:00", paid_at: null, transaction_id: null,
    refunded_fen: order.refunded_fen || 0, failure_reason: null,
    reservation: { reservation_id: `r${order.order_id.slice(-8)}`, status: "temporary", expires_at: "2026-12-02T09:15:00+08:00", confirmed_at: null },
  };
}

function frame(order) {
  const reservation = { paid: "confirmed", pending: "temporary", expired: "expired" }[order.status] || "cancelled";
  return { type: "order.status", order_id: order.order_id, status: order.status, reservation_status: reservation, at: order.at };
}

const ok = (data, statusCode = 200) => ({ statusCode, data, header: { "Content-Type": "application/json" } });

function error(status, code, message, extra = {}, headers = {}) {
  return { statusCode: status, data: { error: Object.assign({ code, message }, extra) }, header: Object.assign({ "Content-Type": "application/json" }, headers) };
}

function answerOf(a) {
  if (a.body !== undefined) return { statusCode: a.status, data: a.body, header: a.headers || {} };
  return error(a.status, a.code, a.message, a.extra, a.headers);
}

module.exports = { FakeService, SCHEDULES, error };
