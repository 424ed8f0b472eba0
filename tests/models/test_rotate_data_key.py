"""`manage.py rotate-data-key` (docs/deploy.md section 16): the data key changes while the service runs and parents
log in, book and pay; every ciphertext ends under the new key, no parent becomes two, nothing is in clear, and the
service started with the new key alone finds every parent again. Refused without the old key; killed half way, it
carries on."""
import asyncio
import os
import subprocess
import sys

import pytest

import settings as settings_module
from models import close_database, open_database, personal_data
from tests.api import Api, eventually
from tests.harness import ROOT, ServiceProcess, admin_sql
from tests.models.personal_data_scan import places_holding
from tests.models.schema_snapshot import connect

BEFORE, DURING = 8, 6  # parents who paid under the old key; parents who come while the key changes


def own_database(io_loop, server_env, suffix):
    """(url, parsed url) of a database of the test's own, migrated, with this process's models pointed at it."""
    base = settings_module.parse_database_url(server_env)
    url = server_env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{base.name}_{suffix}"
    parsed = settings_module.parse_database_url({"DATABASE_URL": url})
    admin_sql(parsed, [f"DROP DATABASE IF EXISTS `{parsed.name}`",
                       f"CREATE DATABASE `{parsed.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"])
    subprocess.run([sys.executable, "manage.py", "migrate"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DATABASE_URL": url})
    io_loop.run_sync(lambda: open_database(parsed, pool_max=3))
    yield url, parsed
    io_loop.run_sync(close_database)
    admin_sql(parsed, [f"DROP DATABASE IF EXISTS `{parsed.name}`"])


@pytest.fixture
def rotation_db(io_loop, server_env):
    yield from own_database(io_loop, server_env, "rotate")


def _key(path):
    path.write_text(os.urandom(32).hex() + "\n")
    path.chmod(0o600)
    return str(path), personal_data.Keyring(personal_data.parse_key(path.read_bytes())).current.key_id


def _ciphertext_keys(parsed):
    """{key id: count} over every encrypted column, and the users' rows (id, openid_hash)."""
    conn = connect(parsed, parsed.name)
    try:
        with conn.cursor() as cur:
            ids = {}
            for table, column, _, _ in personal_data.ENCRYPTED_COLUMNS:
                cur.execute(f"SELECT `{column}` FROM `{table}` WHERE `{column}` IS NOT NULL")
                for (value,) in cur.fetchall():
                    key_id = personal_data.key_id_of(value)
                    ids[key_id] = ids.get(key_id, 0) + 1
            cur.execute("SELECT COUNT(*) FROM users")
            return ids, cur.fetchone()[0]
    finally:
        conn.close()


def _manage(url, *args, key, previous=None):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DATA_KEY")}, "DATABASE_URL": url,
           "DATA_KEY_FILE": key, **({"DATA_KEY_PREVIOUS_FILE": previous} if previous else {})}
    return [sys.executable, "manage.py", *args], env


async def _book_and_pay(api, schedule_id, openid=None):
    """A parent logs in, books and pays; returns (openid, user id)."""
    minted = await api.control("POST", "/sandbox/wx/login", {"openid": openid} if openid else {})
    status, login, _ = await api.call("POST", "/api/v1/auth/login", {"code": minted["code"]})
    assert status == 200, login
    status, order = await api.order(login["token"], schedule_id)
    assert status == 201, order
    assert (await api.prepay(login["token"], order["order_id"]))[0] == 200
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
    return minted["openid"], login["user"]["id"]


async def _login(api, openid):
    minted = await api.control("POST", "/sandbox/wx/login", {"openid": openid})
    status, login, _ = await api.call("POST", "/api/v1/auth/login", {"code": minted["code"]})
    assert status == 200, login
    return login["user"]


async def _booked_everyone(api, openids):
    sent = {m["touser"] for m in (await api.control("GET", "/sandbox/messages"))["items"] if m.get("errcode") == 0}
    return set(openids) <= sent


@pytest.mark.gen_test(timeout=240)
async def test_the_data_key_changes_under_traffic_and_every_parent_is_found_again(rotation_db, service_env,
                                                                                    sandbox, tmp_path):
    url, parsed = rotation_db
    (old, old_id), (new, new_id) = _key(tmp_path / "old.key"), _key(tmp_path / "new.key")
    env = {**service_env, "DATABASE_URL": url, "RECONCILE_INTERVAL_SECONDS": "0.5"}
    env.pop("DATA_KEY_PREVIOUS_FILE", None)

    service = ServiceProcess({**env, "DATA_KEY_FILE": old}, name="rotate-before")
    api = Api(service.url, sandbox)
    try:
        schedule_id = await api.schedule(capacity=100)
        parents = dict([await _book_and_pay(api, schedule_id) for _ in range(BEFORE)])
        await eventually(lambda: _booked_everyone(api, parents), timeout=30, what="the parents' 预约成功")
    finally:
        service.stop()
    assert _ciphertext_keys(parsed) == ({old_id: 2 * BEFORE}, BEFORE)

    # Without the old key the command cannot read what it must re-encrypt: it says so and changes nothing.
    command, cmd_env = _manage(url, "rotate-data-key", key=new)
    refused = subprocess.run(command, cwd=ROOT, env=cmd_env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "set DATA_KEY_PREVIOUS_FILE" in refused.stderr, refused.stderr
    assert _ciphertext_keys(parsed) == ({old_id: 2 * BEFORE}, BEFORE)

    # kill -9 half way: the batches done stay done (each is one transaction), the rest waits for the next run.
    command, cmd_env = _manage(url, "rotate-data-key", "--batch", "1", "--pause", "5", key=new, previous=old)
    killed = await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=cmd_env, stdout=asyncio.subprocess.PIPE)
    line = b""
    while b"re-encrypted" not in line:
        line = await asyncio.wait_for(killed.stdout.readline(), 30)
        assert line, "rotate-data-key ended before its first batch"
    killed.kill()
    await killed.wait()
    assert _ciphertext_keys(parsed) == ({old_id: 2 * BEFORE - 1, new_id: 1}, BEFORE)

    # The service restarted with the new key and the old one as previous; the rotation runs, in small batches,
    # while known parents log in again and new ones log in, book and pay.
    service = ServiceProcess({**env, "DATA_KEY_FILE": new, "DATA_KEY_PREVIOUS_FILE": old}, name="rotate-during")
    api = Api(service.url, sandbox)
    try:
        command, cmd_env = _manage(url, "rotate-data-key", "--batch", "2", "--pause", "0.3", key=new, previous=old)
        rotation = await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=cmd_env,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
        newcomers, logins_meanwhile = {}, 0
        known = list(parents)
        while rotation.returncode is None:
            user = await _login(api, known[logins_meanwhile % BEFORE])
            assert user["id"] == parents[known[logins_meanwhile % BEFORE]]  # the same parent, found by either key
            assert user["openid_masked"] == personal_data.mask_value(known[logins_meanwhile % BEFORE])
            logins_meanwhile += 1
            if len(newcomers) < DURING:
                openid, user_id = await _book_and_pay(api, schedule_id)
                newcomers[openid] = user_id
            try:
                await asyncio.wait_for(asyncio.shield(rotation.wait()), 0.05)
            except asyncio.TimeoutError:
                pass
        out, err = (b.decode() for b in await rotation.communicate())
        assert rotation.returncode == 0, out + err
        assert logins_meanwhile >= 5 and len(newcomers) == DURING  # the traffic did overlap the rotation
        progress = [line for line in out.splitlines() if "re-encrypted" in line and "/" in line]
        assert len(progress) >= 4 and progress[0].startswith("users.openid_encrypted: ")
        assert f"every value is under key {new_id}" in out
        everyone = {**parents, **newcomers}
        await eventually(lambda: _booked_everyone(api, everyone), timeout=30, what="every 预约成功, either key")
    finally:
        service.stop()

    assert _ciphertext_keys(parsed) == ({new_id: 2 * len(everyone)}, len(everyone))  # no parent made twice
    assert places_holding(parsed, list(everyone)) == []
    command, cmd_env = _manage(url, "rotate-data-key", "--check", key=new)
    check = subprocess.run(command, cwd=ROOT, env=cmd_env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "DATA_KEY_PREVIOUS_FILE can be removed" in check.stdout, check.stderr

    # The old key gone: every parent is found again, by the new key alone.
    service = ServiceProcess({**env, "DATA_KEY_FILE": new}, name="rotate-after")
    api = Api(service.url, sandbox)
    try:
        for openid, user_id in everyone.items():
            assert (await _login(api, openid))["id"] == user_id
    finally:
        service.stop()
    assert _ciphertext_keys(parsed) == ({new_id: 2 * len(everyone)}, len(everyone))
