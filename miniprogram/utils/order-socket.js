// Live order status: wx.connectSocket to /ws/orders?token=…, {"op": "subscribe"} per order, and
// {"type": "order.status"} frames back. The first frame after each subscribe is the order as it stands, so
// after any onClose (network change, the app sent to the background by the WeChat Pay sheet) the client
// reconnects, subscribes again and misses nothing. Never polls.
const config = require("../config");

const CLOSE_UNAUTHENTICATED = 4401;
// The user opened a sixth socket on the same server process and this, the oldest, was closed for it: reconnecting
// at once would close the next oldest, and so on round the pages. It reconnects when its page is shown again.
const CLOSE_REPLACED = 4429;

class OrderSocket {
  // getToken: () => Promise<token>; onStatus(frame); onError(frame); relogin: () => Promise<token> on 4401.
  constructor({ getToken, relogin, onStatus, onError }) {
    Object.assign(this, { getToken, relogin, onStatus, onError });
    this.orders = new Set();
    this.task = null;
    this.open = false;
    this.retries = 0;
    this.timer = null;
    this.stopped = false;
  }

  subscribe(orderId) {
    this.orders.add(orderId);
    if (this.open) this.send({ op: "subscribe", order_id: orderId });
    else this.connect();
  }

  // Stop following an order the page no longer shows (a socket holds at most 20 subscriptions).
  unsubscribe(orderId) {
    if (!this.orders.delete(orderId)) return;
    if (this.open) this.send({ op: "unsubscribe", order_id: orderId });
  }

  async connect() {
    if (this.task || this.stopped || this.connecting) return;
    clearTimeout(this.timer);
    this.connecting = true;
    try {
      await this.openSocket();
    } finally {
      this.connecting = false;
    }
  }

  async openSocket() {
    let token;
    try {
      token = await this.getToken();
    } catch (e) {
      this.retryLater();
      return;
    }
    if (this.task || this.stopped) return;
    const task = wx.connectSocket({ url: `${config.wsBase}/ws/orders?token=${encodeURIComponent(token)}` });
    this.task = task;
    task.onOpen(() => {
      this.open = true;
      this.orders.forEach((id) => this.send({ op: "subscribe", order_id: id }));
    });
    task.onMessage(({ data }) => {
      let frame;
      try {
        frame = JSON.parse(data);
      } catch (e) {
        return;  // not a frame of the contract's; the next status frame or the next snapshot tells the state
      }
      // The back-off starts afresh only once the socket has carried a frame: a socket that opens and is closed
      // at once (4401 again and again) keeps backing off.
      this.retries = 0;
      if (frame && frame.type === "order.status") this.onStatus(frame);
      else if (frame && frame.type === "error") this.onError(frame);
    });
    task.onClose(({ code }) => this.dropped(task, code));
    task.onError(() => this.dropped(task));
  }

  dropped(task, code) {
    if (this.task !== task) return;  // onError and onClose may both come for one socket
    this.task = null;
    this.open = false;
    if (this.stopped) return;
    if (code === CLOSE_UNAUTHENTICATED) {
      this.relogin().then(() => this.retryLater(), () => this.retryLater());
      return;
    }
    if (code === CLOSE_REPLACED) return;
    this.retryLater();
  }

  retryLater() {
    // 0.5 s, 1 s, 2 s … at most 5 s between attempts.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), Math.min(5000, 500 * 2 ** this.retries++));
  }

  send(message) {
    this.task.send({ data: JSON.stringify(message) });
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.task) this.task.close({ code: 1000 });
    this.task = null;
    this.open = false;
  }
}

module.exports = { OrderSocket };
