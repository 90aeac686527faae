"""The upload-time check of a leaf: the service accepts signatures only under its own leaves.

Issued by the service's CA, valid now, and issued to the very caller and namespace that
upload it. The service maps each refusal to its own problem document.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from signer.provenance import Provenance
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
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise LeafMalformed("the certificate has no subject alternative name") from exc
    # A github-kind leaf names the job's workflow beside the caller's identity.
    leaf_identities = san.get_values_for_type(x509.UniformResourceIdentifier)
    if not leaf_identities:
        raise LeafMalformed("the certificate has no URI identity")
    if Provenance.from_certificate(cert).namespace != namespace \
            or identity not in leaf_identities:
        raise NotTheCallers("the certificate was issued to another identity or namespace")
