"""A record of every API request the sandbox answered, with secrets masked."""
import collections
import re

MASKED_KEYS = {"secret", "app_secret", "appsecret", "access_token", "session_key", "apiv3_key"}
_QUERY_SECRET = re.compile(r"((?:^|[?&])(?:secret|access_token|appsecret|js_code|token)=)[^&]*", re.IGNORECASE)
MAX_ENTRIES = 5000


def mask(value):
    """A copy of a JSON value with secret-bearing keys replaced by '***'."""
    if isinstance(value, dict):
        return {k: "***" if k.lower() in MASKED_KEYS else mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def mask_uri(uri):
    """The request URI with secret query parameters replaced by '***'."""
    return _QUERY_SECRET.sub(r"\1***", uri)


class RequestLog:
    """The last MAX_ENTRIES requests, oldest first."""

    def __init__(self):
        self.entries = collections.deque(maxlen=MAX_ENTRIES)
        self._counter = 0

    def add(self, entry):
        """Record one answered request (a dict), masking its bodies and URI."""
        self._counter += 1
        entry = mask(dict(entry))
        entry["seq"] = self._counter
        entry["uri"] = mask_uri(entry.get("uri", ""))
        self.entries.append(entry)

    def list(self, path_prefix=None, method=None):
        """Entries, optionally only those under `path_prefix` and/or of `method`."""
        return [e for e in self.entries
                if (not path_prefix or e["path"].startswith(path_prefix))
                and (not method or e["method"] == method.upper())]
