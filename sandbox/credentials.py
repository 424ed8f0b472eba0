"""The sandbox's identities and keys: generated into the state directory at first start, reused later.

Keys can change while the sandbox runs (sandbox/key_changes.py). A change writes a new generation of files beside
the old ones and lists it in `keyring.json`; the last of each list is the current one. No key file is ever
rewritten: a service still configured with the old files reads what it read before, as a merchant's files stay
put until the operator changes them.
"""
import datetime
import json
import os
import secrets
import string
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .crypto import random_text

FILES = {
    "merchant_key": "merchant_private_key.pem",
    "merchant_cert": "merchant_cert.pem",
    "pubkey_key": "platform_pubkey_private_key.pem",
    "pubkey_public": "platform_public_key.pem",
    "cert_key": "platform_cert_private_key.pem",
    "cert": "platform_cert.pem",
    "apiv3_key": "apiv3_key.txt",
    "identity": "identity.json",
}
KEYRING = "keyring.json"


@dataclass
class PublicKey:
    """A platform public key (public-key mode): its PUB_KEY_ID and the private half the sandbox signs with."""

    id: str
    private_key: object
    files: dict  # private, public: file names in the state directory


@dataclass
class PlatformCertificate:
    """A platform certificate (certificate mode) and its private key."""

    private_key: object
    cert: x509.Certificate
    files: dict  # private, cert

    @property
    def serial(self):
        """Uppercase hex serial, as `Wechatpay-Serial` carries it."""
        return format(self.cert.serial_number, "X")


@dataclass
class MerchantCertificate:
    """A merchant API certificate the sandbox accepts requests signed with (until revoked)."""

    cert: x509.Certificate
    files: dict  # private, cert
    revoked: bool = False

    @property
    def serial(self):
        """Uppercase hex serial, as the Authorization header's serial_no carries it."""
        return format(self.cert.serial_number, "X")


@dataclass
class Credentials:
    """Everything secret or identifying the sandbox shares with the service it serves; every key generation."""

    state_dir: str
    mchid: str
    appid: str
    app_secret: str
    apiv3_keys: list  # [(key, file name)], oldest first
    public_keys: list  # [PublicKey], oldest first
    platform_certs: list  # [PlatformCertificate], oldest first
    merchant_certs: list  # [MerchantCertificate], oldest first
    _turns: int = field(default=0, repr=False)

    @property
    def apiv3_key(self):
        """The current APIv3 key: new notifications and certificate lists are encrypted with it."""
        return self.apiv3_keys[-1][0]

    @property
    def public_key_id(self):
        """The current PUB_KEY_ID_..."""
        return self.public_keys[-1].id

    @property
    def platform_cert(self):
        """The current platform certificate."""
        return self.platform_certs[-1].cert

    @property
    def platform_serial(self):
        """Serial number of the current platform certificate, uppercase hex."""
        return self.platform_certs[-1].serial

    @property
    def merchant_cert(self):
        """The newest merchant certificate not revoked."""
        return self._merchant().cert

    @property
    def merchant_serial(self):
        """Serial number of the newest merchant certificate not revoked, uppercase hex."""
        return self._merchant().serial

    def _merchant(self):
        return next(m for m in reversed(self.merchant_certs) if not m.revoked)

    def merchant_certificate(self, serial):
        """The accepted (not revoked) merchant certificate with this serial, or None."""
        return next((m for m in self.merchant_certs if not m.revoked and m.serial == serial.upper()), None)

    def public_key(self, key_id):
        """The platform public key with this PUB_KEY_ID (current or earlier), or None."""
        return next((k for k in self.public_keys if k.id == key_id), None)

    def signer(self, mode, asked=None):
        """(mode, private key, Wechatpay-Serial) for 'pubkey', 'cert' or 'either' (one then the other, in turn).

        `asked` is a request's Wechatpay-Serial: naming an earlier public key, that one signs a 'pubkey' answer.
        """
        if mode == "either":
            self._turns += 1
            mode = ("pubkey", "cert")[self._turns % 2]
        if mode == "pubkey":
            key = self.public_key(asked) or self.public_keys[-1]
            return mode, key.private_key, key.id
        return mode, self.platform_certs[-1].private_key, self.platform_serial

    def path(self, name):
        """Absolute path of one of the current generation's files."""
        current = {
            "merchant_key": self._merchant().files["private"], "merchant_cert": self._merchant().files["cert"],
            "pubkey_key": self.public_keys[-1].files["private"], "pubkey_public": self.public_keys[-1].files["public"],
            "cert_key": self.platform_certs[-1].files["private"], "cert": self.platform_certs[-1].files["cert"],
            "apiv3_key": self.apiv3_keys[-1][1], "identity": FILES["identity"],
        }
        return self.file(current[name])

    def file(self, name):
        """Absolute path of a file of the state directory."""
        return os.path.abspath(os.path.join(self.state_dir, name))


