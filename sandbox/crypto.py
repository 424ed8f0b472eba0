"""The WeChat Pay v3 cryptography: SHA256withRSA signatures, the Authorization header, AES-256-GCM resources."""
import base64
import re
import secrets
import string
import time
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "WECHATPAY2-SHA256-RSA2048"
AUTH_FIELDS = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")
_PAIR = re.compile(r'\s*([A-Za-z_]+)="([^"]*)"\s*(?:,|$)')
_ALNUM = string.ascii_letters + string.digits


def random_text(length, alphabet=_ALNUM):
    """A random string of `length` characters from `alphabet`."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def request_id():
    """A Request-ID like the ones WeChat Pay sends (uppercase hex)."""
    return uuid.uuid4().hex.upper() + uuid.uuid4().hex.upper()[:16]


def sign(private_key, message):
    """Base64 SHA256withRSA (PKCS#1 v1.5) signature of `message` bytes."""
    raw = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def verify(public_key, message, signature):
    """True when `signature` (base64) is a SHA256withRSA signature of `message` by `public_key`."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def parse_authorization(header):
    """The five fields of a WECHATPAY2-SHA256-RSA2048 Authorization header (any order), or None."""
    if not header or not header.startswith(SCHEME + " "):
        return None
    rest = header[len(SCHEME) + 1:].strip()
    fields, position = {}, 0
    while position < len(rest):
        match = _PAIR.match(rest, position)
        if not match or match.group(1) in fields:
            return None
        fields[match.group(1)] = match.group(2)
        position = match.end()
    if any(not fields.get(name) for name in AUTH_FIELDS):
        return None
    return fields


def request_message(method, uri, timestamp, nonce, body):
    """The bytes a merchant signs: METHOD\\nURI\\nTIMESTAMP\\nNONCE\\nBODY\\n."""
    head = f"{method}\n{uri}\n{timestamp}\n{nonce}\n".encode("latin-1")
    return head + body + b"\n"


def response_message(timestamp, nonce, body):
    """The bytes WeChat Pay signs for an answer or a notification: TIMESTAMP\\nNONCE\\nBODY\\n."""
    return f"{timestamp}\n{nonce}\n".encode("ascii") + body + b"\n"


def signed_headers(private_key, serial, body):
    """The Wechatpay-* headers (fresh timestamp and nonce) and a Request-ID for `body` bytes."""
    timestamp, nonce = str(int(time.time())), random_text(32)
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": sign(private_key, response_message(timestamp, nonce, body)),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SCHEME,
        "Request-ID": request_id(),
    }


def encrypt_resource(apiv3_key, plaintext, associated_data):
    """AEAD_AES_256_GCM with the APIv3 key: nonce (12 ASCII chars), AAD, base64(ciphertext || tag)."""
    nonce = random_text(12)
    sealed = AESGCM(apiv3_key.encode("ascii")).encrypt(
        nonce.encode("ascii"), plaintext.encode("utf-8"), associated_data.encode("utf-8"))
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
        "associated_data": associated_data,
        "nonce": nonce,
    }
