"""A key that is not a file: what a PKCS#11 token or a KMS is to the service.

It signs in memory, but it is not a :class:`~signer.service.keys.FileKey`, so
``sign_certificate`` takes the path every non-file key takes (sign the TBS, assemble the
certificate). It counts its signatures, so a test sees that it, not some other key, signed.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signer.service.keys import PublicKey


class RemoteKey:
    def __init__(self, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | None = None
                 ) -> None:
        self._key = key or ec.generate_private_key(ec.SECP256R1())
        self.signatures = 0

    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        self.signatures += 1
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))
