"""Subscribe messages to parents (预约成功, 退款通知, 候补成功, 课程改期, 支付失败, 订单已过期): queued with the change, sent
and retried after."""
