"""Reading /proc: a process's memory, open files and CPU time, the whole machine's busy time, what it is."""
from __future__ import annotations

import os
import platform
import resource


def pid_from_file(pid_file):
    """The pid a server wrote into its pid file, or None."""
    try:
        with open(pid_file, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def proc_status(pid):
    """VmRSS and VmHWM in KiB from /proc/PID/status."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def open_fds(pid):
    """How many file descriptors the process has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def max_open_files(pid):
    """The process's soft 'Max open files' from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (field 3 first), or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid):
    """User + system CPU time the process has used so far (/proc/PID/stat), or None once it is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds():
    """CPU seconds all CPUs of the machine have spent busy so far (/proc/stat), whoever used them."""
    with open("/proc/stat", encoding="ascii") as fh:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fh.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids):
    """cpu_seconds of every named process, and of the whole machine under "machine"."""
    return {**{name: cpu_seconds(pid) for name, pid in pids.items()}, "machine": machine_busy_seconds()}


def machine():
    """What the figures were measured on."""
    with open("/proc/meminfo", encoding="ascii") as fh:
        mem_kib = int(fh.readline().split()[1])
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "mem_gib": round(mem_kib / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release()}


def children_of(pid):
    """Every descendant pid of a process (its worker processes, say), read from /proc/*/stat."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def tree_cpu_seconds(pid):
    """cpu_seconds of a process plus its live descendants and the children it has reaped (cutime + cstime)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    total = sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total + sum(cpu_seconds(p) or 0.0 for p in children_of(pid))


def tree_rss_kib(pid):
    """VmRSS of a process and its descendants, in KiB (shared pages are counted in each)."""
    total = 0
    for p in [pid, *children_of(pid)]:
        try:
            total += proc_status(p)["VmRSS"]
        except (OSError, KeyError):
            continue
    return total


def tree_open_fds(pid):
    """open_fds of a process and its descendants."""
    total = 0
    for p in [pid, *children_of(pid)]:
        try:
            total += open_fds(p)
        except OSError:
            continue
    return total


def raise_open_files_limit():
    """Soft RLIMIT_NOFILE up to the hard limit; every process started afterwards inherits it. Returns the limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