def write_private(path, data):
    """Write bytes to a new or replaced file of mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def pem_private(key):
    """PKCS#8 PEM of a private key, unencrypted."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key):
    """SubjectPublicKeyInfo PEM of a private key's public half."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def new_rsa_key():
    """An RSA-2048 private key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _serial():
    """A random 159-bit serial whose top bit is set: always 40 hex digits with no leading zero, so the serial reads
    the same in `Wechatpay-Serial` (Python's hex of the number) and in a client that reads the certificate's DER bytes
    (Node's X509Certificate.serialNumber pads an odd-length one with a 0; one serial in 16 was unequal before)."""
    return secrets.randbits(159) | (1 << 158)


def self_signed(key, common_name, organization):
    """A five-year self-signed certificate for `key`, with a random serial of 40 hex digits as WeChat Pay's are."""
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(_serial())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=5 * 365))
            .sign(key, hashes.SHA256()))


PLATFORM_NAME = ("Tenpay.com Root CA sandbox", "WeChat Pay sandbox platform")
MERCHANT_ORGANIZATION = "WeChat Pay sandbox merchant"


def new_public_key_id():
    """A fresh PUB_KEY_ID_..."""
    return "PUB_KEY_ID_01" + random_text(28, string.digits)


def _generate(state_dir):
    """Create every key, certificate and identity file (mode 0600)."""
    identity = {
        "mchid": "1" + random_text(9, string.digits),
        "appid": "wx" + secrets.token_hex(8),
        "app_secret": secrets.token_hex(16),
        "public_key_id": new_public_key_id(),
    }
    merchant_key, pubkey_key, cert_key = new_rsa_key(), new_rsa_key(), new_rsa_key()
    merchant_cert = self_signed(merchant_key, identity["mchid"], MERCHANT_ORGANIZATION)
    platform_cert = self_signed(cert_key, *PLATFORM_NAME)
    pem = serialization.Encoding.PEM
    files = {
        "merchant_key": pem_private(merchant_key),
        "merchant_cert": merchant_cert.public_bytes(pem),
        "pubkey_key": pem_private(pubkey_key),
        "pubkey_public": pem_public(pubkey_key),
        "cert_key": pem_private(cert_key),
        "cert": platform_cert.public_bytes(pem),
        "apiv3_key": random_text(32).encode("ascii"),
        "identity": json.dumps(identity, indent=2).encode("utf-8"),
    }
    # The identity file goes last: its presence marks a complete set.
    for name in sorted(files, key=lambda n: n == "identity"):
        write_private(os.path.join(state_dir, FILES[name]), files[name])


def _first_keyring(identity):
    """The keyring of a state directory no key change has touched: the files of the first start."""
    return {
        "apiv3_keys": [FILES["apiv3_key"]],
        "public_keys": [{"id": identity["public_key_id"], "private": FILES["pubkey_key"],
                         "public": FILES["pubkey_public"]}],
        "platform_certificates": [{"private": FILES["cert_key"], "cert": FILES["cert"]}],
        "merchant_certificates": [{"private": FILES["merchant_key"], "cert": FILES["merchant_cert"],
                                   "revoked": False}],
    }


