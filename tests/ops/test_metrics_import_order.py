"""A process that imported prometheus_client before telemetry.metrics chose the multiprocess directory would keep its
metrics in memory, where /metrics never reads them: importing telemetry.metrics then fails instead."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.harness import ROOT


def _python(code, **env):
    base = {k: v for k, v in os.environ.items() if k.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True,
                          text=True, timeout=60)


def test_prometheus_client_imported_first_is_refused(tmp_path):
    refused = _python("import prometheus_client.parser\nimport telemetry.metrics")
    assert refused.returncode != 0
    assert "ImportError: prometheus_client was imported before telemetry.metrics" in refused.stderr
    # Controls: telemetry.metrics first, or the directory set before prometheus_client chose its mode.
    check = "from prometheus_client import values\nassert values.ValueClass is not values.MutexValue"
    first = _python("import telemetry.metrics\nimport prometheus_client.parser\n" + check)
    assert first.returncode == 0, first.stderr
    preset = _python("import prometheus_client.parser\nimport telemetry.metrics\n" + check,
                     PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    assert preset.returncode == 0, preset.stderr
