// The page suite: every spec renders the mini-program's own pages (miniprogram/) with miniprogram-simulate in jsdom,
// under a stand-in for WeChat (platform/fake-wx.js) answering as the service would (platform/fake-service.js).
// The parents' phones are in China: the pages' dates are read in Asia/Shanghai, whatever this machine's zone (set
// here, before jest starts its workers, which inherit it).
process.env.TZ = "Asia/Shanghai";

module.exports = {
  testEnvironment: "jsdom",
  testMatch: ["<rootDir>/specs/**/*.test.js"],
  testTimeout: 20000,
};
