"""WeChat Pay v3 bills: GET /v3/bill/tradebill and /v3/bill/fundflowbill (signed, like every v3 answer) and
GET /v3/billdownload/file, the download_url they hand out (the merchant signs the request; the file comes back unsigned)."""
import gzip
import hashlib
import re

from .pay import PayHandler

HOST = re.compile(r"^(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")


class TradeBillHandler(PayHandler):
    """GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL|SUCCESS|REFUND&tar_type=GZIP."""

    def get(self):
        arg = self.get_query_argument
        self.answer(200, self.sandbox.bills.trade_bill(arg("bill_date", None), arg("bill_type", None) or "ALL",
                                                       arg("tar_type", None) or None, self.base_url()))

    def base_url(self):
        """The sandbox as this client reached it (its Host header), so that the SDK knows download_url for its
        own gateway; a Host that is not a plain host[:port] falls back to the address the sandbox listens on."""
        host = self.request.host or ""
        return f"http://{host}" if HOST.match(host) else self.sandbox.url


class FundFlowBillHandler(TradeBillHandler):
    """GET /v3/bill/fundflowbill?bill_date=YYYY-MM-DD&account_type=BASIC|OPERATION|FEES&tar_type=GZIP."""

    def get(self):
        arg = self.get_query_argument
        self.answer(200, self.sandbox.bills.fund_flow_bill(arg("bill_date", None), arg("account_type", None) or "BASIC",
                                                           arg("tar_type", None) or None, self.base_url()))


class BillDownloadHandler(PayHandler):
    """GET /v3/billdownload/file?token=...: the bill file (gzip when asked), no Wechatpay-* headers."""

    signs_answers = False

    def get(self):
        data, tar_type = self.sandbox.bills.download(self.get_query_argument("token", None))
        self.answer_handled_fault()
        body = gzip.compress(data, mtime=0) if tar_type == "GZIP" else data
        self.answer_body = {"file_bytes": len(body), "tar_type": tar_type,
                            "sha1_unzipped": hashlib.sha1(data).hexdigest()}
        self.set_header("Request-ID", self.request_id)
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(body)
