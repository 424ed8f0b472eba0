"""Instructions the service executes, counted by valgrind's callgrind while the bench's window is open.

CPU seconds move with whatever else the machine runs (the host's other guests included, which no process here can
see); the number of instructions a piece of code executes does not. With `--count-instructions` the service runs
as `valgrind --tool=callgrind --instr-atstart=no python server.py`: not instrumented (so only a few times slower)
through its start and the setup, instrumented from the window's start to its end (`callgrind_control -i on`, then
a dump). The count is of the service's own process (user-space instructions, the interpreter, the C libraries and
OpenSSL included; not the kernel's), and it repeats within about a per cent from run to run. What it does not show:
cache misses and system calls cost more time than their instruction counts say, so it ranks cuts of Python work
well and says little about round trips, which --count-sql counts. Instrumented, the service runs some 50 times
slower: use a few --flow-workers, so that no timeout of the service or the client is reached.

The dump (`var/bench/callgrind-<scenario>-<time>.out.1`) can be read with `callgrind_annotate` (C functions only:
Python functions show as the interpreter's frames).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time


def command(out_path, argv):
    """The service's command line under callgrind, writing its dumps to out_path (.1, .2, ...)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--count-instructions needs valgrind (apt-get install valgrind)")
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_path}", *argv]


class Instructions:
    """Switches callgrind's instrumentation on for a window and reads the window's instruction count."""

    def __init__(self, pid, out_path, host):
        self.pid = pid
        self.out_path = out_path
        # valgrind names its control pipes after $USER and $HOST; the service's HOST is its listen address
        self.env = {**os.environ, "HOST": host}

    def _control(self, *args):
        subprocess.run(["callgrind_control", *args, str(self.pid)], check=True, stdout=subprocess.DEVNULL,
                       env=self.env, timeout=120)

    def start(self):
        """Instrument from now on (the counters start at zero: nothing was instrumented before)."""
        self._before = set(glob.glob(self.out_path + ".*"))
        self._control("--zero")
        self._control("--instr=on")

    def stop(self) -> tuple[int, str]:
        """Dump, stop instrumenting; (instructions since start(), the dump file)."""
        self._control("--dump")
        self._control("--instr=off")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = sorted(set(glob.glob(self.out_path + ".*")) - self._before,
                         key=lambda p: int(p.rsplit(".", 1)[1]) if p.rsplit(".", 1)[1].isdigit() else -1)
            if new:
                total = _totals(new[-1])
                if total is not None:
                    return total, new[-1]
            time.sleep(0.2)
        raise RuntimeError(f"callgrind wrote no dump next to {self.out_path}")


def _totals(path) -> int | None:
    """The `totals:` (or `summary:`) line of a finished dump, or None while it is being written."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            found = None
            for line in fh:
                if line.startswith(("totals:", "summary:")):
                    found = int(line.split()[1])
            return found
    except OSError:
        return None
