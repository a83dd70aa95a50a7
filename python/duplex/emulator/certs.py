"""Per-run self-signed TLS certificate for the emulator.

The google-genai SDK always dials ``wss://`` for API-key clients, so the emulator must
speak TLS with a certificate the client trusts (``live_protocol.md`` §2, Recipe A). A new
RSA key and a certificate valid for ``IP:127.0.0.1`` and ``DNS:localhost`` are made for
every emulator run and written to a private temporary folder.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertificateFiles:
    """Paths of a generated certificate and its private key (PEM), and their folder."""

    cert_path: Path
    key_path: Path
    directory: Path
    owns_directory: bool = True

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context that presents this certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert_path), str(self.key_path))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client-side TLS context that trusts this certificate (and only it)."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def remove(self) -> None:
        """Deletes the certificate and key, and their folder if it was made for them."""
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            for path in (self.cert_path, self.key_path):
                path.unlink(missing_ok=True)


def generate_certificate(directory: str | os.PathLike[str] | None = None, *, days: int = 2) -> CertificateFiles:
    """Creates a fresh key and a self-signed certificate for 127.0.0.1 / localhost.

    Args:
        directory: where to write ``cert.pem`` and ``key.pem``; a new private temporary
            folder when None.
        days: validity of the certificate.

    Returns:
        The paths of the written files.
    """
    owns = directory is None
    folder = Path(tempfile.mkdtemp(prefix="duplex-emulator-")) if owns else Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    # P-256 keys are generated in well under a millisecond (RSA-2048 takes ~100 ms).
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "duplex Live API emulator")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        # A CA-flagged self-signed certificate can be used directly as a trust anchor
        # (cafile=...), which is what OpenSSL expects from SSL_CERT_FILE.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "cert.pem"
    key_path = folder / "key.pem"
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CertificateFiles(cert_path=cert_path, key_path=key_path, directory=folder, owns_directory=owns)
