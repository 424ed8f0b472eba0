// One mini-program on one phone against one fake service: what every page spec starts from.
const { FakeService } = require("./fake-service");
const { createWx } = require("./fake-wx");
const { boot } = require("./mina");

function launch(serviceOptions) {
  const service = new FakeService(serviceOptions);
  const { wx, platform } = createWx(service);
  const mp = boot({ wx, platform });
  return { service, wx, platform, mp };
}

module.exports = { launch };