def keyring(creds):
    """The keyring as `keyring.json` holds it (file names and ids, no key material)."""
    return {
        "apiv3_keys": [name for _, name in creds.apiv3_keys],
        "public_keys": [{"id": k.id, **k.files} for k in creds.public_keys],
        "platform_certificates": [dict(c.files) for c in creds.platform_certs],
        "merchant_certificates": [{**m.files, "revoked": m.revoked} for m in creds.merchant_certs],
    }


def save_keyring(creds):
    """Write `keyring.json` whole (a new file renamed over the old one): a crash leaves the old or the new list."""
    path = creds.file(KEYRING)
    write_private(path + ".tmp", json.dumps(keyring(creds), indent=2).encode("utf-8"))
    os.replace(path + ".tmp", path)


def load_or_create(state_dir):
    """Load the credentials from `state_dir`, generating them first if they are not there yet."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)  # made by someone else first (a test harness, run.sh): its keys are no one else's
    if not os.path.exists(os.path.join(state_dir, FILES["identity"])):
        _generate(state_dir)

    def read(name):
        with open(os.path.join(state_dir, name), "rb") as fh:
            return fh.read()

    def private(name):
        return serialization.load_pem_private_key(read(name), None)

    identity = json.loads(read(FILES["identity"]))
    ring = json.loads(read(KEYRING)) if os.path.exists(os.path.join(state_dir, KEYRING)) \
        else _first_keyring(identity)
    return Credentials(
        state_dir=os.path.abspath(state_dir),
        mchid=identity["mchid"],
        appid=identity["appid"],
        app_secret=identity["app_secret"],
        apiv3_keys=[(read(name).decode("ascii").strip(), name) for name in ring["apiv3_keys"]],
        public_keys=[PublicKey(k["id"], private(k["private"]), {"private": k["private"], "public": k["public"]})
                     for k in ring["public_keys"]],
        platform_certs=[PlatformCertificate(private(c["private"]), x509.load_pem_x509_certificate(read(c["cert"])),
                                            {"private": c["private"], "cert": c["cert"]})
                        for c in ring["platform_certificates"]],
        merchant_certs=[MerchantCertificate(x509.load_pem_x509_certificate(read(m["cert"])),
                                            {"private": m["private"], "cert": m["cert"]}, m["revoked"])
                        for m in ring["merchant_certificates"]],
    )


def write_service_env(creds, base_url):
    """Write STATE_DIR/service.env: the service's settings for talking to this sandbox, with the current keys."""
    lines = [
        "# Written by `python -m sandbox` at every start and after every key change. The keys beside it are"
        " generated; never commit them.",
        f"# Platform certificate (certificate mode, as served by /v3/certificates): {creds.path('cert')}",
        f"# Platform certificate serial: {creds.platform_serial}",
        f"# Platform certificates served: {', '.join(c.serial for c in creds.platform_certs)}",
        f"WECHAT_APPID={creds.appid}",
        f"WECHAT_APP_SECRET={creds.app_secret}",
        f"WECHAT_API_BASE={base_url}",
        f"WECHATPAY_MCHID={creds.mchid}",
        f"WECHATPAY_CERT_SERIAL_NO={creds.merchant_serial}",
        f"WECHATPAY_PRIVATE_KEY_FILE={creds.path('merchant_key')}",
        f"WECHATPAY_APIV3_KEY_FILE={creds.path('apiv3_key')}",
    ]
    if len(creds.apiv3_keys) > 1:
        lines.append(f"WECHATPAY_APIV3_KEY_PREVIOUS_FILE={creds.file(creds.apiv3_keys[-2][1])}")
    lines += [
        f"WECHATPAY_PUBLIC_KEY_FILE={creds.path('pubkey_public')}",
        f"WECHATPAY_PUBLIC_KEY_ID={creds.public_key_id}",
        f"WECHATPAY_GATEWAY={base_url}",
    ]
    write_private(os.path.join(creds.state_dir, "service.env"), ("\n".join(lines) + "\n").encode("utf-8"))
