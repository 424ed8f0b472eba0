// Display helpers (the mini-program runtime has no reliable toLocaleString).
const WEEKDAYS = ["日", "一", "二", "三", "四", "五", "六"];
const pad = (n) => (n < 10 ? `0${n}` : `${n}`);

function when(iso) {
  const d = new Date(iso);
  return `${d.getMonth() + 1}月${d.getDate()}日 周${WEEKDAYS[d.getDay()]} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// 20000 fen → "200", as the seeds word the fixed price: 金额固定为200元.
function wholeYuan(fen) {
  return fen % 100 === 0 ? String(fen / 100) : (fen / 100).toFixed(2);
}

module.exports = { when, wholeYuan };
