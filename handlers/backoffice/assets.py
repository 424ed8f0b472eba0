"""The back office's own stylesheet and htmx (installed by scripts/bootstrap.sh; the pages work without it)."""
from __future__ import annotations

import os

import tornado.web

from telemetry.context import request_id_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CSS_DIR = os.path.join(ROOT, "static", "backoffice")
HTMX_DIR = os.path.join(ROOT, "static", "vendor", "node_modules", "htmx.org", "dist")
HTMX_FILE = "htmx.min.js"


def htmx_available() -> bool:
    """True when the npm step put htmx in place; without it the pages are plain links and forms."""
    return os.path.isfile(os.path.join(HTMX_DIR, HTMX_FILE))


class AssetHandler(tornado.web.StaticFileHandler):
    """One of the two files, revalidated by ETag on every use (a deploy shows at once)."""

    def initialize(self, path, ctx=None, route=None):
        super().initialize(path)
        self.route_name = route  # the metrics' `route` label

    def set_extra_headers(self, path):
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Request-ID", request_id_for(self.request.headers.get("X-Request-ID")))


def asset_routes(c) -> list:
    """Exactly the two files; nothing else of node_modules is reachable."""
    return [
        (r"/admin/static/(backoffice\.css)", AssetHandler, {**c, "path": CSS_DIR}),
        (r"/admin/static/(htmx\.min\.js)", AssetHandler, {**c, "path": HTMX_DIR}),
    ]
