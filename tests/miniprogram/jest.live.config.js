// The live run: the same pages against the real service and the WeChat sandbox (live/), started by
// tests/miniprogram/test_miniprogram_live.py, which passes their addresses in the environment.
// The parents' phones are in China: the pages' dates are read in Asia/Shanghai, whatever this machine's zone (set
// here, before jest starts its workers, which inherit it).
process.env.TZ = "Asia/Shanghai";

module.exports = {
  testEnvironment: "jsdom",
  testMatch: ["<rootDir>/live/**/*.live.js"],
  testTimeout: 60000,
};
