// A stand-in for WeChat's `wx` (the platform the pages run on, not code of ours), one per spec: wx.request and
// wx.connectSocket reach platform/fake-service.js; wx.login hands out one-use codes; wx.requestPayment opens a
// "sheet" the spec settles (paid, closed, failed); wx.requestSubscribeMessage is refused, as WeChat refuses it,
// unless it runs synchronously inside a tap, and when it names more than three templates. Everything the pages asked for is recorded on `platform`.
const API_BASE = "http://127.0.0.1:8000";
const WS_BASE = "ws://127.0.0.1:8000";

// WeChat answers its callbacks later, never inside the call.
const later = (fn) => Promise.resolve().then(fn);

class SocketTask {
  constructor(url, service) {
    Object.assign(this, { url, service, sent: [], subscriptions: new Set(), state: "connecting" });
    this.handlers = { open: [], message: [], close: [], error: [] };
    later(() => service.accept(this));
  }

  onOpen(cb) { this.handlers.open.push(cb); }
  onMessage(cb) { this.handlers.message.push(cb); }
  onClose(cb) { this.handlers.close.push(cb); }
  onError(cb) { this.handlers.error.push(cb); }

  // As WeChat does, a send on a socket that is no longer open goes nowhere and says so to `fail` only.
  send({ data, fail }) {
    if (this.state !== "open") {
      if (fail) later(() => fail({ errMsg: "sendSocketMessage:fail" }));
      return;
    }
    const message = JSON.parse(data);
    this.sent.push(message);
    later(() => this.service.received(this, message));
  }

  close({ code = 1000, reason = "" } = {}) {
    this.closedByPage = true;
    this.serverClose(code, reason);
  }

  // The service's side.
  isOpen() { return this.state === "open"; }
  follows(orderId) { return this.isOpen() && this.subscriptions.has(orderId); }

  serverOpen() {
    this.state = "open";
    this.emit("open", {});
  }

  push(frame) {
    if (this.state === "open") this.emit("message", { data: JSON.stringify(frame) });
  }

  serverClose(code, reason) {
    if (this.state === "closed") return;
    this.state = "closed";
    this.emit("close", { code, reason });
  }

  // The connection could not be made: onError, then onClose, as WeChat reports a refused socket.
  serverFail() {
    this.state = "closed";
    this.emit("error", { errMsg: "connectSocket:fail" });
    this.emit("close", { code: 1006, reason: "" });
  }

  emit(kind, event) {
    later(() => this.handlers[kind].forEach((cb) => cb(event)));
  }
}

function createWx(service) {
  const platform = {
    gesture: false,
    codes: [],
    payments: [],       // each wx.requestPayment: {params, pay(), cancel(), fail(errMsg)}
    subscribeRequests: [],  // each wx.requestSubscribeMessage: {tmplIds, inTap}
    subscribeAnswer: "accept",
    navigations: [],
    offline: false,
    refreshStops: 0,
    // Called by platform/mina.js when a tap starts on a page: WeChat's "user gesture" lasts for the handler's
    // synchronous run, i.e. until the microtasks queued after it.
    tapStarted() {
      platform.gesture = true;
      Promise.resolve().then(() => { platform.gesture = false; });
    },
  };

  const wx = {
    login({ success, fail }) {
      later(() => {
        if (platform.offline) return fail({ errMsg: "login:fail" });
        const code = `code-${platform.codes.length + 1}`;
        platform.codes.push(code);
        return success({ code, errMsg: "login:ok" });
      });
    },

    request({ url, method = "GET", data, header = {}, success, fail }) {
      if (!url.startsWith(`${API_BASE}/`)) throw new Error(`wx.request to a domain not listed: ${url}`);
      const copy = data === undefined ? undefined : JSON.parse(JSON.stringify(data));
      later(() => {
        if (platform.offline) return fail({ errMsg: "request:fail" });
        return success(Object.assign({ errMsg: "request:ok" }, service.handle({ method, path: url.slice(API_BASE.length), data: copy, header: Object.assign({}, header) })));
      });
      return { abort() {} };
    },

    connectSocket({ url }) {
      if (!url.startsWith(`${WS_BASE}/`)) throw new Error(`wx.connectSocket to a domain not listed: ${url}`);
      return new SocketTask(url, service);
    },

    requestPayment(params) {
      const { success, fail, complete } = params;
      const end = (cb, res) => { if (cb) cb(res); if (complete) complete(res); };
      const sheet = {
        params: fieldsOf(params),
        settled: false,
        pay() { sheet.settle(() => end(success, { errMsg: "requestPayment:ok" })); },
        cancel() { sheet.settle(() => end(fail, { errMsg: "requestPayment:fail cancel" })); },
        fail(errMsg = "requestPayment:fail") { sheet.settle(() => end(fail, { errMsg })); },
        settle(fn) {
          if (sheet.settled) throw new Error("the WeChat Pay sheet was settled twice");
          sheet.settled = true;
          later(fn);
        },
      };
      platform.payments.push(sheet);
    },

    requestSubscribeMessage({ tmplIds, success, fail, complete }) {
      const inTap = platform.gesture;
      platform.subscribeRequests.push({ tmplIds, inTap });
      later(() => {
        const refusal = !inTap ? { errMsg: "requestSubscribeMessage:fail can only be invoked by user TAP gesture.", errCode: 20004 }
          : tmplIds.length > 3 ? { errMsg: "requestSubscribeMessage:fail Templates count out of max bounds", errCode: 20003 }
            : null;
        if (refusal) {
          if (fail) fail(refusal);
          if (complete) complete(refusal);
          return;
        }
        const res = { errMsg: "requestSubscribeMessage:ok" };
        tmplIds.forEach((id) => { res[id] = platform.subscribeAnswer; });
        if (success) success(res);
        if (complete) complete(res);
      });
    },

    navigateTo({ url }) {
      platform.navigations.push(url);
    },

    navigateBack() {
      platform.navigations.push("back");
    },

    stopPullDownRefresh() {
      platform.refreshStops += 1;
    },
  };

  return { wx, platform };
}

// What the page passed, less its callbacks.
function fieldsOf(obj) {
  const out = {};
  Object.keys(obj).filter((k) => typeof obj[k] !== "function").forEach((k) => { out[k] = obj[k]; });
  return out;
}

module.exports = { createWx, SocketTask, API_BASE, WS_BASE };
