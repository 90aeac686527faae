"""RFC 3161 Time-Stamp Authority: answers TimeStampReq with signed TimeStampResp tokens.

A granted token is assembled from DER bytes: everything that is the same for every token
(policy, accuracy, TSA name, signer identifier, algorithm identifiers, certificate,
content-type and ESS signing-certificate-v2 attributes) is encoded once in the constructor,
with asn1crypto, and a token only encodes its own fields (serial number, genTime, nonce,
message imprint, messageDigest attribute, signature) and the lengths around them, then
makes one ECDSA signature with ``cryptography``. Requests are parsed, and rejections built,
with asn1crypto. The key is a :class:`~signer.service.keys.KeySigner` (ECDSA: the SignerInfo
says ecdsa-with-SHA256).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from signer.provenance import PROJECT_ARC
from signer.service.keys import KeySigner
from signer.transparency.sct import der_element, der_generalized_time, der_integer

# Our own arc (docs/design.md), .2 = timestamping, .2.1 = this TSA's first policy.
DEFAULT_POLICY_OID = f"{PROJECT_ARC}.2.1"

# Digest lengths of the imprint algorithms we accept; anything weaker is refused (badAlg).
ACCEPTED_IMPRINT_DIGESTS = {"sha256": 32, "sha384": 48, "sha512": 64}

# Unique per token without coordination between replicas; RFC 3161 allows up to 160 bits.
SERIAL_NUMBER_BITS = 128
# Nonce of the tokens the service requests for itself, as `openssl ts -query` uses.
NONCE_BITS = 64
# genTime is truncated to whole seconds (sigstore-js accepts 0 or 3 fractional digits only),
# so the time is good to one second.
ACCURACY_SECONDS = 1
TST_INFO_VERSION = 1
TIME_STAMP_REQ_VERSION = 1


class TimestampRequestError(ValueError):
    """The request is not a DER TimeStampReq; there is nothing to reply to."""


@dataclass(frozen=True)
class _Request:
    """The fields of a TimeStampReq the TSA looks at, read once at the boundary."""

    version: int
    imprint: bytes  # the MessageImprint's value, echoed (in DER)
    algorithm: str
    algorithm_has_parameters: bool
    digest_length: int
    policy: str | None
    has_extensions: bool
    nonce: int | None
    cert_req: bool


class _TimeStampResp(tsp.TimeStampResp):  # type: ignore[misc]
    # asn1crypto makes timeStampToken mandatory; RFC 3161 2.4.2 has it OPTIONAL, and a
    # rejection carries none.
    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class TimestampAuthority:
    def __init__(
        self,
        signer: KeySigner,
        chain: list[x509.Certificate],
        policy_oid: str = DEFAULT_POLICY_OID,
    ) -> None:
        _check_key_and_chain(signer, chain)
        self._signer = signer
        self._policy = core.ObjectIdentifier(policy_oid)
        self._der = _ConstantDer.build(chain[0].public_bytes(serialization.Encoding.DER),
                                       self._policy)

    def respond(self, request_der: bytes) -> bytes:
        """Answer one DER TimeStampReq with a DER TimeStampResp (granted or rejection)."""
        request = _parse_request(request_der)
        refusal = self._refusal(request)
        if refusal is not None:
            return _dump(_rejection(*refusal))
        return self._grant(request.imprint, request.nonce, request.cert_req)

    def timestamp(self, data: bytes) -> bytes:
        """A granted DER TimeStampResp over SHA-256(data), with the TSA certificate and a nonce."""
        digest = der_element(0x04, hashlib.sha256(data).digest())  # OCTET STRING
        imprint = der_element(0x30, self._der.sha256 + digest)
        return self._grant(imprint, secrets.randbits(NONCE_BITS), cert_req=True)

    def _refusal(self, request: _Request) -> tuple[str, str] | None:
        """(failInfo, statusString) when the request is well-formed but not acceptable."""
        if request.version != TIME_STAMP_REQ_VERSION:
            return "bad_data_format", f"Unsupported TimeStampReq version {request.version}."
        expected_length = ACCEPTED_IMPRINT_DIGESTS.get(request.algorithm)
        if expected_length is None or request.algorithm_has_parameters:
            return (
                "bad_alg",
                f"Unsupported message imprint algorithm {request.algorithm}; "
                "use SHA-256, SHA-384 or SHA-512 without parameters.",
            )
        if request.digest_length != expected_length:
            return (
                "bad_data_format",
                f"A {request.algorithm} message imprint is {expected_length} bytes, "
                f"got {request.digest_length}.",
            )
        if request.policy is not None and request.policy != self._policy.dotted:
            return (
                "unaccepted_policy",
                f"Policy {request.policy} is not offered; this TSA issues under "
                f"{self._policy.dotted} (or send no policy).",
            )
        if request.has_extensions:
            return "unaccepted_extensions", "No TimeStampReq extensions are supported."
        return None

    def _grant(self, imprint: bytes, nonce: int | None, cert_req: bool) -> bytes:
        # Positive, and at most 16 DER content bytes (no sign-padding byte).
        serial = secrets.randbits(SERIAL_NUMBER_BITS - 1) + 1
        gen_time = datetime.now(UTC).replace(microsecond=0)
        tst_info = self._der.tst_info(imprint, serial, gen_time, nonce)
        signed_data = self._der.signed_data(tst_info, self._signer_info(tst_info), cert_req)
        return self._der.granted(signed_data)

    def _signer_info(self, tst_info: bytes) -> bytes:
        message_digest = der_element(0x04, hashlib.sha256(tst_info).digest())
        signed_attrs = self._der.signed_attrs(message_digest)
        # The signature covers the attributes' DER as a universal SET (tag 0x31), not the
        # [0] IMPLICIT form they take in SignerInfo.
        return self._der.signer_info(signed_attrs, self._signer.sign(signed_attrs))


@dataclass(frozen=True)
class _ConstantDer:
    """The DER of everything a granted response shares with every other, and the assembly of
    one response around its own fields: a token costs a few byte joins, not an ASN.1 build."""

    sha256: bytes  # AlgorithmIdentifier
    tst_info_head: bytes  # version, policy
    accuracy: bytes
    tsa_name: bytes  # [0] EXPLICIT GeneralName
    content_type_attr: bytes
    message_digest_type: bytes  # the attribute's OID
    signing_certificate_attr: bytes
    signer_info_head: bytes  # version, sid, digestAlgorithm
    signature_algorithm: bytes
    signed_data_head: bytes  # version, digestAlgorithms
    tst_info_type: bytes
    certificates: bytes  # [0] IMPLICIT CertificateSet
    signed_data_type: bytes
    granted_status: bytes

    @classmethod
    def build(cls, leaf_der: bytes, policy: core.ObjectIdentifier) -> _ConstantDer:
        leaf = asn1_x509.Certificate.load(leaf_der)
        sha256 = algos.DigestAlgorithm({"algorithm": "sha256"}).dump()
        # ESSCertIDv2 with hashAlgorithm left out: SHA-256 is its DEFAULT, so DER omits it.
        signing_certificate = cms.CMSAttribute(
            {
                "type": "signing_certificate_v2",
                "values": [{"certs": [{"cert_hash": hashlib.sha256(leaf_der).digest()}]}],
            }
        )
        sid = cms.SignerIdentifier(
            "issuer_and_serial_number",
            {"issuer": leaf.issuer, "serial_number": leaf.serial_number},
        )
        certificates = cms.CertificateSet([cms.CertificateChoices("certificate", leaf)])
        tsa_name = asn1_x509.GeneralName("directory_name", leaf.subject)
        return cls(
            sha256=sha256,
            tst_info_head=core.Integer(TST_INFO_VERSION).dump() + policy.dump(),
            accuracy=tsp.Accuracy({"seconds": ACCURACY_SECONDS}).dump(),
            tsa_name=der_element(0xA0, tsa_name.dump()),
            content_type_attr=cms.CMSAttribute(
                {"type": "content_type", "values": ["tst_info"]}
            ).dump(),
            message_digest_type=cms.CMSAttributeType("message_digest").dump(),
            signing_certificate_attr=signing_certificate.dump(),
            signer_info_head=cms.CMSVersion("v1").dump() + sid.dump() + sha256,
            signature_algorithm=algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}).dump(),
            signed_data_head=cms.CMSVersion("v3").dump() + der_element(0x31, sha256),
            tst_info_type=cms.ContentType("tst_info").dump(),
            certificates=der_element(0xA0, certificates.contents),
            signed_data_type=cms.ContentType("signed_data").dump(),
            granted_status=tsp.PKIStatusInfo({"status": "granted"}).dump(),
        )

    def tst_info(
        self, imprint: bytes, serial: int, gen_time: datetime, nonce: int | None
    ) -> bytes:
        nonce_der = b"" if nonce is None else der_integer(nonce)
        return der_element(0x30, b"".join((
            self.tst_info_head, imprint, der_integer(serial), der_generalized_time(gen_time),
            self.accuracy, nonce_der, self.tsa_name,
        )))

    def signed_attrs(self, message_digest: bytes) -> bytes:
        """The SET OF Attribute that is signed, ``message_digest`` an OCTET STRING."""
        digest_attr = der_element(
            0x30, self.message_digest_type + der_element(0x31, message_digest)
        )
        return _der_set_of(self.content_type_attr, digest_attr, self.signing_certificate_attr)

    def signer_info(self, signed_attrs: bytes, signature: bytes) -> bytes:
        # signedAttrs is [0] IMPLICIT: the same length and contents under tag 0xA0.
        return der_element(0x30, b"".join((
            self.signer_info_head, b"\xa0" + signed_attrs[1:], self.signature_algorithm,
            der_element(0x04, signature),
        )))

    def signed_data(self, tst_info: bytes, signer_info: bytes, cert_req: bool) -> bytes:
        content = der_element(0xA0, der_element(0x04, tst_info))  # [0] EXPLICIT OCTET STRING
        encapsulated = der_element(0x30, self.tst_info_type + content)
        return der_element(0x30, b"".join((
            self.signed_data_head, encapsulated, self.certificates if cert_req else b"",
            der_element(0x31, signer_info),
        )))

    def granted(self, signed_data: bytes) -> bytes:
        """The TimeStampResp: status granted, and the ContentInfo around ``signed_data``."""
        token = der_element(0x30, self.signed_data_type + der_element(0xA0, signed_data))
        return der_element(0x30, self.granted_status + token)


def _der_set_of(*elements: bytes) -> bytes:
    """DER SET OF: the elements in ascending order of their encodings (X.690 11.6)."""
    return der_element(0x31, b"".join(sorted(elements)))


def _parse_request(request_der: bytes) -> _Request:
    try:
        request = tsp.TimeStampReq.load(request_der, strict=True)
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]
        return _Request(
            version=int(request["version"]),
            # Re-encoded: a BER length in the request must not make the TSTInfo non-DER.
            imprint=imprint.dump(force=True),
            algorithm=algorithm["algorithm"].native,
            # An explicit NULL is what `openssl ts -query` sends; it means "no parameters".
            algorithm_has_parameters=algorithm["parameters"].native is not None,
            digest_length=len(imprint["hashed_message"].native),
            policy=request["req_policy"].dotted if request["req_policy"] else None,
            has_extensions=bool(request["extensions"]),
            nonce=request["nonce"].native,
            cert_req=bool(request["cert_req"].native),
        )
    except (ValueError, TypeError, KeyError) as e:
        raise TimestampRequestError(
            f"The body is not a DER-encoded RFC 3161 TimeStampReq ({e}); send the output of "
            "`openssl ts -query -sha256 -cert` with Content-Type application/timestamp-query."
        ) from e


def _rejection(fail_info: str, text: str) -> Any:
    return _TimeStampResp(
        {"status": {"status": "rejection", "status_string": [text], "fail_info": {fail_info}}}
    )


def _dump(response: Any) -> bytes:
    der: bytes = response.dump()
    return der


def _check_key_and_chain(signer: KeySigner, chain: list[x509.Certificate]) -> None:
    """Refuse to start with a key, chain or leaf that would produce unverifiable tokens."""
    if not chain:
        raise ValueError("The TSA chain is empty; pass the TSA certificate first, then its CAs.")
    if not isinstance(signer.public_key, ec.EllipticCurvePublicKey):
        # ValueError, as for every other start-up refusal of the TSA's configuration.
        raise ValueError(  # noqa: TRY004
            "The TSA key must be an ECDSA key: its tokens say ecdsa-with-SHA256.")
    leaf = chain[0]
    if signer.public_key != leaf.public_key():
        raise ValueError(
            f"The TSA key does not match the public key of the TSA certificate "
            f"{leaf.subject.rfc4514_string()!r}; configure the key it was issued for."
        )
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        eku = None
    # RFC 3161 2.3: exactly one purpose, id-kp-timeStamping, in a critical extension.
    if eku is None or not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise ValueError(
            f"The TSA certificate {leaf.subject.rfc4514_string()!r} must carry a critical "
            "ExtendedKeyUsage with timeStamping as its only purpose (RFC 3161 section 2.3); "
            "reissue it with that extension."
        )
    for child, issuer in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as e:
            raise ValueError(
                f"The TSA chain is out of order: {child.subject.rfc4514_string()!r} was not "
                f"issued by {issuer.subject.rfc4514_string()!r}; list the chain leaf first, "
                "root last."
            ) from e
