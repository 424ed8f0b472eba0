"""Without PROMETHEUS_MULTIPROC_DIR (`make run`, a bench's service) the service counts into a temp directory of its
own and removes it when it stops, with one process and with workers (they must leave it to the master); one a
kill -9 left behind is removed by the next start. Before this, every such start left a directory in /tmp."""
from __future__ import annotations

import os

import pytest

from tests.api import Api
from tests.harness import ServiceProcess


def _metrics_dirs(tmp):
    return sorted(name for name in os.listdir(tmp) if name.startswith("gym-metrics-"))


def _service(service_env, tmp, workers):
    env = {**service_env, "WORKERS": str(workers), "RUN_JOBS": "false", "TMPDIR": str(tmp),
           "PROMETHEUS_MULTIPROC_DIR": ""}  # empty: none given (the harness would otherwise give one)
    env.pop("PORT")
    return ServiceProcess(env, name=f"metrics-dir-{workers}")


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.gen_test(timeout=60)
async def test_the_temp_directory_is_used_while_serving_and_gone_once_stopped(service_env, tmp_path, workers):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _service(service_env, tmp, workers)
    try:
        status, text, _ = await Api(proc.url, None).call("GET", "/metrics")
        assert status == 200 and b"gym_http_requests_total" in text
        dirs = _metrics_dirs(tmp)
        assert len(dirs) == 1 and dirs[0].startswith(f"gym-metrics-{proc.proc.pid}-"), dirs
        assert any(name.endswith(".db") for name in os.listdir(tmp / dirs[0]))
    finally:
        proc.stop()
    assert proc.proc.returncode == 0
    assert _metrics_dirs(tmp) == []


@pytest.mark.gen_test(timeout=60)
async def test_a_directory_a_kill_9_left_goes_at_the_next_start_and_a_live_ones_stays(service_env, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    killed = _service(service_env, tmp, 1)
    killed.kill()
    left = _metrics_dirs(tmp)
    assert len(left) == 1  # the control: nothing removes it at a kill -9
    alive = tmp / f"gym-metrics-{os.getpid()}-live"  # this test process's: alive, not to be touched
    alive.mkdir()
    proc = _service(service_env, tmp, 1)
    try:
        dirs = _metrics_dirs(tmp)
        assert left[0] not in dirs
        assert alive.name in dirs and len(dirs) == 2, dirs
    finally:
        proc.stop()
    assert _metrics_dirs(tmp) == [alive.name]
