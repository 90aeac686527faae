"""Sigstore's names for key kinds (protobuf-specs ``PublicKeyDetails``) and their hashes.

Trust roots, Rekor v2 verifiers and signing configs name a key by these strings; a key's
signature is made over the hash its details pair it with (ECDSA P-256 with SHA-256, P-384 with
SHA-384, P-521 with SHA-512; Ed25519 signs the message itself).
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PublicKeyTypes = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_ECDSA: Final = {
    "secp256r1": ("PKIX_ECDSA_P256_SHA_256", hashes.SHA256),
    "secp384r1": ("PKIX_ECDSA_P384_SHA_384", hashes.SHA384),
    "secp521r1": ("PKIX_ECDSA_P521_SHA_512", hashes.SHA512),
}
_RSA_SIZES: Final = (2048, 3072, 4096)
# The signature algorithm of P-256 keys, made once: immutable, and ~2 us to make per use.
ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())


def key_details(key: PublicKeyTypes) -> str:
    """The ``PublicKeyDetails`` name of a key; raises `ValueError` for kinds Sigstore lacks."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "PKIX_ED25519"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _ecdsa(key.curve)[0]
    if key.key_size not in _RSA_SIZES:
        raise ValueError(f"Sigstore has no key details for {key.key_size}-bit RSA")
    return f"PKIX_RSA_PKCS1V15_{key.key_size}_SHA256"


def ecdsa_hash(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    """The hash an ECDSA key on ``curve`` signs with."""
    return _ecdsa(curve)[1]()


def _ecdsa(curve: ec.EllipticCurve) -> tuple[str, type[hashes.HashAlgorithm]]:
    found = _ECDSA.get(curve.name)
    if found is None:
        raise ValueError(f"Sigstore has no key details for ECDSA curve {curve.name}")
    return found
