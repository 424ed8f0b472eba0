// The class sessions (GET /api/v1/courses/schedules, no token needed), each with its price and seats left.
// Built with Component, as WeChat allows for a page, so that miniprogram-simulate renders it in the tests.
const { request } = require("../../utils/api");
const { when } = require("../../utils/format");

Component({
  data: { items: [], loading: true, error: "", queued: false },

  methods: {
    onShow() {
      this.load();
    },

    onPullDownRefresh() {
      this.load().then(() => wx.stopPullDownRefresh());
    },

    async load() {
      try {
        const { items } = await request({ path: "/api/v1/courses/schedules", onQueued: () => this.setData({ queued: true }) });
        this.setData({ items: items.map((s) => Object.assign({}, s, { when: when(s.starts_at) })), error: "" });
      } catch (e) {
        this.setData({ error: e.message });
      }
      this.setData({ loading: false, queued: false });
    },

    // A session with seats opens its booking; a full one too, to join its waitlist (加入候补).
    onPick(e) {
      const { id } = e.currentTarget.dataset;
      wx.navigateTo({ url: `/pages/order/order?scheduleId=${id}` });
    },

    onMyOrders() {
      wx.navigateTo({ url: "/pages/orders/orders" });
    },
  },
});
