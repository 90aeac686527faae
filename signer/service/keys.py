"""CA, TSA and log keys on disk: mode 0600, encrypted when a passphrase is configured.

The key files sit behind :class:`FileKey`; a KMS or PKCS#11 key can replace it later by
offering the same two things: the private key object that signs, and its certificate.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.errors import UsageError

KEY_FILE_MODE = 0o600


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_key(path: Path, key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    # O_EXCL: never overwrite an existing key by accident; the mode is set at creation, so
    # the key is never readable by others, not even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)


def read_key(path: Path, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise UsageError(
            f"The key file {path} has mode {mode:o}: others can read it.",
            f"Run 'chmod 600 {path}'.",
        )
    data = path.read_bytes()
    encrypted = b"ENCRYPTED" in data.split(b"\n", 1)[0]
    if encrypted and not passphrase:
        raise UsageError(
            f"The key file {path} is encrypted.", "Set SIGNER_CA_PASSPHRASE to its passphrase."
        )
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"Cannot load the key file {path}: wrong passphrase or damaged file.",
            "Check SIGNER_CA_PASSPHRASE.",
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UsageError(f"The key file {path} does not hold an ECDSA key.")
    return key


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def read_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())
