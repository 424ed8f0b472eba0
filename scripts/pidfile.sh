# Sourced by run.sh and servers.sh: stop a process we started, found by its pid file, and nobody else.
#   stop_process NAME PIDFILE MARK CWD [SECONDS]
# The pid file's process is ours only while its command line holds MARK and it runs in directory CWD: a pid file
# left by a kill -9, or whose pid the kernel has since given to a stranger, is removed and nothing is signalled.
# Ours gets SIGTERM, SECONDS (default 20) to exit, then SIGKILL.

is_ours() {  # PID MARK CWD
  local pid=$1 mark=$2 cwd=$3 cmdline
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline") || return 1
  [[ "$cmdline" == *"$mark"* ]] || return 1  # a zombie's command line is empty: it is gone already
  [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$cwd" ]
}

stop_process() {  # NAME PIDFILE MARK CWD [SECONDS]
  local name=$1 file=$2 mark=$3 cwd=$4 seconds=${5:-20} pid
  if [ ! -f "$file" ]; then echo "$name: not running"; return 0; fi
  pid=$(head -c 20 "$file" 2>/dev/null | tr -dc 0-9)
  if ! is_ours "$pid" "$mark" "$cwd"; then
    echo "$name: not running (removed the stale $file)"
    rm -f "$file"
    return 0
  fi
  echo "==> stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((seconds * 5))); do is_ours "$pid" "$mark" "$cwd" || break; sleep 0.2; done
  if is_ours "$pid" "$mark" "$cwd"; then
    echo "$name did not stop within ${seconds}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 25); do is_ours "$pid" "$mark" "$cwd" || break; sleep 0.2; done
  fi
  rm -f "$file"
}
