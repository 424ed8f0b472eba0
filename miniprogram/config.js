// Where the payment service is, and the subscribe-message templates of the notices the parent may get.
module.exports = {
  // Production: an HTTPS/WSS domain listed under 服务器域名 in the mini-program admin console.
  // Development: the local service (`make run`), with 不校验合法域名 ticked in the developer tools.
  apiBase: "http://127.0.0.1:8000",
  wsBase: "ws://127.0.0.1:8000",
  // The same id as the service's WECHAT_SUBSCRIBE_TEMPLATE_ID: the service sends 预约成功 with it once paid.
  subscribeTemplateId: "TRIAL_BOOKED_TEMPLATE",
  // WECHAT_PAYMENT_FAILED_TEMPLATE_ID and WECHAT_ORDER_EXPIRED_TEMPLATE_ID: 支付失败 and 订单已过期, the two ways an
  // order ends unpaid without the parent's own cancel; asked for with 预约成功 in the 确认支付 / 继续支付 tap.
  paymentFailedTemplateId: "PAYMENT_FAILED_TEMPLATE",
  orderExpiredTemplateId: "ORDER_EXPIRED_TEMPLATE",
  // WECHAT_WAITLIST_TEMPLATE_ID: 候补成功, asked for in the 加入候补 tap.
  waitlistTemplateId: "WAITLIST_OFFER_TEMPLATE",
};
