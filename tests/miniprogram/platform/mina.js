// The mini-program framework's part, played for the specs: App() and getApp(), app.js run at launch, and pages
// opened as WeChat opens them (onLoad with the query, then onShow), each page the real miniprogram/pages/* files
// rendered by miniprogram-simulate. A fresh module registry per boot: every spec starts a new app.
const path = require("path");
// Node's own, which neither jsdom's globals nor jest's fake timers replace: a real turn of the event loop.
const { setImmediate: nextTurn } = require("timers");

const MINIPROGRAM = path.resolve(__dirname, "..", "..", "..", "miniprogram");

// Starts the mini-program with `wx` as its platform; `config` overrides miniprogram/config.js as a build for
// another environment would. Returns {app, config, open(route, query)}.
// miniprogram-simulate itself is loaded once per spec file (it is the slow part): the registry reset below still
// gives each boot fresh copies of the app's and the pages' modules, which simulate requires anew.
let simulate = null;

function boot({ wx, platform, config = {} }) {
  jest.resetModules();
  simulate = simulate || require("miniprogram-simulate");
  global.wx = wx;  // after simulate, which fills in a wx of its own when it loads
  let app = null;
  global.App = (definition) => { app = definition; };
  global.getApp = () => app;
  const settings = require(path.join(MINIPROGRAM, "config"));
  Object.assign(settings, config);
  require(path.join(MINIPROGRAM, "app"));
  if (app.onLaunch) app.onLaunch({ path: "pages/schedules/schedules", query: {} });

  // A page's file runs once per app, as in WeChat; each open of it is a new instance of that definition.
  const loaded = new Map();

  function open(route, query = {}) {
    if (!loaded.has(route)) loaded.set(route, simulate.load(path.join(MINIPROGRAM, route), { rootPath: MINIPROGRAM }));
    const comp = simulate.render(loaded.get(route));
    comp.attach(document.createElement("page-root"));
    // WeChat's "user gesture" of a tap, as fake-wx keeps it: capture phase, so before the page's handler runs.
    if (platform) comp.addEventListener("tap", () => platform.tapStarted(), true);
    const page = new PageDriver(comp);
    if (comp.instance.onLoad) comp.instance.onLoad(query);
    page.show();
    return page;
  }

  return { app, config: settings, open };
}

class PageDriver {
  constructor(comp) {
    this.comp = comp;
  }

  get data() {
    return this.comp.data;
  }

  get instance() {
    return this.comp.instance;
  }

  // What the parent sees: the rendered text, whitespace folded.
  text() {
    return this.comp.dom.textContent.replace(/\s+/g, " ").trim();
  }

  has(selector) {
    return Boolean(this.comp.querySelector(selector));
  }

  // The text of every element `selector` matches, in page order.
  texts(selector) {
    return this.comp.querySelectorAll(selector).map((node) => node.dom.textContent.replace(/\s+/g, " ").trim());
  }

  label(selector) {
    const node = this.comp.querySelector(selector);
    return node ? node.dom.textContent.trim() : null;
  }

  // A tap on the element, as the parent's finger gives it; fails when the page does not show it. WeChat delivers
  // the tap a moment later: the promise resolves once it has been handled.
  tap(selector, index = 0) {
    const node = this.comp.querySelectorAll(selector)[index];
    if (!node) throw new Error(`nothing to tap at ${selector}[${index}]; the page shows: ${this.text()}`);
    node.dispatchEvent("tap");
    return turn();
  }

  show() {
    if (this.instance.onShow) this.instance.onShow();
  }

  unload() {
    if (this.instance.onUnload) this.instance.onUnload();
    this.comp.detach();
  }

  // Waits, turn by turn of the event loop (never by the clock), until the page shows `text`.
  async shows(text) {
    await until(() => this.text().includes(text), () => `the page to show ${text}; it shows: ${this.text()}`);
  }
}

const turn = () => new Promise((resolve) => nextTurn(resolve));

// Polls predicate() once per event-loop turn; fails after `turns` of them. Nothing here waits on the clock, so
// the same loop serves specs on jest's fake timers.
async function until(predicate, what, turns = 2000) {
  for (let i = 0; i < turns; i += 1) {
    const value = predicate();
    if (value) return value;
    await turn();
  }
  throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
}

// Lets every callback already due run (the page's answers, its socket frames).
async function settle(turns = 20) {
  for (let i = 0; i < turns; i += 1) await turn();
}

module.exports = { boot, until, settle, MINIPROGRAM };
