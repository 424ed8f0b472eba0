// 课程详情 → 立即预约 → 确认支付 (金额固定为200元) → wx.requestPayment, and the order's status live over the socket.
const config = require("../../config");
const { idempotencyKey } = require("../../utils/api");
const { when, wholeYuan } = require("../../utils/format");
const { OrderSocket } = require("../../utils/order-socket");

const app = getApp();

const STATUS_TEXT = {
  pending: "订单待支付",
  paid: "预约成功",
  failed: "支付失败，请重试",
  cancelled: "支付已取消",
  expired: "订单已过期",
  refund_required: "支付成功，但名额已满，工作人员将为您退款",
  refunded: "订单已退款",
};

Page({
  data: {
    schedule: null,
    fixedPrice: "",
    confirming: false,
    busy: false,
    order: null,
    status: "",
    statusText: "",
    phase: "",  // "paying" while the WeChat Pay sheet is up, "processing" until the socket reports the outcome
  },

  onLoad({ scheduleId }) {
    this.scheduleId = Number(scheduleId);
    this.socket = new OrderSocket({
      getToken: () => app.token(),
      relogin: () => app.login(),
      onStatus: (frame) => this.onStatus(frame),
      onError: (frame) => this.fail(frame),
    });
    this.loadSchedule();
  },

  onShow() {
    // Back from the background (the WeChat Pay sheet, another app): the socket may have closed meanwhile.
    if (this.data.order) this.socket.connect();
  },

  onUnload() {
    this.socket.close();
  },

  async loadSchedule() {
    try {
      const s = await app.call({ path: `/api/v1/courses/schedules/${this.scheduleId}` });
      this.setData({ schedule: Object.assign({}, s, { when: when(s.starts_at) }), fixedPrice: wholeYuan(s.price_fen) });
    } catch (e) {
      this.fail(e);
    }
  },

  // 立即预约: the confirmation with the fixed price.
  onBook() {
    this.setData({ confirming: true });
  },

  onCloseConfirm() {
    this.setData({ confirming: false });
  },

  // 确认支付. requestSubscribeMessage only works inside a tap handler, so it is asked first; a refusal
  // changes nothing but the 预约成功 notice.
  onConfirmPay() {
    if (this.data.busy) return;
    this.setData({ busy: true });
    const key = idempotencyKey();
    wx.requestSubscribeMessage({
      tmplIds: [config.subscribeTemplateId],
      complete: () => this.createAndPay(key).catch((e) => this.fail(e)).then(() => this.setData({ busy: false })),
    });
  },

  async createAndPay(key) {
    let order;
    try {
      order = await app.call({
        method: "POST",
        path: "/api/v1/payment/orders/create",
        data: { course_schedule_id: this.scheduleId, amount: this.data.schedule.price },
        headers: { "Idempotency-Key": key },
      });
    } catch (e) {
      this.setData({ confirming: false });
      if (e.code === "PENDING_ORDER_EXISTS" && e.body.order_id) {
        this.track({ order_id: e.body.order_id });  // its snapshot shows it; 继续支付 or 取消订单 from there
      } else if (e.code === "SOLD_OUT" || e.code === "AMOUNT_MISMATCH") {
        this.loadSchedule();
      }
      throw e;
    }
    this.track(order);
    this.setData({ confirming: false });
    await this.pay();
  },

  track(order) {
    this.setData({ order, status: "", statusText: "", phase: "" });
    this.socket.subscribe(order.order_id);
  },

  // POST /api/v1/payment/wxpay/create, then wx.requestPayment with exactly the fields it returns.
  // A repeat (继续支付) reuses the prepay id.
  async pay() {
    const p = await app.call({ method: "POST", path: "/api/v1/payment/wxpay/create", data: { order_id: this.data.order.order_id } });
    this.setData({ phase: "paying" });
    wx.requestPayment({
      timeStamp: p.timeStamp,
      nonceStr: p.nonceStr,
      package: p.package,
      signType: p.signType,
      paySign: p.paySign,
      // Paid in WeChat; the order turns paid when WeChat Pay's notification reaches the service,
      // and the socket says so.
      success: () => this.setData({ phase: "processing", statusText: "支付处理中，请稍候…" }),
      // "requestPayment:fail cancel" is the parent closing the sheet; anything else is a failed payment.
      // Either way the order is closed now so the seat is free at once.
      fail: ({ errMsg }) => this.cancel(/cancel/.test(errMsg || "") ? "user_cancelled" : "payment_failed"),
    });
  },

  onResume() {
    this.pay().catch((e) => this.fail(e));
  },

  onCancelOrder() {
    this.cancel("user_cancelled");
  },

  // POST …/cancel: the service closes the WeChat Pay order first; if WeChat says it was paid, it is paid.
  // The outcome is shown when the socket reports it.
  cancel(reason) {
    this.setData({ phase: "processing", statusText: "处理中…" });
    return app.call({ method: "POST", path: `/api/v1/payment/orders/${this.data.order.order_id}/cancel`, data: { reason } })
      .catch((e) => {
        this.setData({ phase: "", statusText: STATUS_TEXT[this.data.status] || "" });
        this.fail(e);
      });
  },

  onStatus(frame) {
    if (!this.data.order || frame.order_id !== this.data.order.order_id) return;
    if (frame.status === "pending" && this.data.phase) {
      this.setData({ status: "pending" });  // still paying: keep "支付处理中" until the outcome
      return;
    }
    this.setData({ status: frame.status, statusText: STATUS_TEXT[frame.status] || frame.status, phase: "" });
    if (frame.status !== "pending") this.loadSchedule();  // seats left changed
  },

  onBackToList() {
    wx.navigateBack();
  },

  onRetry() {
    this.setData({ order: null, status: "", statusText: "", phase: "" });
  },

  fail(e) {
    wx.showModal({ title: "提示", content: e.message || "请求失败", showCancel: false });
  },
});
