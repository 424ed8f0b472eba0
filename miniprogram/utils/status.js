// An order's status as the parent reads it, and which of two reports of it is the newer.
const STATUS_TEXT = {
  pending: "订单待支付",
  paid: "预约成功",
  failed: "支付失败，请重试",
  cancelled: "支付已取消",
  expired: "订单已过期",
  refund_required: "支付成功，但名额已满，工作人员将为您退款",
  refunded: "订单已退款",
};

const PROCESSING_TEXT = "支付处理中，请稍候…";

// An order's story in the parent's list: how it ended (or stands), with the money where money moved.
function story(order) {
  const yuan = (fen) => (fen / 100).toFixed(2);
  switch (order.status) {
    case "paid": return `预约成功 · 已支付 ${order.amount} 元${order.refunded_fen > 0 ? ` · 已退款 ${yuan(order.refunded_fen)} 元` : ""}`;
    case "refunded": return `已退款 ${yuan(order.refunded_fen)} 元`;
    case "refund_required": return STATUS_TEXT.refund_required;
    case "cancelled": return "已取消";
    case "failed": return "支付失败";
    case "expired": return "已过期 · 未支付，名额已释放";
    case "pending": return "待支付";
    default: return order.status;
  }
}

// Whether a report ({status, at}) replaces the one shown. Frames can cross: a subscription's first frame (read
// from the database) may leave after a push of a later change. No order ever goes back to pending, and a report
// older than the one shown is stale; `at` has whole seconds, so an equal time is taken as the later word.
function supersedes(report, shown) {
  if (!shown || !shown.status) return true;
  if (report.status === "pending" && shown.status !== "pending") return false;
  return !(Date.parse(report.at) < Date.parse(shown.at));
}

module.exports = { STATUS_TEXT, PROCESSING_TEXT, supersedes, story };
