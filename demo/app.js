// The demo checkout: the same API calls as the mini-program (miniprogram/), with two dev-only shortcuts
// standing in for the phone: /demo/api/wx-login (wx.login) and /demo/api/pay (the payer in the WeChat Pay sheet).
// Order status is shown only as the WebSocket /ws/orders reports it; the page never polls.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const VIEWS = ["view-login", "view-schedules", "view-orders", "view-detail", "view-result"];

  const RESULTS = {
    processing: { title: "支付处理中，请稍候…", detail: "正在等待微信支付结果" },
    pending: { title: "订单待支付", detail: "" },
    paid: { title: "预约成功", detail: "已为您锁定名额，请准时到馆上课" },
    failed: { title: "支付失败，请重试", detail: "未完成扣款，名额已释放" },
    cancelled: { title: "支付已取消", detail: "未扣款，名额已释放" },
    expired: { title: "订单已过期", detail: "超时未支付，名额已释放" },
    refund_required: { title: "支付成功，但名额已满，工作人员将为您退款", detail: "款项将原路退回，请留意微信通知" },
    refunded: { title: "订单已退款", detail: "款项已原路退回" },
  };

  const state = {
    token: null,
    parents: [],      // every parent logged in on this page ({name, token}): one person can play several
    entry: null,      // the current parent's waitlist entry on the detail page's session
    waitTimer: null,  // re-reads the waitlist while the parent waits (the waitlist has no push)
    schedules: [],
    schedule: null,   // the session on the detail page
    order: null,      // the order being paid
    phase: "idle",    // idle | sheet | processing | waiting | done
  };

  // -- HTTP ---------------------------------------------------------------------------------------
  // A 503 with Retry-After (the service too busy to admit the call now, or a dependency down: safe to retry) is
  // sent again after the seconds it names (1 to 10, plus up to a fifth so a crowd turned away together does not
  // come back together), for at most QUEUE_BUDGET_MS in all, showing 排队中 meanwhile; as the mini-program does.
  const QUEUE_BUDGET_MS = 30000;
  const MAX_WAIT_MS = 10000;

  class ApiError extends Error {
    constructor(status, body, retryAfterMs = null) {
      const err = (body && body.error) || {};
      super(err.message || `请求失败（${status}）`);
      this.status = status;
      this.code = err.code || "ERROR";
      this.body = err;
      this.retryAfterMs = retryAfterMs;
    }
  }

  function retryAfterMs(resp) {
    const header = resp.status === 503 ? resp.headers.get("Retry-After") : null;
    if (header === null) return null;
    const seconds = /^\d{1,6}$/.test(header.trim()) ? Number(header) : 1;
    return Math.min(MAX_WAIT_MS, Math.max(1000, seconds * 1000));
  }

  async function send(method, path, body, headers) {
    // One attempt: the body of a 2xx, else an ApiError.
    const opts = { method, headers: Object.assign({}, headers) };
    if (body !== undefined) {
      opts.body = JSON.stringify(body);
      opts.headers["Content-Type"] = "application/json";
    }
    if (state.token) opts.headers.Authorization = `Bearer ${state.token}`;
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, { error: { code: "NETWORK", message: "网络异常，请检查网络后重试" } });
    }
    const data = await resp.json().catch(() => null);
    if (!resp.ok) throw new ApiError(resp.status, data, retryAfterMs(resp));
    return data;
  }

  async function queued(attempt) {
    // attempt() again after each 503 with Retry-After while the budget lasts; 排队中 shows during the waits.
    const deadline = Date.now() + QUEUE_BUDGET_MS;
    try {
      for (;;) {
        try {
          return await attempt();
        } catch (e) {
          if (!(e instanceof ApiError) || e.retryAfterMs === null) throw e;
          const wait = Math.round(e.retryAfterMs * (1 + Math.random() * 0.2));
          if (Date.now() + wait > deadline) throw e;
          $("queued").hidden = false;
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    } finally {
      $("queued").hidden = true;
    }
  }

  function api(method, path, body, headers) {
    // A call to the service (the same call again after a 503 with Retry-After: an order keeps its key).
    return queued(() => send(method, path, body, headers));
  }

  function newIdempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(16) + Math.random().toString(16).slice(2);
  }

  // -- live status --------------------------------------------------------------------------------
  // One socket for the page; every (re)connect subscribes again and so gets the current state first.
  const live = {
    socket: null,
    orders: new Set(),
    retries: 0,
    timer: null,

    connect() {
      clearTimeout(this.timer);
      const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/orders?token=${encodeURIComponent(state.token)}`;
      const ws = new WebSocket(url);
      this.socket = ws;
      showSocketState("connecting");
      ws.onopen = () => {
        this.retries = 0;
        showSocketState("open");
        this.orders.forEach((id) => ws.send(JSON.stringify({ op: "subscribe", order_id: id })));
      };
      ws.onmessage = (ev) => onFrame(JSON.parse(ev.data));
      ws.onclose = (ev) => {
        if (this.socket !== ws) return;
        this.socket = null;
        if (ev.code === 4401) {
          logOut("登录已过期，请重新登录");
          return;
        }
        // Back off 0.5 s, 1 s, 2 s … up to 5 s, then resubscribe (the snapshot covers anything missed).
        showSocketState("retrying");
        this.timer = setTimeout(() => this.connect(), Math.min(5000, 500 * 2 ** this.retries++));
      };
    },

    subscribe(orderId) {
      this.orders.add(orderId);
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ op: "subscribe", order_id: orderId }));
      }
    },

    close() {
      clearTimeout(this.timer);
      const ws = this.socket;
      this.socket = null;
      this.orders.clear();
      if (ws) ws.close();
      showSocketState("idle");
    },
  };

  function showSocketState(s) {
    const el = $("ws-state");
    el.hidden = s === "idle";
    el.dataset.state = s;
    el.textContent = { open: "实时连接", connecting: "连接中", retrying: "重新连接中" }[s] || "";
  }

  function onFrame(frame) {
    if (frame.type === "error") {
      if (state.order && frame.order_id === state.order.order_id) showError(frame.message || "订单不存在");
      return;
    }
    if (frame.type !== "order.status" || !state.order || frame.order_id !== state.order.order_id) return;
    state.order.status = frame.status;
    if (frame.status === "pending") {
      // Still unpaid: the sheet or the "processing" screen stays; after 稍后支付 the pending screen shows.
      if (state.phase === "waiting") showResult("pending");
      return;
    }
    state.phase = "done";
    closeOverlays();
    showResult(frame.status);
  }

  // -- views --------------------------------------------------------------------------------------
  function show(view) {
    VIEWS.forEach((id) => { $(id).hidden = id !== view; });
  }

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  function closeOverlays() {
    $("confirm-dialog").hidden = true;
    $("wxpay-sheet").hidden = true;
  }

  function formatTime(iso) {
    return new Date(iso).toLocaleString("zh-CN", {
      month: "long", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit", hour12: false,
    });
  }

  function wholeYuan(fen) {
    return fen % 100 === 0 ? String(fen / 100) : (fen / 100).toFixed(2);
  }

  function logOut(message) {
    live.close();
    stopWaiting();
    state.parents = state.parents.filter((p) => p.token !== state.token);
    $("parent-bar").hidden = true;
    state.token = null;
    state.order = null;
    state.phase = "idle";
    closeOverlays();
    show("view-login");
    showError(message || "");
  }

  async function handle(action, button) {
    // Runs a user action: one at a time per button, and any API error shown as the API words it.
    if (button) button.disabled = true;
    try {
      showError("");
      await action();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) logOut("登录已过期，请重新登录");
      else showError(e.message);
      if (!(e instanceof ApiError)) console.error(e);
    } finally {
      if (button) button.disabled = false;
    }
  }

  // -- login and sessions -------------------------------------------------------------------------
  async function logIn() {
    // A fresh code for each try (what wx.login gives on a phone): a 503 may come after the code was spent.
    const session = await queued(async () => {
      const { code } = await send("POST", "/demo/api/wx-login");
      return send("POST", "/api/v1/auth/login", { code });
    });
    state.parents.push({ name: `家长${state.parents.length + 1}`, token: session.token });
    await switchParent(state.parents.length - 1);
  }

  // The parent the page acts for: their token, their socket; the other parents stay logged in on this page.
  async function switchParent(index) {
    live.close();
    stopWaiting();
    state.token = state.parents[index].token;
    state.order = null;
    state.phase = "idle";
    closeOverlays();
    $("order-list").replaceChildren();  // never another parent's orders, not even hidden
    const select = $("parent-select");
    select.replaceChildren(...state.parents.map((p, i) => new Option(p.name, String(i))));
    select.value = String(index);
    $("parent-bar").hidden = false;
    live.connect();
    await loadSchedules();
  }

  async function loadSchedules() {
    stopWaiting();
    const { items } = await api("GET", "/api/v1/courses/schedules");
    state.schedules = items;
    const list = $("schedule-list");
    list.replaceChildren(...items.map(scheduleItem));
    $("schedule-empty").hidden = items.length > 0;
    show("view-schedules");
  }

  function scheduleItem(s) {
    const li = document.createElement("li");
    li.className = "schedule-item";
    li.dataset.scheduleId = s.id;
    li.dataset.test = "schedule";
    const full = s.remaining <= 0;
    if (full) li.setAttribute("aria-disabled", "true");
    li.innerHTML = `<p class="schedule-title"></p>
      <div class="schedule-meta"><span class="when"></span><span class="price"></span></div>
      <div class="schedule-meta"><span class="left"></span></div>`;
    li.querySelector(".schedule-title").textContent = s.title;
    li.querySelector(".when").textContent = formatTime(s.starts_at);
    li.querySelector(".price").textContent = `${s.price} 元`;
    li.querySelector(".left").textContent = full ? "名额已满 · 可候补" : `剩余名额 ${s.remaining}`;
    li.addEventListener("click", () => handle(() => openDetail(s.id)));
    return li;
  }

  async function openDetail(scheduleId) {
    const [s, { items }] = await Promise.all([
      api("GET", `/api/v1/courses/schedules/${scheduleId}`), api("GET", "/api/v1/waitlist")]);
    state.schedule = s;
    $("detail-title").textContent = s.title;
    $("detail-time").textContent = formatTime(s.starts_at);
    $("detail-price").textContent = `${s.price} 元`;
    $("detail-remaining").textContent = s.remaining > 0 ? String(s.remaining) : "名额已满";
    showWaitlist(items.find((e) => e.course_schedule_id === s.id && ["waiting", "offered"].includes(e.status)) || null);
    showAlternatives([]);
    show("view-detail");
  }

  // -- the waitlist (a full session: 加入候补; 候补第 N 位; 有名额了！N 分钟内完成预约) -------------------------
  function showWaitlist(entry) {
    const s = state.schedule;
    state.entry = entry;
    const box = $("waitlist");
    const offered = entry && entry.status === "offered";
    box.dataset.status = entry ? entry.status : "";
    box.hidden = !entry && s.remaining > 0;
    if (offered) {
      const minutes = Math.max(1, Math.ceil((new Date(entry.offer_expires_at) - Date.now()) / 60000));
      $("waitlist-text").textContent = `有名额了！${minutes} 分钟内完成预约`;
    } else if (entry) {
      $("waitlist-text").textContent = `候补第 ${entry.position} 位`;
    } else {
      $("waitlist-text").textContent = "名额已满，可加入候补：有人取消时名额为您保留";
    }
    $("join-btn").hidden = Boolean(entry);
    $("leave-btn").hidden = !entry;
    $("leave-btn").textContent = offered ? "放弃名额" : "退出候补";
    $("book-btn").disabled = s.remaining <= 0 && !offered;
    stopWaiting();
    if (entry && entry.status === "waiting") {
      state.waitTimer = setTimeout(() => handle(() => refreshWaitlist()), 3000);
    }
  }

  async function refreshWaitlist() {
    // Still on this session's page: read the parent's place again (a seat may be kept for them now).
    if ($("view-detail").hidden || !state.schedule) return;
    const { items } = await api("GET", "/api/v1/waitlist");
    const entry = items.find((e) => e.id === (state.entry && state.entry.id)) || null;
    if (entry && entry.status === "offered") {
      await openDetail(state.schedule.id);  // the seats and the offer together
      return;
    }
    if ($("view-detail").hidden) return;
    showWaitlist(entry && ["waiting", "offered"].includes(entry.status) ? entry : null);
  }

  function stopWaiting() {
    clearTimeout(state.waitTimer);
    state.waitTimer = null;
  }

  async function joinWaitlist() {
    try {
      const entry = await api("POST", "/api/v1/waitlist", { course_schedule_id: state.schedule.id });
      showWaitlist(entry);
    } catch (e) {
      if (e.code === "SEATS_AVAILABLE") await openDetail(state.schedule.id);  // a seat came free: book it
      throw e;
    }
  }

  async function leaveWaitlist() {
    await api("DELETE", `/api/v1/waitlist/${state.entry.id}`);
    await openDetail(state.schedule.id);
  }

  // -- my orders: each order's story ----------------------------------------------------------------
  const STORIES = {
    paid: (o) => `预约成功 · 已支付 ${o.amount} 元${o.refunded_fen > 0 ? ` · 已退款 ${(o.refunded_fen / 100).toFixed(2)} 元` : ""}`,
    refunded: (o) => `已退款 ${(o.refunded_fen / 100).toFixed(2)} 元`,
    refund_required: () => "支付成功，但名额已满，工作人员将为您退款",
    cancelled: () => "支付已取消",
    failed: () => "支付失败",
    expired: () => "订单已过期",
    pending: (o) => `待支付 · 请在 ${new Date(o.expires_at).toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit", hour12: false })} 前完成支付`,
  };

  async function loadOrders() {
    stopWaiting();
    const { items } = await api("GET", "/api/v1/payment/orders");
    const sessions = {};
    for (const id of new Set(items.map((o) => o.course_schedule_id))) {
      sessions[id] = state.schedules.find((s) => s.id === id)
        || await api("GET", `/api/v1/courses/schedules/${id}`).catch(() => null);
    }
    $("order-list").replaceChildren(...items.map((o) => {
      const li = document.createElement("li");
      li.className = "schedule-item order-item";
      li.dataset.orderId = o.order_id;
      li.dataset.status = o.status;
      li.dataset.test = "order";
      li.innerHTML = `<p class="schedule-title"></p><div class="schedule-meta"><span class="when"></span></div>
        <p class="story"></p>`;
      const s = sessions[o.course_schedule_id];
      li.querySelector(".schedule-title").textContent = s ? s.title : `课程 ${o.course_schedule_id}`;
      li.querySelector(".when").textContent = s ? formatTime(s.starts_at) : "";
      li.querySelector(".story").textContent = (STORIES[o.status] || (() => o.status))(o);
      if (o.status === "pending") {
        const button = document.createElement("button");
        button.className = "wx";
        button.dataset.test = "open-order";
        button.textContent = "继续支付或取消";
        button.addEventListener("click", () => handle(() => resumeOrder(o.order_id), button));
        li.appendChild(button);
      }
      return li;
    }));
    $("orders-empty").hidden = items.length > 0;
    show("view-orders");
  }

  // SOLD_OUT's alternatives (other sessions with a seat left, nearest in time first), each with 立即预约.
  function showAlternatives(items) {
    $("alternatives").hidden = items.length === 0;
    $("alternative-list").replaceChildren(...items.map((a) => {
      const li = document.createElement("li");
      li.className = "schedule-item alternative";
      li.dataset.scheduleId = a.id;
      li.dataset.test = "alternative";
      li.innerHTML = `<p class="schedule-title"></p>
        <div class="schedule-meta"><span class="when"></span><span class="left"></span></div>
        <button class="primary small" data-test="book-alternative">立即预约</button>`;
      li.querySelector(".schedule-title").textContent = a.title;
      li.querySelector(".when").textContent = formatTime(a.starts_at);
      li.querySelector(".left").textContent = `剩余名额 ${a.remaining}`;
      const button = li.querySelector("button");
      button.addEventListener("click", () => handle(async () => {
        await openDetail(a.id);
        if (state.schedule.remaining > 0) openConfirm();
      }, button));
      return li;
    }));
  }

  // -- booking and paying -------------------------------------------------------------------------
  function openConfirm() {
    const s = state.schedule;
    $("confirm-course").textContent = s.title;
    $("confirm-time").textContent = formatTime(s.starts_at);
    $("confirm-amount").textContent = `金额固定为${wholeYuan(s.price_fen)}元`;
    $("confirm-dialog").hidden = false;
  }

  async function createAndPay() {
    // One Idempotency-Key per tap: a retried request of this tap returns the same order, a new tap may not.
    let order;
    try {
      order = await api("POST", "/api/v1/payment/orders/create",
        { course_schedule_id: state.schedule.id, amount: state.schedule.price },
        { "Idempotency-Key": newIdempotencyKey() });
    } catch (e) {
      $("confirm-dialog").hidden = true;
      if (e.code === "PENDING_ORDER_EXISTS" && e.body.order_id) await resumeOrder(e.body.order_id);
      else if (e.code === "SOLD_OUT" || e.code === "AMOUNT_MISMATCH") await openDetail(state.schedule.id);
      if (e.code === "SOLD_OUT") showAlternatives(e.body.alternatives || []);
      throw e;
    }
    startOrder(order);
    $("confirm-dialog").hidden = true;
    await openSheet();
  }

  function startOrder(order) {
    state.order = order;
    state.phase = "sheet";
    live.subscribe(order.order_id);
  }

  async function openSheet() {
    // The wx.requestPayment parameters; a repeat reuses the prepay id.
    const params = await api("POST", "/api/v1/payment/wxpay/create", { order_id: state.order.order_id });
    state.phase = "sheet";
    $("sheet-amount").textContent = state.order.amount;
    $("sheet-package").textContent = params.package;
    $("wxpay-sheet").hidden = false;
  }

  async function resumeOrder(orderId) {
    // An unpaid order is already open (PENDING_ORDER_EXISTS): show it, to pay or cancel it.
    const order = await api("GET", `/api/v1/payment/orders/${orderId}`);
    state.order = order;
    state.phase = "waiting";
    live.subscribe(order.order_id);
    showResult(order.status);
  }

  async function payerActs(result) {
    // What the payer does in the WeChat Pay sheet; the outcome arrives over the WebSocket.
    await whileProcessing(async () => {
      await api("POST", "/demo/api/pay", { order_id: state.order.order_id, result });
      // As the mini-program does when wx.requestPayment fails: close the order, the seat is free at once.
      if (result === "fail") await cancel("payment_failed");
    });
  }

  async function cancelOrder(reason) {
    await whileProcessing(() => cancel(reason));
  }

  function cancel(reason) {
    return api("POST", `/api/v1/payment/orders/${state.order.order_id}/cancel`, { reason });
  }

  async function whileProcessing(action) {
    // Shows "processing" until the WebSocket reports the outcome; if the call itself fails, the order is
    // shown as it stands (pending: pay or cancel it again).
    state.phase = "processing";
    $("wxpay-sheet").hidden = true;
    showResult("processing");
    try {
      await action();
    } catch (e) {
      if (state.phase === "processing") {
        state.phase = "waiting";
        showResult(state.order.status || "pending");
      }
      throw e;
    }
  }

  function payLater() {
    state.phase = "waiting";
    $("wxpay-sheet").hidden = true;
    showResult(state.order.status || "pending");
  }

  function showResult(status) {
    const r = RESULTS[status] || { title: status, detail: "" };
    const o = state.order;
    $("view-result").dataset.status = status;
    $("result-title").textContent = r.title;
    let detail = r.detail;
    if (status === "pending" && o.expires_at) {
      detail = `请在 ${new Date(o.expires_at).toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit", hour12: false })} 前完成支付，逾期订单自动取消`;
    }
    $("result-detail").textContent = detail;
    const s = state.schedules.find((x) => x.id === o.course_schedule_id) || state.schedule;
    $("result-course").textContent = s ? s.title : "";
    $("result-amount").textContent = `${o.amount} 元`;
    $("order-no").textContent = o.order_id;
    $("resume-pay").hidden = status !== "pending";
    $("cancel-order").hidden = status !== "pending";
    $("retry").hidden = !["failed", "cancelled", "expired"].includes(status);
    $("back-to-list").hidden = status === "processing";
    show("view-result");
  }

  // -- wiring -------------------------------------------------------------------------------------
  function on(id, fn) {
    const el = $(id);
    el.addEventListener("click", () => handle(fn, el));
  }

  on("login-btn", logIn);
  on("detail-back", loadSchedules);
  on("book-btn", async () => openConfirm());
  on("confirm-back", async () => { $("confirm-dialog").hidden = true; });
  on("confirm-pay", createAndPay);
  on("sheet-pay", () => payerActs("success"));
  on("sheet-fail", () => payerActs("fail"));
  on("sheet-cancel", () => cancelOrder("user_cancelled"));
  on("sheet-later", async () => payLater());
  on("resume-pay", openSheet);
  on("cancel-order", () => cancelOrder("user_cancelled"));
  on("retry", () => openDetail(state.order.course_schedule_id));
  on("back-to-list", loadSchedules);
  on("join-btn", joinWaitlist);
  on("leave-btn", leaveWaitlist);
  on("my-orders", loadOrders);
  on("orders-back", loadSchedules);
  on("new-parent", logIn);
  $("parent-select").addEventListener("change", (ev) => handle(() => switchParent(Number(ev.target.value))));
})();
