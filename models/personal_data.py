"""Personal data at rest (contract §3): the one place that encrypts, decrypts, hashes and masks a parent's openid.

A parent's openid (and unionid) is stored only as AES-256-GCM ciphertext under `DATA_KEY_FILE`, plus a keyed hash
(HMAC-SHA256) that finds the user at login, plus the masked display form. Nothing else in the code touches the
cryptography: it calls `encrypt`, `decrypt`, `lookup_hashes` and `mask_value` here.

Formats (stored, so kept stable):
- ciphertext: `v1.<key id>.<base64url of nonce (12 bytes) + ciphertext + tag (16 bytes)>`, no padding; the
  additional data binds the version, the key id and the field (`openid`, `unionid`), so a value moved to another
  kind of column does not decrypt;
- key id: 8 hex characters derived from the key itself (HKDF), so no key needs a name in the configuration;
- lookup hash: 64 hex characters, HMAC-SHA256 under a key derived from the data key, of `<field>:<value>`;
- masked form (`openid_masked`): the first and last 3 characters around `***`, or `***` for 8 characters or fewer.

The AES key and the HMAC key are both derived from the one data key (HKDF-SHA256, distinct labels): changing the
data key (`manage.py rotate-data-key`) changes both, and while a change is under way the previous key stays
readable and searchable (`DATA_KEY_PREVIOUS_FILE`).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
# The widest ciphertext of a 128-character value: what the encrypted VARCHAR columns must hold.
CIPHERTEXT_MAX_CHARS = len(VERSION) + 1 + 8 + 1 + (4 * (_NONCE_BYTES + 128 + _TAG_BYTES) + 2) // 3
HASH_CHARS = 64
MASKED_MAX_CHARS = 16
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_CIPHERTEXT = re.compile(r"v1\.([0-9a-f]{8})\.([A-Za-z0-9_-]+)")


class PersonalDataError(Exception):
    """A stored value that cannot be read: a key id no loaded key has, or a ciphertext that does not verify."""


def parse_key(raw: bytes) -> bytes:
    """The 32-byte data key from a key file's content: 32 raw bytes, or 64 hex characters (surrounding whitespace
    allowed); ValueError otherwise."""
    if len(raw) == KEY_BYTES:
        return bytes(raw)
    text = raw.strip()
    if _HEX_KEY.fullmatch(text.decode("ascii", "replace")):
        return bytes.fromhex(text.decode("ascii"))
    raise ValueError("must hold 32 random bytes or 64 hex characters")


def _derive(secret: bytes, label: str, length: int = KEY_BYTES) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=f"gym personal data: {label}".encode()).derive(secret)


class DataKey:
    """One data key: its id, its AES-GCM cipher and its lookup-hash key."""

    def __init__(self, secret: bytes):
        if len(secret) != KEY_BYTES:
            raise ValueError("a data key is 32 bytes")
        self.key_id = _derive(secret, "key id", 4).hex()
        self._aead = AESGCM(_derive(secret, "aes-256-gcm"))
        self._mac_key = _derive(secret, "lookup hmac-sha256")

    def __repr__(self):
        return f"DataKey({self.key_id})"

    def encrypt(self, value: str, field: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), self._aad(field))
        return f"{VERSION}.{self.key_id}.{base64.urlsafe_b64encode(nonce + sealed).rstrip(b'=').decode('ascii')}"

    def decrypt(self, body: bytes, field: str) -> str:
        try:
            return self._aead.decrypt(body[:_NONCE_BYTES], body[_NONCE_BYTES:], self._aad(field)).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise PersonalDataError(f"a {field} ciphertext under key {self.key_id} does not verify") from None

    def hash(self, value: str, field: str) -> str:
        return hmac.new(self._mac_key, f"{field}:{value}".encode("utf-8"), hashlib.sha256).hexdigest()

    def _aad(self, field: str) -> bytes:
        return f"{VERSION}.{self.key_id}.{field}".encode("ascii")


class Keyring:
    """The current data key (which writes) and the previous one (read and searched while a change is under way)."""

    def __init__(self, current: bytes, previous: bytes | None = None):
        self.current = DataKey(current)
        self.previous = DataKey(previous) if previous is not None else None
        if self.previous is not None and self.previous.key_id == self.current.key_id:
            self.previous = None  # the same key named twice
        self._by_id = {k.key_id: k for k in (self.current, self.previous) if k is not None}

    @property
    def key_ids(self) -> tuple:
        """The ids of the loaded keys, the current one first."""
        return tuple(self._by_id)

    def encrypt(self, value: str, field: str = "openid") -> str:
        """The ciphertext of value under the current key."""
        return self.current.encrypt(value, field)

    def decrypt(self, ciphertext: str, field: str = "openid") -> str:
        """The value of a ciphertext under any loaded key; PersonalDataError when no loaded key reads it."""
        key_id, body = _split(ciphertext)
        key = self._by_id.get(key_id)
        if key is None:
            raise PersonalDataError(f"no loaded data key has the id {key_id} (DATA_KEY_FILE, DATA_KEY_PREVIOUS_FILE)")
        return key.decrypt(body, field)

    def hash(self, value: str, field: str = "openid") -> str:
        """The lookup hash under the current key (what a row written now holds)."""
        return self.current.hash(value, field)

    def lookup_hashes(self, value: str, field: str = "openid") -> list[str]:
        """The lookup hash under every loaded key, the current one first (a row not yet re-encrypted holds the
        previous key's)."""
        return [key.hash(value, field) for key in self._by_id.values()]

    def is_current(self, ciphertext: str) -> bool:
        """True when the ciphertext is under the current key."""
        return key_id_of(ciphertext) == self.current.key_id


def _split(ciphertext: str) -> tuple[str, bytes]:
    match = _CIPHERTEXT.fullmatch(ciphertext or "")
    if match is None:
        raise PersonalDataError("not a personal-data ciphertext")
    body = match.group(2)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        raise PersonalDataError("not a personal-data ciphertext") from None
    if len(raw) < _NONCE_BYTES + _TAG_BYTES:
        raise PersonalDataError("a personal-data ciphertext too short to hold anything")
    return match.group(1), raw


def key_id_of(ciphertext: str) -> str:
    """The id of the key a ciphertext was made with (PersonalDataError for anything else)."""
    return _split(ciphertext)[0]


def ciphertext_prefix(key_id: str) -> str:
    """What every ciphertext under that key starts with (for `LIKE` in SQL)."""
    return f"{VERSION}.{key_id}."


_keyring: Keyring | None = None


def configure(current: bytes, previous: bytes | None = None) -> Keyring:
    """Load the data keys for this process (server start-up, `manage.py`); returns the keyring."""
    global _keyring
    _keyring = Keyring(current, previous)
    return _keyring


def keyring() -> Keyring:
    """The process's keyring; RuntimeError before `configure`."""
    if _keyring is None:
        raise RuntimeError("the data key is not loaded (DATA_KEY_FILE)")
    return _keyring


def is_configured() -> bool:
    """True once `configure` ran in this process."""
    return _keyring is not None


def encrypt(value: str, field: str = "openid") -> str:
    """The ciphertext of value under the current data key."""
    return keyring().encrypt(value, field)


def decrypt(ciphertext: str, field: str = "openid") -> str:
    """The value a ciphertext holds."""
    return keyring().decrypt(ciphertext, field)


def lookup_hashes(value: str, field: str = "openid") -> list[str]:
    """The lookup hashes to search for (the current key's first)."""
    return keyring().lookup_hashes(value, field)


def mask_value(value) -> str:
    """The masked display form: the first and last 3 characters around `***` (`***` for 8 characters or fewer)."""
    text = str(value)
    if len(text) <= 8:
        return "***"
    return f"{text[:3]}***{text[-3:]}"


def user_columns(openid: str, unionid: str | None = None) -> dict:
    """The users row's personal columns for a parent: lookup hash, ciphertexts and masked form."""
    ring = keyring()
    return {"openid_hash": ring.hash(openid), "openid_encrypted": ring.encrypt(openid),
            "openid_masked": mask_value(openid),
            "unionid_encrypted": ring.encrypt(unionid, "unionid") if unionid else None}


# Where an id that names a person sits in what WeChat sends and answers; `payer` is the payer object itself.
PERSON_KEYS = frozenset({"openid", "sub_openid", "sp_openid", "unionid", "touser"})


def snapshot(data):
    """What an audit row keeps of a payload from or for WeChat: the payer object dropped (the payment's row holds
    the payer's openid encrypted, the order names its parent), any other id that names a person masked."""
    if isinstance(data, dict):
        return {k: (mask_value(v) if k.lower() in PERSON_KEYS and isinstance(v, str) and v else snapshot(v))
                for k, v in data.items() if k.lower() != "payer"}
    if isinstance(data, list):
        return [snapshot(v) for v in data]
    return data


# Every column that holds a ciphertext: (table, column, field, the lookup-hash column beside it or None).
# `manage.py rotate-data-key` re-encrypts exactly these; a new one is added here.
ENCRYPTED_COLUMNS = (
    ("users", "openid_encrypted", "openid", "openid_hash"),
    ("users", "unionid_encrypted", "unionid", None),
    ("payment_transactions", "payer_openid_encrypted", "openid", None),
)
