// 课程详情 → 立即预约 → 确认支付 (金额固定为200元) → wx.requestPayment, and the order's status live over the socket.
// Built with Component, as WeChat allows for a page (its page lifetimes are methods), so that miniprogram-simulate
// renders the very same file in the tests.
const config = require("../../config");
const { request, idempotencyKey } = require("../../utils/api");
const { when, wholeYuan } = require("../../utils/format");
const { OrderSocket } = require("../../utils/order-socket");
const { STATUS_TEXT, PROCESSING_TEXT, supersedes } = require("../../utils/status");

const app = getApp();
const ORDER_NOTICES = [config.subscribeTemplateId, config.paymentFailedTemplateId, config.orderExpiredTemplateId];

Component({
  data: {
    schedule: null,
    fixedPrice: "",
    confirming: false,
    busy: false,
    order: null,
    status: "",
    statusAt: "",
    statusText: "",
    phase: "",  // "paying" while the WeChat Pay sheet is up, "processing" until the service reports the outcome
    notice: "",  // the API's own message for the last refusal
    alternatives: [],  // SOLD_OUT's other sessions with a seat left, each with 立即预约
    entry: null,  // the parent's place on this session's waitlist (waiting or offered), if any
    offerText: "",  // 有名额了！N 分钟内完成预约
    queued: false,  // a call is waiting out a 503's Retry-After: 排队中
  },

  methods: {
    onLoad(query) {
      // The query may come from a shared link: only a plain id is asked for.
      const id = String((query && query.scheduleId) || "");
      if (!/^[1-9]\d{0,14}$/.test(id)) {
        this.setData({ notice: "课程不存在" });
        return;
      }
      this.scheduleId = Number(id);
      this.socket = new OrderSocket({
        getToken: () => app.token(),
        relogin: () => app.login(),
        onStatus: (frame) => this.onStatus(frame),
        onError: (frame) => this.fail(frame),
      });
      this.loadSchedule();
      this.loadEntry();
    },

    onShow() {
      // Back from the background (the WeChat Pay sheet, another app): the socket may have closed meanwhile.
      if (this.data.order) this.socket.connect();
      // Back from the 候补成功 message, say: a seat may be kept for the parent now.
      if (this.scheduleId && this.entryLoaded) this.loadEntry();
    },

    onUnload() {
      if (this.socket) this.socket.close();
    },

    // The page's calls to the service: 排队中 while one waits out a 503 (Retry-After), cleared when it ends.
    api(options, { signedIn = true } = {}) {
      const withQueue = Object.assign({ onQueued: () => this.setData({ queued: true }) }, options);
      const call = signedIn ? app.call(withQueue) : request(withQueue);
      const done = () => { if (this.data.queued) this.setData({ queued: false }); };
      call.then(done, done);
      return call;
    },

    async loadSchedule() {
      try {
        const s = await this.api({ path: `/api/v1/courses/schedules/${this.scheduleId}` }, { signedIn: false });
        this.setData({ schedule: Object.assign({}, s, { when: when(s.starts_at) }), fixedPrice: wholeYuan(s.price_fen) });
        return s;
      } catch (e) {
        this.fail(e);
        return null;
      }
    },

    // -- the waitlist: 加入候补 on a full session, 候补第 N 位 while waiting, 有名额了！ once a seat is kept ----------
    async loadEntry() {
      try {
        const { items } = await this.api({ path: "/api/v1/waitlist" });
        this.entryLoaded = true;
        this.setEntry(items.find((e) => e.course_schedule_id === this.scheduleId && (e.status === "waiting" || e.status === "offered")) || null);
      } catch (e) {
        this.fail(e);
      }
    },

    setEntry(entry) {
      let offerText = "";
      if (entry && entry.status === "offered") {
        const minutes = Math.max(1, Math.ceil((Date.parse(entry.offer_expires_at) - Date.now()) / 60000));
        offerText = `有名额了！${minutes} 分钟内完成预约`;
      }
      this.setData({ entry, offerText });
    },

    // 加入候补. The 候补成功 notice can be asked for only synchronously inside the tap, so it is asked first.
    onJoin() {
      if (this.data.busy) return;
      this.setData({ busy: true, notice: "" });
      wx.requestSubscribeMessage({
        tmplIds: [config.waitlistTemplateId],
        complete: () => this.join().then(() => this.setData({ busy: false })),
      });
    },

    async join() {
      try {
        const entry = await this.api({ method: "POST", path: "/api/v1/waitlist", data: { course_schedule_id: this.scheduleId } });
        this.setEntry(entry);
      } catch (e) {
        if (e.code === "SEATS_AVAILABLE") this.loadSchedule();  // a seat came free: 立即预约 instead
        this.fail(e);
      }
    },

    // 退出候补 (or 放弃名额: the kept seat passes on at once).
    async onLeave() {
      const entry = this.data.entry;
      if (!entry || this.data.busy) return;
      try {
        await this.api({ method: "DELETE", path: `/api/v1/waitlist/${entry.id}` });
        this.setEntry(null);
        this.loadSchedule();
      } catch (e) {
        this.fail(e);
      }
    },

    // A seat is kept for this parent: 立即预约 books it although the session shows no seat left.
    bookable() {
      const s = this.data.schedule;
      const entry = this.data.entry;
      return Boolean(s) && (s.remaining > 0 || Boolean(entry && entry.status === "offered"));
    },

    // 立即预约 on one of SOLD_OUT's alternatives: this page now shows that session, with its confirmation open
    // when it still has a seat (the list was true when the refusal was made, not necessarily now).
    async onAlternative(e) {
      const id = Number(e.currentTarget.dataset.id);
      if (!id || this.data.busy) return;
      this.scheduleId = id;
      this.setData({ alternatives: [], notice: "", order: null, status: "", statusAt: "", statusText: "", phase: "", entry: null, offerText: "" });
      this.loadEntry();
      const s = await this.loadSchedule();
      if (s && s.remaining > 0) this.setData({ confirming: true });
    },

    // 立即预约: the confirmation with the fixed price.
    onBook() {
      if (!this.bookable()) return;
      this.setData({ confirming: true, notice: "", alternatives: [] });
    },

    onCloseConfirm() {
      this.setData({ confirming: false });
    },

    // 确认支付. WeChat lets requestSubscribeMessage run only synchronously inside a tap handler, so it is asked first,
    // before anything awaits; a refusal changes nothing but the notices.
    onConfirmPay() {
      if (this.data.busy) return;
      this.setData({ busy: true, notice: "" });
      const key = idempotencyKey();
      this.askForNotice(() => this.createAndPay(key).catch((e) => this.fail(e)).then(() => this.setData({ busy: false })));
    },

    // The order's possible endings, each told by the service once: 预约成功, 支付失败, 订单已过期 (WeChat takes up to
    // three templates in one request; a parent's own cancel is not told).
    askForNotice(then) {
      wx.requestSubscribeMessage({ tmplIds: ORDER_NOTICES, complete: () => then() });
    },

    async createAndPay(key) {
      let order;
      try {
        order = await this.api({
          method: "POST",
          path: "/api/v1/payment/orders/create",
          data: { course_schedule_id: this.scheduleId, amount: this.data.schedule.price },
          headers: { "Idempotency-Key": key },
        });
      } catch (e) {
        this.setData({ confirming: false });
        if (e.code === "PENDING_ORDER_EXISTS" && e.body.order_id) {
          this.track({ order_id: e.body.order_id });  // its first frame shows it; 继续支付 or 取消订单 from there
        } else if (e.code === "SOLD_OUT" || e.code === "AMOUNT_MISMATCH") {
          this.loadSchedule();
        }
        if (e.code === "SOLD_OUT") {
          this.setData({ alternatives: (e.body.alternatives || []).map((a) => Object.assign({}, a, { when: when(a.starts_at) })) });
        }
        throw e;
      }
      this.track(order);
      this.setData({ confirming: false, entry: null, offerText: "" });  // a kept seat is this order's now
      await this.pay();
    },

    track(order) {
      this.setData({ order, status: "", statusAt: "", statusText: "", phase: "" });
      this.socket.subscribe(order.order_id);
    },

    // POST /api/v1/payment/wxpay/create, then wx.requestPayment with exactly the fields it returns.
    // A repeat (继续支付) reuses the prepay id.
    async pay() {
      const orderId = this.data.order.order_id;
      const p = await this.api({ method: "POST", path: "/api/v1/payment/wxpay/create", data: { order_id: orderId } });
      if (!this.stillPayable(orderId)) return;
      this.setData({ phase: "paying" });
      wx.requestPayment({
        timeStamp: p.timeStamp,
        nonceStr: p.nonceStr,
        package: p.package,
        signType: p.signType,
        paySign: p.paySign,
        // Paid in WeChat; the order turns paid only when WeChat Pay's notification reaches the service, and the
        // socket says so. The socket may have said so already.
        success: () => {
          if (this.stillPayable(orderId)) this.setData({ phase: "processing", statusText: PROCESSING_TEXT });
        },
        // "requestPayment:fail cancel" is the parent closing the sheet; anything else is a failed payment.
        // Either way the order is closed now so the seat is free at once.
        fail: ({ errMsg } = {}) => {
          if (this.stillPayable(orderId)) this.cancel(/:fail cancel$/.test(errMsg || "") ? "user_cancelled" : "payment_failed");
        },
      });
    },

    // The page still shows this order, and nothing has reported it settled.
    stillPayable(orderId) {
      return Boolean(this.data.order) && this.data.order.order_id === orderId
        && (this.data.status === "" || this.data.status === "pending");
    },

    // 继续支付 (an order left unpaid): the notice is asked for again, since this tap may be the first of this visit.
    onResume() {
      this.setData({ notice: "" });
      this.askForNotice(() => this.pay().catch((e) => this.fail(e)));
    },

    onCancelOrder() {
      this.cancel("user_cancelled");
    },

    // POST …/cancel: the service closes the WeChat Pay order first; if WeChat says it was paid, it is paid.
    // Its answer is the order as it now stands, so it is shown at once; the socket says the same.
    cancel(reason) {
      const orderId = this.data.order.order_id;
      this.setData({ phase: "processing", statusText: "处理中…" });
      return this.api({ method: "POST", path: `/api/v1/payment/orders/${orderId}/cancel`, data: { reason } })
        .then((order) => this.onStatus({ order_id: order.order_id, status: order.status }))
        .catch((e) => {
          this.setData({ phase: "", statusText: STATUS_TEXT[this.data.status] || "" });
          this.fail(e);
        });
    },

    onStatus(frame) {
      if (!this.data.order || frame.order_id !== this.data.order.order_id) return;
      if (!supersedes(frame, { status: this.data.status, at: this.data.statusAt })) return;
      const at = frame.at || this.data.statusAt;
      if (frame.status === "pending" && this.data.phase) {
        this.setData({ status: "pending", statusAt: at });  // still paying: keep 支付处理中 until the outcome
        return;
      }
      const settled = frame.status !== this.data.status && frame.status !== "pending";
      this.setData({ status: frame.status, statusAt: at, statusText: STATUS_TEXT[frame.status] || frame.status, phase: "" });
      if (settled) this.loadSchedule();  // seats left changed
    },

    onBackToList() {
      wx.navigateBack();
    },

    // 重新支付 / 重新预约 (seed AC4: a parent who cancelled may come back and pay): a new order from the confirmation.
    onRetry() {
      const s = this.data.schedule;
      if (this.data.order) this.socket.unsubscribe(this.data.order.order_id);
      this.setData({ order: null, status: "", statusAt: "", statusText: "", phase: "", notice: "", confirming: Boolean(s && s.remaining > 0) });
    },

    fail(e) {
      this.setData({ notice: (e && e.message) || "请求失败" });
    },
  },
});
