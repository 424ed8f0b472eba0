"""Fuzzing every endpoint of docs/openapi.yaml with schemathesis against the running service.

Schemathesis generates valid and invalid requests from the document (a bounded number per operation, so the suite
stays fast); each answer must not be a 5xx, must be documented for the operation (status, content type, headers,
body schema), and no request may cost the service more than a second of CPU (read from /proc for the service
process, which runs on its own).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance,
)
from schemathesis.checks import not_a_server_error

from tests.harness import ROOT, ServiceProcess, free_port, http_json

SPEC = Path(ROOT) / "docs" / "openapi.yaml"
PORT = free_port()  # chosen at import: schemathesis builds its tests from the document before any fixture runs
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@pytest.fixture(scope="module")
def fuzz_service(server_env, sandbox, fresh_schema, tmp_path_factory):
    """The service as its own process (schemathesis calls it synchronously)."""
    env = {**server_env, **{k: v for k, v in sandbox.env.items() if k.startswith("WECHAT")},
           "WECHATPAY_CERT_DIR": str(tmp_path_factory.mktemp("certs")), "RATE_LIMIT_PER_MINUTE": "0",
           "RECONCILE_INTERVAL_SECONDS": "3600"}
    proc = ServiceProcess(env, name="fuzz", port=PORT)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def fuzz_tokens(fuzz_service, sandbox, server_env):
    """A parent's token and an admin's, for the operations that need one."""
    minted = sandbox.control("POST", "/sandbox/wx/login", {})
    _, user, _ = http_json("POST", fuzz_service.url + "/api/v1/auth/login", {"code": minted["code"]})
    password = Path(fuzz_service.log_path).with_suffix(".pw")
    password.write_text("fuzz-admin-password")
    subprocess.run([sys.executable, "manage.py", "create-operator", "--username", "fuzz-admin", "--password-file",
                    str(password), "--role", "admin"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **fuzz_service.env})
    _, admin, _ = http_json("POST", fuzz_service.url + "/api/v1/admin/login",
                            {"username": "fuzz-admin", "password": "fuzz-admin-password"})
    return {"userBearer": user["token"], "operatorBearer": admin["token"]}


schema = schemathesis.openapi.from_path(SPEC)
schema.config.update(base_url=f"http://127.0.0.1:{PORT}")


def _auth_headers(case, tokens):
    security = case.operation.definition.raw.get("security") or []
    for requirement in security:
        for name in requirement:
            if name in tokens:
                return {"Authorization": f"Bearer {tokens[name]}"}
    return {}


@schema.parametrize()
@settings(max_examples=12, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_endpoint_survives_generated_requests(case, fuzz_service, fuzz_tokens):
    headers = {**(case.headers or {}), **_auth_headers(case, fuzz_tokens)}
    before = cpu_seconds(fuzz_service.proc.pid)
    case.call_and_validate(headers=headers, checks=CHECKS, timeout=10)
    spent = cpu_seconds(fuzz_service.proc.pid) - before
    assert spent < 1.0, f"{case.method} {case.formatted_path} cost {spent:.2f}s of CPU"

