// wx.request as a promise; a non-2xx answer rejects with the API's {"error": {"code", "message"}}.
const config = require("../config");

class ApiError extends Error {
  constructor(statusCode, body) {
    const err = (body && body.error) || {};
    super(err.message || `请求失败（${statusCode}）`);
    this.statusCode = statusCode;
    this.code = err.code || "ERROR";
    this.body = err;
  }
}

function request({ method = "GET", path, data, token, headers = {} }) {
  const header = Object.assign({ "Content-Type": "application/json" }, headers);
  if (token) header.Authorization = `Bearer ${token}`;
  return new Promise((resolve, reject) => {
    wx.request({
      url: config.apiBase + path,
      method,
      data,
      header,
      timeout: 10000,
      success: (res) => (res.statusCode >= 200 && res.statusCode < 300
        ? resolve(res.data) : reject(new ApiError(res.statusCode, res.data))),
      fail: () => reject(new ApiError(0, { error: { code: "NETWORK", message: "网络异常，请稍后重试" } })),
    });
  });
}

// A new key for each tap on 确认支付: a retry of the same tap gets the same order back, never a second one.
function idempotencyKey() {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

module.exports = { ApiError, request, idempotencyKey };
