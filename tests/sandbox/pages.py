"""Helpers of the page tests: fetch a sandbox page, find its forms, submit one the way a browser would."""
from __future__ import annotations

from html.parser import HTMLParser

import httpx


class _Forms(HTMLParser):
    """Every <form>: its action, method, input fields and button label."""

    def __init__(self):
        super().__init__()
        self.forms, self._form, self._in_button = [], None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._form = {"action": attrs.get("action"), "method": attrs.get("method", "get"), "fields": {},
                          "label": ""}
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and attrs.get("name"):
            self._form["fields"][attrs["name"]] = attrs.get("value", "")
        elif tag == "button" and self._form is not None:
            self._in_button = True

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "button":
            self._in_button = False

    def handle_data(self, data):
        if self._in_button:
            self._form["label"] += data.strip()


def page(sandbox, path):
    """GET a sandbox page; returns the httpx response."""
    return httpx.get(sandbox.url + path, timeout=10)


def forms(html):
    """The forms of an HTML page."""
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form(html, action_suffix, label=None):
    """The one form whose action ends with `action_suffix` (and whose button says `label`, when given)."""
    found = [f for f in forms(html) if f["action"].endswith(action_suffix) and (label is None or f["label"] == label)]
    assert len(found) == 1, f"{len(found)} forms posting to …{action_suffix} {label or ''}"
    return found[0]


def submit(sandbox, chosen):
    """Post a form like a browser (urlencoded fields), without following the redirect."""
    assert chosen["method"].lower() == "post"
    return httpx.post(sandbox.url + chosen["action"], data=chosen["fields"], timeout=10, follow_redirects=False)
