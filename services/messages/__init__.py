"""Subscribe messages to parents (预约成功, 退款通知): queued with the change, sent and retried after."""
