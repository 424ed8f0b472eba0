"""REDIS_URL (contract §1): a server or Sentinels; a malformed or hostile value stops the start with one line naming
it, in no time, and never shows the password."""
import os
import subprocess
import sys
import time

import pytest

import settings as settings_module
from tests.harness import ROOT

SECRET = "Redis-Pa55word"


def _load(service_env, url):
    return settings_module.load({**service_env, "REDIS_URL": url})


@pytest.mark.parametrize("url,sentinels,master,db", [
    ("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,10.0.0.3:26381/gym/0",
     (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26381)), "gym", 0),
    ("redis+sentinel://s1.example,[::1]:26380/gym-master/3", (("s1.example", 26379), ("::1", 26380)), "gym-master", 3),
    ("redis+sentinel://127.0.0.1:26379/gym", (("127.0.0.1", 26379),), "gym", 0),
])
def test_sentinel_urls_are_read(service_env, url, sentinels, master, db):
    loaded = _load(service_env, url).redis
    assert (loaded.sentinels, loaded.master, loaded.db, loaded.uses_sentinel) == (sentinels, master, db, True)


def test_a_password_reaches_the_master_and_no_repr(service_env):
    loaded = _load(service_env, f"redis+sentinel://:{SECRET.replace('5', '%35')}@10.0.0.1:26379/gym/1")
    assert loaded.redis.password == SECRET and loaded.redis.username is None
    assert SECRET not in repr(loaded) + str(loaded) + repr(loaded.redis)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://:pw@127.0.0.1:6379/15", "rediss://r.example:6380",
                                 "unix:///run/redis/redis.sock?db=2"])
def test_server_urls_go_to_redis_py_whole(service_env, url):
    loaded = _load(service_env, url).redis
    assert loaded.url == url and not loaded.uses_sentinel


@pytest.mark.parametrize("url,expected", [
    ("redis://127.0.0.1:99999/0", "REDIS_URL must look like redis://host:port/db"),
    ("redis://127.0.0.1:6379/1x", "REDIS_URL must look like redis://host:port/db"),
    ("redis://127.0.0.1:6379/0?socket_timeout=soon", "REDIS_URL must look like redis://host:port/db"),
    ("http://127.0.0.1:6379/0", "REDIS_URL must look like redis://host:port/db"),
    ("redis+sentinel:///gym/0", "REDIS_URL must look like redis+sentinel://"),
    ("redis+sentinel://10.0.0.1:26379", "master name"),
    ("redis+sentinel://10.0.0.1:26379/gym master/0", "REDIS_URL must look like redis+sentinel://"),
    ("redis+sentinel://10.0.0.1:26379/gym/0/extra", "master name"),
    ("redis+sentinel://10.0.0.1:26379/gym/0?ssl=true", "REDIS_URL must look like redis+sentinel://"),
    ("redis+sentinel://10.0.0.1:0/gym/0", "a Sentinel's port must be a number from 1 to 65535"),
    ("redis+sentinel://10.0.0.1:2637999/gym/0", "a Sentinel's port must be a number from 1 to 65535"),
    ("redis+sentinel://10.0.0.1:26379/gym/65536", "the db must be a number from 0 to 65535"),
    ("redis+sentinel://10.0.0.1,10.0.0.1/gym/0", "names a Sentinel twice"),
    ("redis+sentinel://[not-v6]:26379/gym/0", "REDIS_URL must look like redis+sentinel://"),
    ("redis+sentinel://" + ",".join(f"10.0.0.{i}" for i in range(17)) + "/gym/0", "more than 16 Sentinels"),
    ("redis+sentinel://" + ",".join(["h"] * 200_000) + "/gym/0", "longer than 2048 characters"),
    ("redis+sentinel://" + "a" * 300 + ":26379/gym/0", "REDIS_URL must look like redis+sentinel://"),
])
def test_a_malformed_redis_url_is_refused_quickly_without_the_password(service_env, url, expected):
    url = url.replace("://", f"://:{SECRET}@", 1)
    started = time.process_time()
    with pytest.raises(settings_module.SettingsError) as refused:
        _load(service_env, url)
    assert time.process_time() - started < 0.05
    assert expected in str(refused.value) and SECRET not in str(refused.value)


def test_a_malformed_sentinel_url_stops_the_start_with_one_line(sandbox, server_env):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT", "DATABASE", "REDIS"))},
           **server_env, **sandbox.env, "REDIS_URL": f"redis+sentinel://:{SECRET}@10.0.0.1:26379"}
    proc = subprocess.run([sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "REDIS_URL" in lines[0] and SECRET not in proc.stderr, proc.stderr
