"""Operator passwords under argon2id, hashed off the event loop (a hash costs tens of milliseconds)."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verifying against this when the username is unknown keeps the timing of both failures alike.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
# Two threads: argon2 releases the GIL, and each hash holds 64 MiB, so more would only cost memory.
HASH_THREADS = 2
_pool = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2")
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
    """hash_password in the hashing threads."""
    return await asyncio.get_running_loop().run_in_executor(_pool, hash_password, password)


async def check_password_async(password_hash: str | None, password: str) -> bool:
    """check_password in the hashing threads."""
    return await asyncio.get_running_loop().run_in_executor(_pool, check_password, password_hash, password)
