"""Logging in (parents and operators) and the role checks of the admin routes."""
import uuid

import pytest

from models import Operator, User, personal_data
from services.accounts import passwords


@pytest.mark.gen_test(timeout=60)  # argon2 takes a second a hash on a loaded machine
async def test_login_exchanges_the_code_and_upserts_the_user(api):
    minted = await api.control("POST", "/sandbox/wx/login", {})
    status, body, _ = await api.call("POST", "/api/v1/auth/login", {"code": minted["code"]})
    assert status == 200
    assert body["expires_in"] > 0 and body["token"]
    assert minted["openid"] not in body["user"]["openid_masked"]
    assert body["user"]["openid_masked"][:3] == minted["openid"][:3]
    again = await api.control("POST", "/sandbox/wx/login", {"openid": minted["openid"]})
    status, second, _ = await api.call("POST", "/api/v1/auth/login", {"code": again["code"]})
    assert status == 200 and second["user"]["id"] == body["user"]["id"]
    found = User.openid_hash.in_(personal_data.lookup_hashes(minted["openid"]))
    assert await User.select().where(found).aio_count() == 1


@pytest.mark.gen_test(timeout=60)  # argon2 takes a second a hash on a loaded machine
async def test_bad_used_or_missing_codes(api):
    minted = await api.control("POST", "/sandbox/wx/login", {})
    assert (await api.call("POST", "/api/v1/auth/login", {"code": minted["code"]}))[0] == 200
    status, body, _ = await api.call("POST", "/api/v1/auth/login", {"code": minted["code"]})
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"
    status, body, _ = await api.call("POST", "/api/v1/auth/login", {"code": "never-issued"})
    assert status == 401
    for bad in ({}, {"code": ""}, {"code": 12}):
        status, body, _ = await api.call("POST", "/api/v1/auth/login", bad)
        assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.gen_test(timeout=60)  # argon2 takes a second a hash on a loaded machine
async def test_wechat_unavailable_is_503(api):
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/sns/jscode2session", "status": 500,
                                                  "code": "SYSTEM_ERROR", "count": 1})
    minted = await api.control("POST", "/sandbox/wx/login", {})
    status, body, _ = await api.call("POST", "/api/v1/auth/login", {"code": minted["code"]})
    assert status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.gen_test(timeout=60)  # argon2 takes a second a hash on a loaded machine
async def test_operator_login_roles_and_user_tokens_on_admin_routes(api):
    status, body, _ = await api.call("GET", "/api/v1/admin/schedules")
    assert status == 401
    user_token, _ = await api.login()
    status, body, _ = await api.call("GET", "/api/v1/admin/schedules", token=user_token)
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    finance = await api.admin_token("finance")
    status, body, _ = await api.call("GET", "/api/v1/admin/schedules", token=finance)
    assert status == 200
    # Contract §2 Operators: the schedule routes are open to all roles; refunds, the inbox and the audit are not.
    status, body, _ = await api.call("POST", "/api/v1/admin/schedules",
                                     {"title": "x", "starts_at": "2030-01-01T10:00:00+08:00", "capacity": 3},
                                     token=finance)
    assert status == 201
    staff = await api.admin_token("staff")
    for path in ("/api/v1/admin/refunds", "/api/v1/admin/notifications", "/api/v1/admin/audit",
                 "/api/v1/admin/operators"):
        status, body, _ = await api.call("GET", path, token=staff)
        assert status == 403 and body["error"]["code"] == "FORBIDDEN", path
    status, body, _ = await api.call("POST", "/api/v1/admin/schedules",
                                     {"title": "周六体验课", "starts_at": "2030-01-01T10:00:00+08:00", "capacity": 3},
                                     token=staff)
    assert status == 201 and body["starts_at"] == "2030-01-01T10:00:00+08:00" and body["remaining"] == 3
    for bad in ({"title": "", "starts_at": "2030-01-01T10:00:00+08:00", "capacity": 3},
                {"title": "a", "starts_at": "2030-01-01T10:00:00", "capacity": 3},
                {"title": "a", "starts_at": "2030-01-01T10:00:00+08:00", "capacity": 0}):
        assert (await api.call("POST", "/api/v1/admin/schedules", bad, token=staff))[0] == 400
    status, body, _ = await api.call("POST", "/api/v1/admin/login", {"username": f"nobody-{uuid.uuid4().hex[:8]}",
                                                                   "password": "x" * 10})
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"


@pytest.mark.gen_test(timeout=60)  # argon2 takes a second a hash on a loaded machine
async def test_operator_passwords_are_stored_under_argon2(api):
    await api.admin_token("staff")
    operator = await Operator.select().order_by(Operator.id.desc()).aio_first()
    assert operator.password_hash.startswith("$argon2id$")
    assert passwords.check_password(operator.password_hash, "correct-horse-battery")
    assert not passwords.check_password(operator.password_hash, "wrong")


@pytest.mark.gen_test(timeout=60)  # argon2 takes a second a hash on a loaded machine
async def test_manage_py_creates_an_operator_who_can_log_in(api, service_env, tmp_path):
    import asyncio
    import os
    import sys

    from tests.harness import ROOT

    pw = tmp_path / "pw"
    pw.write_text("s3cret-operator-pass\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", "create-operator", "--username", "front-desk", "--password-file", str(pw),
        "--role", "staff", cwd=ROOT, env={**os.environ, **service_env}, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and b"front-desk" in out
    status, body, _ = await api.call("POST", "/api/v1/admin/login",
                                     {"username": "front-desk", "password": "s3cret-operator-pass"})
    assert status == 200 and body["operator"]["role"] == "staff" and body["operator"]["username"] == "front-desk"
    status, body, _ = await api.call("POST", "/api/v1/admin/login",
                                     {"username": "front-desk", "password": "wrong-password"})
    assert status == 401


@pytest.mark.gen_test(timeout=60)
async def test_password_checks_do_not_stall_other_requests(service_env, sandbox, db):
    """argon2 costs about a fifth of a second a check: six logins at once must not hold up a health check."""
    import asyncio
    import time

    from tests.api import Api
    from tests.harness import ServiceProcess

    env = dict(service_env)
    env.pop("PORT")
    service = ServiceProcess(env, name="argon2")
    try:
        api = Api(service.url, sandbox)
        nobody = f"nobody-{uuid.uuid4().hex[:8]}"  # a name of its own: ten failures of one name lock it
        logins = [asyncio.ensure_future(api.call("POST", "/api/v1/admin/login",
                                                 {"username": nobody, "password": f"wrong-password-{i}"}))
                  for i in range(6)]
        # Two hashing threads: the first answer means the checks are running, and four more are still to come.
        await asyncio.wait(logins, return_when=asyncio.FIRST_COMPLETED)
        started = time.monotonic()
        status, _, _ = await api.call("GET", "/healthz")
        waited = time.monotonic() - started
        checks_still_running = not all(login.done() for login in logins)
        results = await asyncio.gather(*logins)
    finally:
        service.stop()
    assert status == 200 and all(r[0] == 401 for r in results)
    assert checks_still_running, "the health check was answered while password checks ran"
    assert waited < 0.3, f"/healthz waited {waited:.2f}s behind the password checks"
