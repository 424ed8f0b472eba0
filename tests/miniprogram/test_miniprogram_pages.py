"""The mini-program's page suite (tests/miniprogram/specs, jest + miniprogram-simulate) inside `make test`: jest runs
once for the whole suite, and each spec file is one test here, failing with jest's own report of it."""
from __future__ import annotations

import glob
import json
import os
import subprocess

import pytest

from tests.harness import VAR
from tests.miniprogram.jest_run import MINIPROGRAM_TESTS, jest_command

SPECS = sorted(os.path.relpath(p, MINIPROGRAM_TESTS) for p in glob.glob(os.path.join(MINIPROGRAM_TESTS, "specs", "*.test.js")))


@pytest.fixture(scope="module")
def jest_report(jest_dir):
    """One jest run of every spec; its JSON report (per file, per test) and its printed output."""
    os.makedirs(os.path.join(VAR, "test"), exist_ok=True)
    report = os.path.join(VAR, "test", "miniprogram-jest.json")
    if os.path.exists(report):
        os.remove(report)
    done = subprocess.run(jest_command("--json", f"--outputFile={report}"), cwd=jest_dir, capture_output=True,
                          text=True, timeout=900)
    assert os.path.exists(report), f"jest wrote no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    with open(report, encoding="utf-8") as fh:
        results = json.load(fh)
    return {"results": results, "exit": done.returncode, "output": done.stderr}


def test_jest_found_every_spec(jest_report):
    ran = sorted(os.path.relpath(r["name"], MINIPROGRAM_TESTS) for r in jest_report["results"]["testResults"])
    assert SPECS and ran == SPECS, jest_report["output"]
    assert jest_report["results"]["numTotalTests"] > 0


@pytest.mark.parametrize("spec", SPECS)
def test_spec(jest_report, spec):
    [result] = [r for r in jest_report["results"]["testResults"]
                if os.path.relpath(r["name"], MINIPROGRAM_TESTS) == spec]
    failed = [a for a in result["assertionResults"] if a["status"] != "passed"]
    assert result["assertionResults"] and result["status"] == "passed" and not failed, (
        f"{spec}: {len(failed)} of {len(result['assertionResults'])} failed\n"
        + "\n".join(f"- {a['fullName']}: {a['status']}" for a in failed)
        + f"\n\n{result.get('message') or ''}\n\njest's output:\n{jest_report['output'][-20000:]}")
