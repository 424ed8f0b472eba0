// 百适体操馆体验课预约: the reference mini-program client of the payment service.
const { request, send, retrying } = require("./utils/api");

// wx.login as a promise: a one-use code for POST /api/v1/auth/login.
function wxLogin() {
  return new Promise((resolve, reject) => {
    wx.login({
      success: ({ code }) => resolve(code),
      fail: ({ errMsg } = {}) => reject(Object.assign(new Error("微信登录失败，请稍后重试"), { errMsg })),
    });
  });
}

App({
  globalData: { token: null, user: null },

  // Logged in at launch so the token is ready by the first tap; a failure here is tried again at that tap.
  onLaunch() {
    this.login().catch(() => {});
  },

  // wx.login gives a one-use code; POST /api/v1/auth/login exchanges it (at jscode2session) for our token. One
  // login at a time; each attempt takes a fresh code, since a 503 may come after the code was spent.
  login(onQueued) {
    if (!this.loggingIn) {
      this.loggingIn = retrying(() => wxLogin().then((code) => send({ method: "POST", path: "/api/v1/auth/login", data: { code } })), onQueued)
        .then((session) => {
          this.globalData.token = session.token;
          this.globalData.user = session.user;
          return session.token;
        });
      const done = () => { this.loggingIn = null; };
      this.loggingIn.then(done, done);
    }
    return this.loggingIn;
  },

  token(onQueued) {
    return this.globalData.token ? Promise.resolve(this.globalData.token) : this.login(onQueued);
  },

  // An authenticated API call; an expired token (401) logs in again once and repeats the call.
  async call(options) {
    try {
      return await request(Object.assign({}, options, { token: await this.token(options.onQueued) }));
    } catch (e) {
      if (e.statusCode !== 401) throw e;
      this.globalData.token = null;
      return request(Object.assign({}, options, { token: await this.login(options.onQueued) }));
    }
  },
});
