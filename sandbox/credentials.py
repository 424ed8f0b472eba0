"""The sandbox's identities and keys: generated into the state directory at first start, reused later."""
import datetime
import json
import os
import secrets
import string
from dataclasses import dataclass

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


@dataclass
class Credentials:
    """Everything secret or identifying the sandbox shares with the service it serves."""

    state_dir: str
    mchid: str
    appid: str
    app_secret: str
    apiv3_key: str
    merchant_key: object
    merchant_cert: x509.Certificate
    public_key_id: str
    pubkey_key: object
    cert_key: object
    platform_cert: x509.Certificate

    @property
    def merchant_serial(self):
        """Serial number of the merchant API certificate, uppercase hex."""
        return format(self.merchant_cert.serial_number, "X")

    @property
    def platform_serial(self):
        """Serial number of the platform certificate, uppercase hex."""
        return format(self.platform_cert.serial_number, "X")

    def signing_key(self, mode):
        """(private key, Wechatpay-Serial) for 'pubkey' (platform public-key mode) or 'cert' mode."""
        if mode == "pubkey":
            return self.pubkey_key, self.public_key_id
        return self.cert_key, self.platform_serial

    def path(self, name):
        """Absolute path of one of the generated files."""
        return os.path.abspath(os.path.join(self.state_dir, FILES[name]))


def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _pem_private(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _self_signed(key, common_name, organization):
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=5 * 365))
            .sign(key, hashes.SHA256()))


def _generate(state_dir):
    """Create every key, certificate and identity file (mode 0600)."""
    identity = {
        "mchid": "1" + random_text(9, string.digits),
        "appid": "wx" + secrets.token_hex(8),
        "app_secret": secrets.token_hex(16),
        "public_key_id": "PUB_KEY_ID_01" + random_text(28, string.digits),
    }
    merchant_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pubkey_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    merchant_cert = _self_signed(merchant_key, identity["mchid"], "WeChat Pay sandbox merchant")
    platform_cert = _self_signed(cert_key, "Tenpay.com Root CA sandbox", "WeChat Pay sandbox platform")
    pem = serialization.Encoding.PEM
    files = {
        "merchant_key": _pem_private(merchant_key),
        "merchant_cert": merchant_cert.public_bytes(pem),
        "pubkey_key": _pem_private(pubkey_key),
        "pubkey_public": pubkey_key.public_key().public_bytes(
            pem, serialization.PublicFormat.SubjectPublicKeyInfo),
        "cert_key": _pem_private(cert_key),
        "cert": platform_cert.public_bytes(pem),
        "apiv3_key": random_text(32).encode("ascii"),
        "identity": json.dumps(identity, indent=2).encode("utf-8"),
    }
    # The identity file goes last: its presence marks a complete set.
    for name in sorted(files, key=lambda n: n == "identity"):
        _write_private(os.path.join(state_dir, FILES[name]), files[name])


def load_or_create(state_dir):
    """Load the credentials from `state_dir`, generating them first if they are not there yet."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    if not os.path.exists(os.path.join(state_dir, FILES["identity"])):
        _generate(state_dir)

    def read(name):
        with open(os.path.join(state_dir, FILES[name]), "rb") as fh:
            return fh.read()

    identity = json.loads(read("identity"))
    return Credentials(
        state_dir=os.path.abspath(state_dir),
        mchid=identity["mchid"],
        appid=identity["appid"],
        app_secret=identity["app_secret"],
        apiv3_key=read("apiv3_key").decode("ascii").strip(),
        merchant_key=serialization.load_pem_private_key(read("merchant_key"), None),
        merchant_cert=x509.load_pem_x509_certificate(read("merchant_cert")),
        public_key_id=identity["public_key_id"],
        pubkey_key=serialization.load_pem_private_key(read("pubkey_key"), None),
        cert_key=serialization.load_pem_private_key(read("cert_key"), None),
        platform_cert=x509.load_pem_x509_certificate(read("cert")),
    )


def write_service_env(creds, base_url):
    """Write STATE_DIR/service.env: the service's settings for talking to this sandbox."""
    lines = [
        "# Written by `python -m sandbox` at every start. The keys beside it are generated once; never commit them.",
        f"# Platform certificate (certificate mode, as served by /v3/certificates): {creds.path('cert')}",
        f"# Platform certificate serial: {creds.platform_serial}",
        f"WECHAT_APPID={creds.appid}",
        f"WECHAT_APP_SECRET={creds.app_secret}",
        f"WECHAT_API_BASE={base_url}",
        f"WECHATPAY_MCHID={creds.mchid}",
        f"WECHATPAY_CERT_SERIAL_NO={creds.merchant_serial}",
        f"WECHATPAY_PRIVATE_KEY_FILE={creds.path('merchant_key')}",
        f"WECHATPAY_APIV3_KEY_FILE={creds.path('apiv3_key')}",
        f"WECHATPAY_PUBLIC_KEY_FILE={creds.path('pubkey_public')}",
        f"WECHATPAY_PUBLIC_KEY_ID={creds.public_key_id}",
        f"WECHATPAY_GATEWAY={base_url}",
    ]
    _write_private(os.path.join(creds.state_dir, "service.env"), ("\n".join(lines) + "\n").encode("utf-8"))
