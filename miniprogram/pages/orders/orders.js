// 我的订单: each order's story (paid, refunded with the amount, cancelled, failed, expired), newest first, and the
// parent's places on waitlists. A pending order opens its session's page to pay or cancel it.
// Built with Component, as WeChat allows for a page, so that miniprogram-simulate renders it in the tests.
const { when } = require("../../utils/format");
const { story } = require("../../utils/status");

const app = getApp();
const IN_LINE = { waiting: "候补中", offered: "有名额了，请尽快预约" };

Component({
  data: { orders: [], entries: [], loading: true, notice: "" },

  methods: {
    onShow() {
      this.load();
    },

    onPullDownRefresh() {
      this.load().then(() => wx.stopPullDownRefresh());
    },

    async load() {
      try {
        const [{ items: orders }, { items: entries }, { items: sessions }] = await Promise.all([
          app.call({ path: "/api/v1/payment/orders" }),
          app.call({ path: "/api/v1/waitlist" }),
          app.call({ path: "/api/v1/courses/schedules" }),
        ]);
        const byId = new Map(sessions.map((s) => [s.id, s]));
        const title = (id) => (byId.has(id) ? byId.get(id).title : `课程 ${id}`);
        const at = (id) => (byId.has(id) ? when(byId.get(id).starts_at) : "");
        this.setData({
          orders: orders.map((o) => ({
            order_id: o.order_id, status: o.status, schedule_id: o.course_schedule_id, title: title(o.course_schedule_id),
            when: at(o.course_schedule_id), story: story(o), created: when(o.created_at),
          })),
          entries: entries.filter((e) => IN_LINE[e.status]).map((e) => ({
            id: e.id, status: e.status, schedule_id: e.course_schedule_id, title: title(e.course_schedule_id),
            text: e.status === "waiting" ? `候补第 ${e.position} 位` : IN_LINE.offered,
          })),
          notice: "",
        });
      } catch (e) {
        this.setData({ notice: e.message || "请求失败" });
      }
      this.setData({ loading: false });
    },

    onOpen(e) {
      wx.navigateTo({ url: `/pages/order/order?scheduleId=${e.currentTarget.dataset.scheduleId}` });
    },
  },
});
