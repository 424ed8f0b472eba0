// 百适体操馆体验课预约: the reference mini-program client of the payment service.
const { request } = require("./utils/api");

App({
  globalData: { token: null, user: null },

  // wx.login gives a one-use code; POST /api/v1/auth/login exchanges it (at jscode2session) for our token.
  login() {
    if (!this.loggingIn) {
      this.loggingIn = new Promise((resolve, reject) => {
        wx.login({
          success: ({ code }) => request({ method: "POST", path: "/api/v1/auth/login", data: { code } })
            .then((session) => {
              this.globalData.token = session.token;
              this.globalData.user = session.user;
              resolve(session.token);
            }, reject),
          fail: reject,
        });
      });
      const done = () => { this.loggingIn = null; };
      this.loggingIn.then(done, done);
    }
    return this.loggingIn;
  },

  token() {
    return this.globalData.token ? Promise.resolve(this.globalData.token) : this.login();
  },

  // An authenticated API call; an expired token (401) logs in again once and repeats the call.
  async call(options) {
    try {
      return await request(Object.assign({}, options, { token: await this.token() }));
    } catch (e) {
      if (e.statusCode !== 401) throw e;
      return request(Object.assign({}, options, { token: await this.login() }));
    }
  },
});
