"""Reading a /metrics answer in tests: the Prometheus text format, parsed here rather than by prometheus_client
(importing it before telemetry.metrics has chosen the multiprocess directory would put the test process's own
metrics, those of the in-process service, in single-process mode)."""
from __future__ import annotations

import re

_SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text) -> dict:
    """{(sample name, frozenset of labels): value} of a /metrics answer."""
    found = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            name, labels, number = match.groups()
            found[(name, frozenset(_LABEL.findall(labels or "")))] = float(number)
    return found


def value(found, name, **labels):
    """The sample `name` with exactly these labels (KeyError when it is not exported)."""
    return found[(name, frozenset(labels.items()))]
