"""RFC 3161 Time-Stamp Authority: answers TimeStampReq with signed TimeStampResp tokens.

ASN.1 is built with asn1crypto and signed with ``cryptography``. Everything that is the same
for every token (certificate, signer identifier, ESS signing-certificate attribute, algorithm
identifiers) is built once in the constructor, so a token costs one TSTInfo, one ECDSA
signature and the encoding around them. The key is a :class:`~signer.service.keys.KeySigner`
(ECDSA: the SignerInfo says ecdsa-with-SHA256).
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
    imprint: Any  # tsp.MessageImprint, echoed as received
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
        leaf_der = chain[0].public_bytes(serialization.Encoding.DER)
        leaf = asn1_x509.Certificate.load(leaf_der)

        self._sha256 = _frozen(algos.DigestAlgorithm({"algorithm": "sha256"}))
        self._digest_algorithms = _frozen(cms.DigestAlgorithms([self._sha256]))
        self._signature_algorithm = _frozen(
            algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
        )
        self._accuracy = _frozen(tsp.Accuracy({"seconds": ACCURACY_SECONDS}))
        # Tagged as their fields are (TSTInfo.tsa [0] EXPLICIT, SignedData.certificates
        # [0] IMPLICIT), so that asn1crypto does not deep-copy them into every token.
        self._tsa_name = _frozen(asn1_x509.GeneralName("directory_name", leaf.subject), explicit=0)
        self._certificates = _frozen(
            cms.CertificateSet([cms.CertificateChoices("certificate", leaf)]), implicit=0
        )
        self._tst_info_type = cms.ContentType("tst_info")
        self._signed_data_type = cms.ContentType("signed_data")
        self._sid = _frozen(
            cms.SignerIdentifier(
                "issuer_and_serial_number",
                {"issuer": leaf.issuer, "serial_number": leaf.serial_number},
            )
        )
        self._content_type_attr = _frozen(
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]})
        )
        # ESSCertIDv2 with hashAlgorithm left out: SHA-256 is its DEFAULT, so DER omits it.
        self._signing_certificate_attr = _frozen(
            cms.CMSAttribute(
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [{"cert_hash": hashlib.sha256(leaf_der).digest()}]}],
                }
            )
        )
        self._granted = _frozen(tsp.PKIStatusInfo({"status": "granted"}))

    def respond(self, request_der: bytes) -> bytes:
        """Answer one DER TimeStampReq with a DER TimeStampResp (granted or rejection)."""
        request = _parse_request(request_der)
        refusal = self._refusal(request)
        if refusal is not None:
            return _dump(_rejection(*refusal))
        return self._grant(request.imprint, request.nonce, request.cert_req)

    def timestamp(self, data: bytes) -> bytes:
        """A granted DER TimeStampResp over SHA-256(data), with the TSA certificate and a nonce."""
        imprint = _frozen(
            tsp.MessageImprint(
                {"hash_algorithm": self._sha256, "hashed_message": hashlib.sha256(data).digest()}
            )
        )
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

    def _grant(self, imprint: Any, nonce: int | None, cert_req: bool) -> bytes:
        tst_info = tsp.TSTInfo(
            {
                "version": TST_INFO_VERSION,
                "policy": self._policy,
                "message_imprint": imprint,
                # Positive, and at most 16 DER content bytes (no sign-padding byte).
                "serial_number": secrets.randbits(SERIAL_NUMBER_BITS - 1) + 1,
                "gen_time": datetime.now(UTC).replace(microsecond=0),
                "accuracy": self._accuracy,
                "nonce": nonce,
                "tsa": self._tsa_name,
            }
        ).dump()
        message_digest = cms.CMSAttribute(
            {"type": "message_digest", "values": [hashlib.sha256(tst_info).digest()]}
        )
        signed_attrs = _frozen(
            cms.CMSAttributes(
                [self._content_type_attr, _frozen(message_digest), self._signing_certificate_attr]
            )
        )
        # The signature covers the attributes' DER as a universal SET (tag 0x31), which is
        # how CMSAttributes dumps untagged, not the [0] IMPLICIT form they take in SignerInfo.
        signature = self._signer.sign(signed_attrs.dump())
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": self._sid,
                "digest_algorithm": self._sha256,
                "signed_attrs": signed_attrs.retag({"implicit": 0}),
                "signature_algorithm": self._signature_algorithm,
                "signature": signature,
            }
        )
        encapsulated = cms.EncapsulatedContentInfo(
            {
                "content_type": self._tst_info_type,
                "content": core.ParsableOctetString(tst_info, explicit=0),
            }
        )
        signed_data = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": self._digest_algorithms,
                "encap_content_info": _frozen(encapsulated),
                "certificates": self._certificates if cert_req else None,
                "signer_infos": [_frozen(signer_info)],
            }
        )
        token = cms.ContentInfo(
            {"content_type": self._signed_data_type, "content": _frozen(signed_data, explicit=0)}
        )
        return _dump(_TimeStampResp({"status": self._granted, "time_stamp_token": _frozen(token)}))


def _parse_request(request_der: bytes) -> _Request:
    try:
        request = tsp.TimeStampReq.load(request_der, strict=True)
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]
        return _Request(
            version=int(request["version"]),
            imprint=imprint,
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


def _frozen(value: Any, **tagging: int) -> Any:
    """The same value, loaded back from its DER (then given its field's tagging, if any).

    asn1crypto re-encodes a value built in Python each time its encoding is read, and reads it
    several times per dump, so nested built values cost exponentially in depth; a loaded value
    reuses its bytes. Every built part is frozen before it goes into its parent.
    """
    frozen = type(value).load(value.dump())
    return frozen.retag(tagging) if tagging else frozen


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
