// WeChat's `wx` on Node, for the live run: wx.request over HTTP and wx.connectSocket over a real WebSocket to the
// running service; wx.login mints a code at the sandbox's jscode2session (POST /sandbox/wx/login), as a phone's
// WeChat would get one; wx.requestPayment is the payer's phone: it checks paySign with the merchant's key, as WeChat
// Pay does, then pays the sandbox order that the prepay id names (/sandbox/orders/{no}/pay), and only then
// answers success. Every call and every frame is recorded on `platform`.
const crypto = require("crypto");
const fs = require("fs");
const http = require("http");

function readEnv(file) {
  const env = {};
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const at = line.indexOf("=");
    if (line && !line.startsWith("#") && at > 0) env[line.slice(0, at)] = line.slice(at + 1);
  }
  return env;
}

// One HTTP exchange: {statusCode, data (JSON when it is JSON), header}.
function exchange(url, { method = "GET", data, header = {} } = {}) {
  const body = data === undefined ? undefined : Buffer.from(JSON.stringify(data));
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: Object.assign({}, header, body ? { "Content-Length": body.length } : {}), timeout: 10000 }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed = text;
        if (/json/.test(res.headers["content-type"] || "")) parsed = JSON.parse(text);
        resolve({ statusCode: res.statusCode, data: parsed, header: res.headers });
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}

function createNodeWx({ apiBase, sandbox, sandboxEnv }) {
  const merchant = readEnv(sandboxEnv);
  const merchantKey = crypto.createPublicKey(crypto.createPrivateKey(fs.readFileSync(merchant.WECHATPAY_PRIVATE_KEY_FILE)));
  const platform = {
    gesture: false,
    requests: [],        // {method, path, status}
    frames: [],          // what the service pushed
    sent: [],            // what the page sent on its sockets
    payments: [],        // each requestPayment: {params, signatureValid, outTradeNo}
    subscribeRequests: [],
    navigations: [],
    problems: [],        // anything WeChat would have refused
    openid: null,
    holdPayment: null,   // set to a function(sheet) to decide the payer's move; default: pay
    tapStarted() {
      platform.gesture = true;
      Promise.resolve().then(() => { platform.gesture = false; });
    },
  };

  const control = (method, path, data) => exchange(sandbox + path, { method, data, header: { "Content-Type": "application/json" } })
    .then((res) => {
      if (res.statusCode >= 300) throw new Error(`sandbox ${method} ${path}: ${res.statusCode} ${JSON.stringify(res.data)}`);
      return res.data;
    });

  // The payer pays the WeChat Pay order behind the prepay id; the notification then goes to the service.
  async function payerPays(sheet) {
    const { items } = await control("GET", "/sandbox/orders");
    const order = items.find((o) => `prepay_id=${o.prepay_id}` === sheet.params.package);
    if (!order) throw new Error(`no sandbox order has ${sheet.params.package}`);
    if (order.payer_openid !== platform.openid) platform.problems.push(`the prepay is for ${order.payer_openid}, not this phone's ${platform.openid}`);
    sheet.outTradeNo = order.out_trade_no;
    await control("POST", `/sandbox/orders/${order.out_trade_no}/pay`, { notify: true });
  }

  const wx = {
    login({ success, fail }) {
      control("POST", "/sandbox/wx/login", {}).then(({ code, openid }) => {
        platform.openid = platform.openid || openid;
        success({ code, errMsg: "login:ok" });
      }, () => fail({ errMsg: "login:fail" }));
    },

    request({ url, method = "GET", data, header = {}, success, fail }) {
      if (!url.startsWith(`${apiBase}/`)) throw new Error(`wx.request to a domain not listed: ${url}`);
      const path = url.slice(apiBase.length);
      exchange(url, { method, data, header }).then((res) => {
        platform.requests.push({ method, path, status: res.statusCode });
        success(Object.assign({ errMsg: "request:ok" }, res));
      }, (e) => {
        platform.requests.push({ method, path, status: 0, error: e.message });
        fail({ errMsg: `request:fail ${e.message}` });
      });
    },

    connectSocket({ url }) {
      const socket = new WebSocket(url);  // jsdom's, a real connection made with the ws package
      const task = {
        onOpen(cb) { socket.addEventListener("open", () => cb({})); },
        onMessage(cb) {
          socket.addEventListener("message", (e) => {
            platform.frames.push(JSON.parse(e.data));
            cb({ data: e.data });
          });
        },
        onClose(cb) { socket.addEventListener("close", (e) => cb({ code: e.code, reason: e.reason })); },
        onError(cb) { socket.addEventListener("error", () => cb({ errMsg: "socket error" })); },
        send({ data }) {
          platform.sent.push(JSON.parse(data));
          socket.send(data);
        },
        close({ code = 1000 } = {}) { socket.close(code); },
      };
      platform.sockets = (platform.sockets || []).concat([socket]);
      return task;
    },

    requestPayment(params) {
      const fields = ["timeStamp", "nonceStr", "package", "signType", "paySign"];
      const sheet = { params: {} };
      fields.forEach((k) => { sheet.params[k] = params[k]; });
      const message = `${merchant.WECHAT_APPID}\n${params.timeStamp}\n${params.nonceStr}\n${params.package}\n`;
      sheet.signatureValid = params.signType === "RSA"
        && crypto.verify("RSA-SHA256", Buffer.from(message), merchantKey, Buffer.from(String(params.paySign), "base64"));
      platform.payments.push(sheet);
      if (!sheet.signatureValid) {
        platform.problems.push("paySign does not verify with the merchant's key");
        params.fail({ errMsg: "requestPayment:fail 签名错误" });
        return;
      }
      const move = platform.holdPayment ? platform.holdPayment(sheet) : payerPays(sheet).then(() => "paid");
      Promise.resolve(move).then((outcome) => {
        if (outcome === "paid") params.success({ errMsg: "requestPayment:ok" });
        else if (outcome === "cancel") params.fail({ errMsg: "requestPayment:fail cancel" });
      }, (e) => {
        platform.problems.push(e.message);
        params.fail({ errMsg: `requestPayment:fail ${e.message}` });
      });
    },

    requestSubscribeMessage({ tmplIds, success, fail, complete }) {
      const inTap = platform.gesture;
      platform.subscribeRequests.push({ tmplIds, inTap });
      Promise.resolve().then(() => {
        const res = inTap ? Object.assign({ errMsg: "requestSubscribeMessage:ok" }, ...tmplIds.map((id) => ({ [id]: "accept" })))
          : { errMsg: "requestSubscribeMessage:fail can only be invoked by user TAP gesture.", errCode: 20004 };
        if (inTap && success) success(res);
        if (!inTap && fail) fail(res);
        if (complete) complete(res);
      });
    },

    navigateTo({ url }) {
      platform.navigations.push(url);
    },

    navigateBack() {
      platform.navigations.push("back");
    },

    stopPullDownRefresh() {},
  };

  return { wx, platform };
}

module.exports = { createNodeWx, exchange };
