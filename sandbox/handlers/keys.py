"""The control API's key changes: GET /sandbox/keys, POST /sandbox/keys/{kind}, a merchant certificate's revocation."""
from .. import key_changes
from .base import ControlHandler


class KeysHandler(ControlHandler):
    """GET /sandbox/keys: every key generation (ids, serials, files; never a key)."""

    def get(self):
        self.reply(key_changes.view(self.sandbox.creds))


class KeyChangeHandler(ControlHandler):
    """POST /sandbox/keys/{apiv3-key|public-key|platform-certificate|merchant-certificate} (apiv3-key: {"apiv3_key"?})."""

    def post(self, kind):
        self.reply(key_changes.change(self.sandbox.creds, self.sandbox.url, kind, self.json_body()))


class MerchantRevokeHandler(ControlHandler):
    """POST /sandbox/keys/merchant-certificate/{serial_no}/revoke."""

    def post(self, serial):
        self.reply(key_changes.revoke(self.sandbox.creds, self.sandbox.url, serial))
