"""A Redis master, its replica and three Sentinels on loopback (Debian's redis-server), each in its own directory.

The Sentinels run as `redis-server FILE --sentinel`: Debian's `redis-sentinel` is only a link to that same binary
(plus a systemd unit and /etc/redis/sentinel.conf, which a test does not want), so the redis-server package is
all the test needs.
"""
from __future__ import annotations

import os
import signal
import subprocess

import redis

from tests.harness import free_port, wait_until

MASTER_NAME = "gymtest"
DOWN_AFTER_MS = 1000  # how long a master may not answer before a Sentinel thinks it down (production: 5000 or more)
FAILOVER_TIMEOUT_MS = 4000


class RedisNode:
    """One redis-server process (a data node or a Sentinel) in `directory`."""

    def __init__(self, directory, args, port=None):
        self.port = port or free_port()
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.log = open(os.path.join(directory, "stdout.log"), "ab")
        self.proc = subprocess.Popen(["redis-server", *args(self)], cwd=directory,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self.answers, timeout=10, what=f"redis-server on {self.port} to answer")

    def client(self):
        """A short-lived synchronous client of this node."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=1,
                           decode_responses=True)

    def answers(self):
        """True when it answers PING (and fails the test if the process died)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server on {self.port} exited with {self.proc.returncode}; see {self.dir}")
        try:
            with self.client() as c:
                return c.ping()
        except redis.RedisError:
            return False

    def kill(self):
        """kill -9: the process ends with its connections; nothing is flushed or handed over."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def hang(self):
        """SIGSTOP: the process answers nothing, yet its kernel keeps every connection open (a hung server)."""
        self.proc.send_signal(signal.SIGSTOP)

    def stop(self):
        """SIGTERM (the end of the test), after a SIGCONT in case it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def _data_node(replica_of=None):
    def args(node):
        extra = ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []
        return ["--port", str(node.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", node.dir, *extra]
    return args


def _sentinel(master_port):
    def args(node):
        conf = os.path.join(node.dir, "sentinel.conf")  # a Sentinel rewrites its file as it learns the others
        with open(conf, "w", encoding="utf-8") as fh:
            fh.write(f"port {node.port}\nbind 127.0.0.1\ndir {node.dir}\nlogfile {node.dir}/sentinel.log\n"
                     f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
                     f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                     f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                     f"sentinel parallel-syncs {MASTER_NAME} 1\n")
        return [conf, "--sentinel"]
    return args


class SentinelCluster:
    """A master, one replica and three Sentinels (quorum 2), ready when every Sentinel knows the whole set."""

    def __init__(self, directory):
        self.master = RedisNode(os.path.join(directory, "master"), _data_node())
        self.replica = RedisNode(os.path.join(directory, "replica"), _data_node(replica_of=self.master.port))
        self.sentinels = [RedisNode(os.path.join(directory, f"sentinel-{i}"), _sentinel(self.master.port))
                          for i in range(3)]
        wait_until(self._ready, timeout=30, interval=0.1, what="the replica to sync and the Sentinels to meet")

    def url(self, db=0):
        """REDIS_URL naming the three Sentinels."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/{db}"

    def _ready(self):
        with self.replica.client() as c:
            if c.info("replication").get("master_link_status") != "up":
                return False
        for sentinel in self.sentinels:
            with sentinel.client() as c:
                state = c.sentinel_master(MASTER_NAME)
            if state["num-other-sentinels"] != 2 or state["num-slaves"] != 1 or not state["is_master"]:
                return False
        return True

    def master_port_named_by(self, sentinel):
        """The master's port as this Sentinel names it now."""
        with sentinel.client() as c:
            return int(c.sentinel_get_master_addr_by_name(MASTER_NAME)[1])

    def failed_over_to_replica(self):
        """True once every living Sentinel names the replica as master and the replica acts as one."""
        living = [s for s in self.sentinels if s.proc.poll() is None]
        if any(self.master_port_named_by(s) != self.replica.port for s in living):
            return False
        with self.replica.client() as c:
            return c.info("replication").get("role") == "master"

    def role(self, node):
        """`master` or `slave`, as the node itself says."""
        with node.client() as c:
            return c.info("replication")["role"]

    def drop_client_connections(self, node):
        """CLIENT KILL every command connection of clients on `node`; the Sentinels' links, the replication link
        and the subscriptions stay (what a client sees when its connection breaks or a new one is opened)."""
        with node.client() as c:
            me = c.client_id()
            for client in c.client_list(_type="normal"):
                if int(client["id"]) != me and not client.get("name", "").startswith("sentinel-"):
                    c.client_kill_filter(_id=client["id"])

    def stop(self):
        """Stop every process still running."""
        for node in [self.master, self.replica, *self.sentinels]:
            node.stop()
