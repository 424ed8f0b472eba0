"""The secrets written into var/ (the database password, SECRET_KEY, the data key, var/dev.env that carries them,
the sandbox's keys and service.env) are readable by their owner alone: 0600, the sandbox's directory 0700."""
from __future__ import annotations

import os
import stat
import subprocess

from tests.harness import ROOT, VAR, SandboxProcess, read_env_file

SECRETS = ("dev.env", "db_password", "secret_key", "data_key", "admin_password", "audit_key")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_servers_sh_writes_dev_env_0600_even_over_a_readable_one():
    path = os.path.join(VAR, "dev.env")
    before = read_env_file(path)
    os.chmod(path, 0o644)  # as every earlier version left it
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "servers.sh"), "start"], check=True,
                   stdout=subprocess.DEVNULL)
    assert _mode(path) == 0o600
    assert read_env_file(path) == before  # the same settings, only hidden
    for name in SECRETS:
        if os.path.exists(os.path.join(VAR, name)):
            assert _mode(os.path.join(VAR, name)) & 0o077 == 0, name


def test_the_sandbox_keeps_its_keys_to_its_owner(tmp_path):
    state_dir = str(tmp_path / "sandbox")
    os.makedirs(state_dir, mode=0o755)  # made by someone else with the default umask, as run.sh and the tests do
    os.chmod(state_dir, 0o755)
    sandbox = SandboxProcess(state_dir)
    try:
        sandbox.control("POST", "/sandbox/keys/apiv3-key", {})  # a key change writes new files too
    finally:
        sandbox.stop()
    assert _mode(state_dir) == 0o700
    private = [name for name in os.listdir(state_dir) if name.endswith((".pem", ".txt", ".json", ".env"))]
    assert {"service.env", "apiv3_key.txt", "merchant_private_key.pem", "keyring.json"} <= set(private)
    for name in private:
        assert _mode(os.path.join(state_dir, name)) & 0o077 == 0, name
