"""Key changes while the sandbox runs, as a merchant makes them on WeChat Pay's merchant platform.

- A new APIv3 key: notifications created from now on, and certificate lists, are encrypted with it. Notifications
  created before keep the bytes they were made with (encrypted with the old key) for their whole 24 h 4 min of
  redeliveries, as WeChat Pay's do.
- A new platform public key (a new PUB_KEY_ID): notifications in `pubkey` mode are signed with it from now on; an
  answer to a request whose `Wechatpay-Serial` names an earlier public key is still signed with that one.
- A new platform certificate: it signs from now on in `cert` mode; the earlier ones stay listed by
  `/v3/certificates` (valid until they expire), as during WeChat Pay's overlap.
- A new merchant API certificate: requests signed with it are accepted, and so are those signed with the earlier
  ones until they are revoked.

Each writes new files (mode 0600) beside the old ones, then `keyring.json`, then `service.env`.
"""
import string

from cryptography.hazmat.primitives import serialization

from .credentials import (
    MERCHANT_ORGANIZATION, PLATFORM_NAME, MerchantCertificate, PlatformCertificate, PublicKey, new_public_key_id,
    new_rsa_key, pem_private, pem_public, save_keyring, self_signed, write_private, write_service_env,
)
from .crypto import random_text
from .errors import SandboxError

APIV3_ALPHABET = string.ascii_letters + string.digits


def _generation(items):
    return len(items) + 1


def new_apiv3_key(creds, key=None):
    """A new APIv3 key: `key` (32 letters or digits, as the merchant platform asks) or a generated one."""
    if key is None:
        key = random_text(32, APIV3_ALPHABET)
    if not isinstance(key, str) or len(key) != 32 or any(c not in APIV3_ALPHABET for c in key):
        raise SandboxError(400, "INVALID_REQUEST", "APIv3 密钥须为 32 位字母或数字", {"field": "apiv3_key"})
    if key in (k for k, _ in creds.apiv3_keys):
        raise SandboxError(409, "KEY_REUSED", "新的 APIv3 密钥不能与用过的相同", {"field": "apiv3_key"})
    name = f"apiv3_key.{_generation(creds.apiv3_keys)}.txt"
    write_private(creds.file(name), key.encode("ascii"))
    creds.apiv3_keys.append((key, name))


def new_public_key(creds):
    """A new platform public key with a new PUB_KEY_ID."""
    n = _generation(creds.public_keys)
    key = new_rsa_key()
    files = {"private": f"platform_pubkey_private_key.{n}.pem", "public": f"platform_public_key.{n}.pem"}
    write_private(creds.file(files["private"]), pem_private(key))
    write_private(creds.file(files["public"]), pem_public(key))
    creds.public_keys.append(PublicKey(new_public_key_id(), key, files))


def new_platform_certificate(creds):
    """A new platform certificate (new key, new serial)."""
    n = _generation(creds.platform_certs)
    key = new_rsa_key()
    cert = self_signed(key, *PLATFORM_NAME)
    files = {"private": f"platform_cert_private_key.{n}.pem", "cert": f"platform_cert.{n}.pem"}
    write_private(creds.file(files["private"]), pem_private(key))
    write_private(creds.file(files["cert"]), cert.public_bytes(serialization.Encoding.PEM))
    creds.platform_certs.append(PlatformCertificate(key, cert, files))


def new_merchant_certificate(creds):
    """A new merchant API certificate and private key (the merchant's CSR, signed)."""
    n = _generation(creds.merchant_certs)
    key = new_rsa_key()
    cert = self_signed(key, creds.mchid, MERCHANT_ORGANIZATION)
    files = {"private": f"merchant_private_key.{n}.pem", "cert": f"merchant_cert.{n}.pem"}
    write_private(creds.file(files["private"]), pem_private(key))
    write_private(creds.file(files["cert"]), cert.public_bytes(serialization.Encoding.PEM))
    creds.merchant_certs.append(MerchantCertificate(cert, files))


def revoke_merchant_certificate(creds, serial):
    """Stop accepting requests signed with the merchant certificate of this serial (never the last one left)."""
    found = creds.merchant_certificate(serial)
    if found is None:
        raise SandboxError(404, "CERT_NOT_EXIST", "商户证书不存在或已吊销", {"serial_no": serial})
    if sum(not m.revoked for m in creds.merchant_certs) == 1:
        raise SandboxError(409, "LAST_CERTIFICATE", "至少保留一张有效的商户证书", {"serial_no": serial})
    found.revoked = True


CHANGES = {
    "apiv3-key": lambda creds, body: new_apiv3_key(creds, body.get("apiv3_key")),
    "public-key": lambda creds, body: new_public_key(creds),
    "platform-certificate": lambda creds, body: new_platform_certificate(creds),
    "merchant-certificate": lambda creds, body: new_merchant_certificate(creds),
}


def change(creds, base_url, kind, body):
    """Make one change of `kind` (a key of CHANGES), keep it (keyring.json) and rewrite service.env; the keys' view."""
    CHANGES[kind](creds, body)
    save_keyring(creds)
    write_service_env(creds, base_url)
    return view(creds)


def revoke(creds, base_url, serial):
    """Revoke a merchant certificate, keep it, rewrite service.env; the keys' view."""
    revoke_merchant_certificate(creds, serial)
    save_keyring(creds)
    write_service_env(creds, base_url)
    return view(creds)


def view(creds):
    """Every key generation, current last, as ids, serials and file paths: never a key itself."""
    return {
        "apiv3_keys": [{"generation": i + 1, "file": creds.file(name), "current": i == len(creds.apiv3_keys) - 1}
                       for i, (_, name) in enumerate(creds.apiv3_keys)],
        "public_keys": [{"id": k.id, "public_key_file": creds.file(k.files["public"]),
                         "current": k is creds.public_keys[-1]} for k in creds.public_keys],
        "platform_certificates": [{"serial_no": c.serial, "cert_file": creds.file(c.files["cert"]),
                                   "expire_time": c.cert.not_valid_after_utc.isoformat(),
                                   "current": c is creds.platform_certs[-1]} for c in creds.platform_certs],
        "merchant_certificates": [{"serial_no": m.serial, "private_key_file": creds.file(m.files["private"]),
                                   "revoked": m.revoked, "current": m.serial == creds.merchant_serial}
                                  for m in creds.merchant_certs],
        "service_env": creds.file("service.env"),
    }
