// Where the payment service is, and the subscribe-message template of the 预约成功 notice.
module.exports = {
  // Production: an HTTPS/WSS domain listed under 服务器域名 in the mini-program admin console.
  // Development: the local service (`make run`), with 不校验合法域名 ticked in the developer tools.
  apiBase: "http://127.0.0.1:8000",
  wsBase: "ws://127.0.0.1:8000",
  // The same id as the service's WECHAT_SUBSCRIBE_TEMPLATE_ID: the service sends 预约成功 with it once paid.
  subscribeTemplateId: "TRIAL_BOOKED_TEMPLATE",
  // WECHAT_WAITLIST_TEMPLATE_ID: 候补成功, asked for in the 加入候补 tap.
  waitlistTemplateId: "WAITLIST_OFFER_TEMPLATE",
};
