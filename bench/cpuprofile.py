"""Run the service under cProfile timed by the thread's CPU clock, on only while the bench's window is open.

    python bench/cpuprofile.py OUT.prof server.py       (the bench does this with --cpu-profile)

SIGUSR1 switches profiling on, SIGUSR2 off and writes OUT.prof (pstats; `python -m pstats OUT.prof`). Why a CPU
clock: on a machine whose cores are shared, a wall-clock profiler (py-spy included) bills to the function that was
running whatever time the thread spent preempted, and a socket `send()` that wakes MariaDB is where the scheduler
most often switches away; timed by `time.thread_time`, only the CPU the service itself spent counts. The profiler's
own cost is several times the service's (every call is timed), so only shares and call counts are worth quoting.
"""
from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
import time


def main():
    """Run the script named after OUT with the profiler armed on signals."""
    out, script = sys.argv[1], sys.argv[2]
    sys.argv = sys.argv[2:]
    sys.path.insert(0, os.getcwd())
    profiler = cProfile.Profile(time.thread_time)

    def stop(*_):
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, stop)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
