"""Operator passwords under argon2id, hashed off the event loop (a hash costs a tenth of a second or more), with
the work bounded: two threads, and at most ADMITTED checks or hashes admitted at once; beyond, 503 at once."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

import errors

from ..offload import BoundedThreads

_hasher = PasswordHasher()
# Verifying against this when the username is unknown keeps the timing of both failures alike.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
# Two threads: argon2 releases the GIL, and each hash holds 64 MiB, so more would only cost memory. Two running and
# six waiting: the last admitted waits about three hashes, and a login flood gets a quick 503 instead of a queue
# that would hold real operators for minutes.
THREADS, ADMITTED = 2, 8
_threads = BoundedThreads("argon2", THREADS, ADMITTED, lambda: errors.service_unavailable("登录请求过多，请稍后重试"))
MAX_PASSWORD_CHARS = 256


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def check_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches the hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    """hash_password in the hashing threads; 503 SERVICE_UNAVAILABLE when ADMITTED are under way."""
    return await _threads.run(hash_password, password)


async def check_password_async(password_hash: str | None, password: str) -> bool:
    """check_password in the hashing threads; 503 SERVICE_UNAVAILABLE when ADMITTED are under way."""
    return await _threads.run(check_password, password_hash, password)
