"""The upload-time check of a leaf: the service accepts signatures only under its own leaves.

Issued by the service's CA, valid now, and issued to the very caller and namespace that
upload it; and the upload proves the leaf's key (a signature over the digest, or a DSSE
envelope over its PAE). The service maps each refusal to its own problem document.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from signer import dsse
from signer.provenance import Provenance
from signer.sigstore_json import DsseEnvelope
from signer.verification.windows import within


class LeafRefused(ValueError):
    """Why an uploaded leaf is not one the service may store a signature under."""


class NotIssuedByUs(LeafRefused):
    pass


class LeafExpired(LeafRefused):
    def __init__(self, not_after: datetime) -> None:
        super().__init__(f"the certificate expired at {not_after.isoformat()}")
        self.not_after = not_after


class LeafMalformed(LeafRefused):
    pass


class NotTheCallers(LeafRefused):
    pass


def check_own_leaf(cert: x509.Certificate, ca_certificate: x509.Certificate, identity: str,
                   namespace: str, now: datetime) -> None:
    """Raises a `LeafRefused` subclass unless ``cert`` is ours, valid ``now`` and the caller's."""
    try:
        cert.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise NotIssuedByUs("the certificate was not issued by this service's CA") from exc
    if not within(cert.not_valid_before_utc, cert.not_valid_after_utc, now):
        raise LeafExpired(cert.not_valid_after_utc)
    if Provenance.from_certificate(cert).namespace != namespace \
            or identity not in _uri_identities(cert):
        raise NotTheCallers("the certificate was issued to another identity or namespace")


def own_leaf_holder(cert: x509.Certificate, ca_certificate: x509.Certificate, now: datetime
                    ) -> tuple[str, str]:
    """For an upload that carries no credentials (Rekor's API): the identity and namespace
    ``cert`` was issued to, if it is ours and valid ``now``; raises a `LeafRefused` subclass.

    Whoever signs with the leaf's key holds it; that the signature verifies is the caller's
    check. Issuance is checked before anything of the certificate is read.
    """
    try:
        cert.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise NotIssuedByUs("the certificate was not issued by this service's CA") from exc
    try:
        # The caller's identity is the last URI SAN: a github-kind leaf names the job's
        # workflow first, then the token's subject (signing.leaf_identities).
        identity = _uri_identities(cert)[-1]
        namespace = Provenance.from_certificate(cert).namespace
    except ValueError as exc:
        raise LeafMalformed(str(exc)) from exc
    if namespace is None:
        raise LeafMalformed("the certificate names no namespace")
    check_own_leaf(cert, ca_certificate, identity, namespace, now)
    return identity, namespace


def _uri_identities(cert: x509.Certificate) -> list[str]:
    """The leaf's URI SANs, in order; a leaf without one is malformed."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise LeafMalformed("the certificate has no subject alternative name") from exc
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if not uris:
        raise LeafMalformed("the certificate has no URI identity")
    return list(uris)


def signs_digest(key: object, signature: bytes, digest: bytes) -> bool:
    """Whether ``signature`` is the ECDSA (prehashed SHA-256) signature of ``digest`` by ``key``
    — the upload's proof that its sender holds the leaf's (or the CSR's) key."""
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


def envelope_refusal(key: object, envelope: DsseEnvelope) -> str | None:
    """Why ``envelope`` is not signed by ``key`` over its PAE (an attestation upload's proof
    that its sender holds the leaf's key), or None when it is."""
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return "the certificate's key is not an ECDSA key"
    try:
        dsse.verify_signature(envelope, key)
    except dsse.DsseError as exc:
        return str(exc)
    return None
