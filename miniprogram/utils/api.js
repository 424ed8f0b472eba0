// wx.request as a promise; a non-2xx answer rejects with the API's {"error": {"code", "message"}} as an ApiError.
// A 503 that carries Retry-After (the service too busy to admit the call now, or a dependency down: contract §2,
// "safe to retry") is sent again after the time it names, for at most QUEUE_BUDGET_MS in all; onQueued(seconds)
// is told before each wait, so the page can show 排队中.
const config = require("../config");

const QUEUE_BUDGET_MS = 30000;
const MAX_WAIT_MS = 10000;

class ApiError extends Error {
  constructor(statusCode, body, retryAfterMs = null) {
    const err = (body && body.error) || {};
    super(err.message || `请求失败（${statusCode}）`);
    this.statusCode = statusCode;
    this.code = err.code || "ERROR";
    this.body = err;
    this.retryAfterMs = retryAfterMs;
  }
}

// Retry-After in whole seconds (the service's form); an HTTP-date or garbage counts as one second, and a long
// wait is cut to MAX_WAIT_MS so the parent is never left staring at 排队中 for minutes.
function retryAfterMs(statusCode, header) {
  if (statusCode !== 503 || !header) return null;
  const name = Object.keys(header).find((k) => k.toLowerCase() === "retry-after");
  if (name === undefined) return null;
  const seconds = /^\d{1,6}$/.test(String(header[name]).trim()) ? Number(header[name]) : 1;
  return Math.min(MAX_WAIT_MS, Math.max(1000, seconds * 1000));
}

// One attempt: resolves with the body of a 2xx, rejects with an ApiError otherwise.
function send({ method = "GET", path, data, token, headers = {} }) {
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
        ? resolve(res.data)
        : reject(new ApiError(res.statusCode, res.data, retryAfterMs(res.statusCode, res.header)))),
      fail: () => reject(new ApiError(0, { error: { code: "NETWORK", message: "网络异常，请稍后重试" } })),
    });
  });
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Runs attempt() again after each retryable 503 while the budget lasts; the last refusal is the caller's.
// A little jitter keeps a crowd that was turned away together from coming back together.
function retrying(attempt, onQueued) {
  const deadline = Date.now() + QUEUE_BUDGET_MS;
  const loop = () => attempt().catch((e) => {
    if (!(e instanceof ApiError) || e.retryAfterMs === null) throw e;
    const wait = Math.round(e.retryAfterMs * (1 + Math.random() * 0.2));
    if (Date.now() + wait > deadline) throw e;
    if (onQueued) onQueued(Math.ceil(wait / 1000));
    return delay(wait).then(loop);
  });
  return loop();
}

// A call to the service; options.onQueued(seconds) hears of each 503 wait.
function request(options) {
  return retrying(() => send(options), options.onQueued);
}

// A new key for each tap on 确认支付: a retry of the same tap (a 503 sent again) gets the same order back, never a
// second one.
function idempotencyKey() {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

module.exports = { ApiError, request, send, retrying, idempotencyKey };
