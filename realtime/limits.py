"""What one WebSocket client may cost this process (contract §2 Live status): the message size, the subscriptions a
socket holds, how fast it may send, and the sockets one user holds."""
from __future__ import annotations

import time

MAX_MESSAGE_BYTES = 4096  # a client message over this closes the socket with 1009 (Tornado checks before reading it)
MAX_SUBSCRIPTIONS = 20  # distinct orders one socket holds
MAX_SOCKETS_PER_USER = 5  # on one server process; a sixth closes the user's oldest with CLOSE_TOO_MANY_SOCKETS
CLOSE_TOO_MANY_SOCKETS = 4429
# Messages a socket may send: a burst (a reconnecting mini-program subscribes to its orders at once), then a steady
# rate. A subscribe costs two MySQL reads, so this bounds what one socket can ask of the database.
MESSAGE_BURST = 60
MESSAGES_PER_SECOND = 10.0


class MessageBudget:
    """A token bucket per socket. Over budget, the first message is answered RATE_LIMITED and the rest are dropped
    unanswered until the budget refills, so a client that sends without reading cannot grow our write buffer."""

    __slots__ = ("burst", "rate", "clock", "tokens", "at", "told")  # one per socket: no __dict__

    def __init__(self, burst=MESSAGE_BURST, rate=MESSAGES_PER_SECOND, clock=time.monotonic):
        self.burst, self.rate, self.clock = burst, rate, clock
        self.tokens = float(burst)
        self.at = clock()
        self.told = False  # RATE_LIMITED already sent in this episode

    def take(self) -> str:
        """'ok' (spend one), 'refuse' (answer RATE_LIMITED) or 'drop' (say nothing)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.told = False
            return "ok"
        if self.told:
            return "drop"
        self.told = True
        return "refuse"


class UserSockets:
    """The open sockets of each user on this process, oldest first."""

    def __init__(self, limit=MAX_SOCKETS_PER_USER):
        self.limit = limit
        self._by_user = {}  # user_id -> (conn, ...) in the order they opened (a tuple of at most `limit`)

    def add(self, user_id, conn) -> tuple:
        """Count conn as one of the user's sockets; returns the oldest ones now over the limit (to be closed)."""
        conns = self._by_user.get(user_id, ()) + (conn,)
        self._by_user[user_id] = conns[-self.limit:]
        return conns[:-self.limit]

    def remove(self, user_id, conn):
        """conn closed."""
        conns = self._by_user.get(user_id, ())
        if conn in conns:
            rest = tuple(c for c in conns if c is not conn)
            if rest:
                self._by_user[user_id] = rest
            else:
                del self._by_user[user_id]

    def all(self) -> list:
        """Every counted socket of this process."""
        return [conn for conns in self._by_user.values() for conn in conns]

    def count(self, user_id) -> int:
        """How many sockets the user holds here."""
        return len(self._by_user.get(user_id, ()))
