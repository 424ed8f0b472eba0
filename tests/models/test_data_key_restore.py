"""A backup from before a data-key change, restored (docs/deploy.md section 16, step 5's warning): the service started
with the new key alone says at once that stored openids are under a key it was not given (log line, metric, alert
GymPersonalDataUnreadable), instead of quietly making those parents new users; given the old key as
DATA_KEY_PREVIOUS_FILE it finds every parent again, and `rotate-data-key` brings the restored rows under the new key.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.api import Api, eventually
from tests.harness import ROOT, ServiceProcess
from tests.models.test_rotate_data_key import _book_and_pay, _ciphertext_keys, _key, _login, _manage, own_database
from tests.prometheus_text import samples, value

PARENTS = 3


@pytest.fixture
def restore_db(io_loop, server_env):
    yield from own_database(io_loop, server_env, "restore")


def _mariadb(tool, parsed, *args, **kwargs):
    """mariadb-dump / mariadb as the project's user (the password in the environment, not on the command line)."""
    return subprocess.run([tool, "--no-defaults", "-h", parsed.host, "-P", str(parsed.port), "-u", parsed.user,
                           *args, parsed.name], env={**os.environ, "MYSQL_PWD": parsed.password}, check=True,
                          timeout=60, **kwargs)


async def _unreadable(service):
    status, text, _ = await Api(service.url).call("GET", "/metrics")
    assert status == 200
    return value(samples(text.decode()), "gym_personal_data_unreadable_values")


def _log(service):
    with open(service.log_path, encoding="utf-8") as f:
        return f.read()


@pytest.mark.gen_test(timeout=180)
async def test_a_backup_from_before_the_key_change_is_named_at_start_and_mended_with_the_old_key(
        restore_db, service_env, sandbox, tmp_path):
    url, parsed = restore_db
    (old, old_id), (new, new_id) = _key(tmp_path / "old.key"), _key(tmp_path / "new.key")
    env = {**service_env, "DATABASE_URL": url, "RUN_JOBS": "false"}
    env.pop("DATA_KEY_PREVIOUS_FILE", None)

    service = ServiceProcess({**env, "DATA_KEY_FILE": old}, name="restore-before")
    api = Api(service.url, sandbox)
    try:
        assert await _unreadable(service) == 0
        schedule_id = await api.schedule(capacity=10)
        parents = dict([await _book_and_pay(api, schedule_id) for _ in range(PARENTS)])
        await eventually(lambda: _ciphertext_keys(parsed)[0] == {old_id: 2 * PARENTS}, timeout=30,
                         what="every payment applied (its payer's openid stored)")
    finally:
        service.stop()
    backup = tmp_path / "before-the-change.sql"
    with open(backup, "wb") as out:
        _mariadb("mariadb-dump", parsed, "--single-transaction", "--no-tablespaces", stdout=out)

    command, cmd_env = _manage(url, "rotate-data-key", key=new, previous=old)
    rotated = subprocess.run(command, cwd=ROOT, env=cmd_env, capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    assert _ciphertext_keys(parsed)[0] == {new_id: 2 * PARENTS}

    with open(backup, "rb") as dump:  # the restore
        _mariadb("mariadb", parsed, stdin=dump)
    assert _ciphertext_keys(parsed) == ({old_id: 2 * PARENTS}, PARENTS)

    # The new key alone (the old one removed after the change, as step 5 allows): said at once.
    service = ServiceProcess({**env, "DATA_KEY_FILE": new}, name="restore-new-key-only")
    try:
        assert await _unreadable(service) == 2 * PARENTS
        log = _log(service)
        assert (f"{2 * PARENTS} stored value(s) are under a data key this service was not given "
                f"(users.openid_encrypted {PARENTS}, payment_transactions.payer_openid_encrypted {PARENTS})") in log
        assert "DATA_KEY_PREVIOUS_FILE" in log.split("stored value(s) are under a data key")[1].splitlines()[0]
    finally:
        service.stop()

    # The mend the runbook gives: the old key as the previous one; every parent is found again, nothing is unread.
    service = ServiceProcess({**env, "DATA_KEY_FILE": new, "DATA_KEY_PREVIOUS_FILE": old}, name="restore-mended")
    api = Api(service.url, sandbox)
    try:
        assert await _unreadable(service) == 0
        assert "under a data key this service was not given" not in _log(service)
        for openid, user_id in parents.items():
            assert (await _login(api, openid))["id"] == user_id
    finally:
        service.stop()
    command, cmd_env = _manage(url, "rotate-data-key", key=new, previous=old)
    rotated = subprocess.run(command, cwd=ROOT, env=cmd_env, capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    assert _ciphertext_keys(parsed) == ({new_id: 2 * PARENTS}, PARENTS)  # no parent made twice
