"""The keys that sign for the service — CA, TSA and both logs — behind one small protocol.

Issuance, timestamping, checkpoints, SCTs and inclusion promises hold a :class:`KeySigner`:
a public key and ``sign(data)``. Keys are made and found by a :class:`KeyStore`
(``generate(name)``, ``load(name)``); :func:`key_store` picks the one this service uses.
The default is :class:`KeyFiles`: PEM files of mode 0600 under the keys directory, encrypted
when a passphrase is configured, each read once into a :class:`FileKey` that signs
in-process. A data directory whose keys directory holds ``pkcs11.json`` has its keys on a
PKCS#11 token instead (:mod:`signer.service.pkcs11`); a KMS key would be another
``KeySigner`` from another ``KeyStore`` (docs/keys.md); nothing that signs changes. No
private key object leaves this module.

Certificates: cryptography's ``CertificateBuilder.sign`` wants a private key object, so
:func:`sign_certificate` signs a builder with any ``KeySigner``: a ``FileKey`` directly, any
other by signing the builder's TBSCertificate and assembling the certificate around it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signer.errors import UsageError
from signer.key_details import ECDSA_SHA256
from signer.transparency.sct import der_element

KEY_FILE_MODE = 0o600

# The public keys a KeySigner may have: ECDSA (P-256 today), and Ed25519 for what comes next.
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class KeySigner(Protocol):
    """A signing key, wherever it lives: its public key, and signatures in its scheme."""

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes:
        """The key's signature over ``data``: ECDSA → DER ECDSA-SHA256; Ed25519 → 64 bytes."""
        ...


class KeyStore(Protocol):
    """Where keys are made and found, by name (``root``, ``tsa``, ``tlog-20260101T…``)."""

    def generate(self, name: str) -> KeySigner: ...

    def load(self, name: str) -> KeySigner: ...

    def exists(self, name: str) -> bool: ...

    def describe(self, name: str) -> str:
        """Where the key is, for the key ring and the operator: ``tsa.key``, ``pkcs11:tsa``."""
        ...



class FileKey:
    """An ECDSA key read from its file (or just written to it), held in memory: each signature
    is one call into the loaded key."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self._public = key.public_key()

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ECDSA_SHA256)


@dataclass(frozen=True)
class KeyFiles:
    """The file key store: ``<directory>/<name>.key``, mode 0600, PKCS#8 PEM, encrypted with
    ``passphrase`` if there is one."""

    directory: Path
    passphrase: bytes | None = field(repr=False)  # never in a log line or a traceback

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def generate(self, name: str) -> FileKey:
        """A new P-256 key, written to its file before it is used."""
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(self.path(name), key, self.passphrase)
        return FileKey(key)

    def load(self, name: str) -> FileKey:
        return FileKey(_read_key(self.path(name), self.passphrase))

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def describe(self, name: str) -> str:
        return self.path(name).name


def key_store(directory: Path, passphrase: bytes | None) -> KeyStore:
    """The service's key store: a PKCS#11 token if ``pkcs11.json`` refers to one (its PIN in
    ``SIGNER_PKCS11_PIN``), else the key files. The one place a backend is chosen."""
    if (directory / "pkcs11.json").exists():
        from signer.service import pkcs11  # python-pkcs11 is needed only then

        reference = pkcs11.Reference.read(directory)
        assert reference is not None
        return pkcs11.TokenKeys(directory, reference)
    return KeyFiles(directory, passphrase)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> None:
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
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError as exc:
        raise UsageError(f"The key file {path} exists already; it is never overwritten.",
                         "Move it away if it is left over from an interrupted run.") from exc
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)


def _read_key(path: Path, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
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


# --- certificates -------------------------------------------------------------------------

# AlgorithmIdentifier DER of each scheme a KeySigner signs in (RFC 5758 §3.2: no parameters;
# RFC 8410 §3).
_ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_ED25519 = bytes.fromhex("300506032b6570")


def sign_certificate(builder: x509.CertificateBuilder, signer: KeySigner) -> x509.Certificate:
    """The certificate ``builder`` describes, signed by ``signer`` (ECDSA-SHA256 or Ed25519).

    A key that is not in this process (a token, a KMS) signs the TBSCertificate itself: the
    builder is first signed with a throwaway key of the same scheme, which yields the exact
    TBS bytes (they name the signature algorithm but hold nothing of the key), and the
    certificate is assembled around the signer's signature (`certificate_der`).
    """
    if isinstance(signer, FileKey):
        return builder.sign(signer._key, hashes.SHA256())  # in-process: the fast path
    if isinstance(signer.public_key, ec.EllipticCurvePublicKey):
        tbs = builder.sign(_throwaway_ecdsa(), hashes.SHA256()).tbs_certificate_bytes
    else:
        tbs = builder.sign(_throwaway_ed25519(), None).tbs_certificate_bytes
    return x509.load_der_x509_certificate(certificate_der(signer, tbs))


def signature_algorithm(public: PublicKey) -> bytes:
    """The AlgorithmIdentifier DER of what ``public``'s KeySigner signs."""
    return _ECDSA_WITH_SHA256 if isinstance(public, ec.EllipticCurvePublicKey) else _ED25519


def certificate_der(signer: KeySigner, tbs: bytes) -> bytes:
    """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT
    STRING }, signed by ``signer`` (``tbs`` names its `signature_algorithm`). A key outside
    this process is checked against its public key first: a faulty backend must not yield an
    unverifiable certificate."""
    signature = signer.sign(tbs)
    public = signer.public_key
    if not isinstance(signer, FileKey):
        try:
            if isinstance(public, ec.EllipticCurvePublicKey):
                public.verify(signature, tbs, ECDSA_SHA256)
            else:
                public.verify(signature, tbs)
        except InvalidSignature:
            raise ValueError("The signing key's signature over the certificate does not "
                             "verify with its public key; check the key backend.") from None
    return der_element(0x30, tbs + signature_algorithm(public)
                       + der_element(0x03, b"\x00" + signature))


@functools.cache
def _throwaway_ecdsa() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def _throwaway_ed25519() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def read_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())
