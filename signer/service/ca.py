"""The certificate authority: the root → intermediate hierarchy, the TSA certificate, leaves.

Leaves follow docs/design.md's profile: empty subject, critical URI SAN with the identity,
critical KeyUsage digitalSignature, EKU codeSigning, SKI/AKI, provenance extensions, and a
validity of exactly :data:`CERT_VALIDITY`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signer.errors import UsageError
from signer.service.keys import (
    KeySigner,
    PublicKey,
    certificate_der,
    sign_certificate,
    signature_algorithm,
)
from signer.service.leaf_der import LeafTemplate, extension_der
from signer.transparency.sct import POISON_OID, SCT_LIST_OID, sct_list_extension_value

CERT_VALIDITY = timedelta(minutes=5)
# Operators may shorten or lengthen the leaf lifetime, never beyond this.
MAX_CERT_VALIDITY = timedelta(minutes=10)
ROOT_VALIDITY = timedelta(days=3650)
INTERMEDIATE_VALIDITY = timedelta(days=1825)
TSA_VALIDITY = timedelta(days=1825)
ORGANIZATION = "signer"
# A CSR is a few hundred bytes; anything far larger is not one of ours.
MAX_CSR_BYTES = 8 * 1024
EXTENSION_REQUEST = x509.ObjectIdentifier("1.2.840.113549.1.9.14")  # PKCS#9
_POISON = extension_der(POISON_OID, True, b"\x05\x00")  # RFC 6962 §3.1: critical, NULL


@dataclass(frozen=True)
class Precertificate:
    """What a CT log signs an SCT for (RFC 6962 §3.2): ``der``, the signed precertificate
    (its entry keeps it), and ``tbs``, its TBSCertificate without the poison (what the SCT
    signs, and exactly the certificate's TBSCertificate without its SCT list)."""

    der: bytes
    tbs: bytes


# The CT log's part of issuance: given the precertificate, return its SCT (RFC 6962).
SCTSource = Callable[[Precertificate], bytes]


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _key_usage(ca: bool) -> x509.KeyUsage:
    """CAs certify (keyCertSign, cRLSign); end entities sign (digitalSignature)."""
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )


def _ca_builder(
    subject: x509.Name, issuer: x509.Name, key: PublicKey, now: datetime,
    validity: timedelta, path_length: int | None,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def create_root(signer: KeySigner) -> x509.Certificate:
    name = _name("signer root CA")
    builder = _ca_builder(name, name, signer.public_key, _now(), ROOT_VALIDITY, None)
    return sign_certificate(builder, signer)


def create_intermediate(
    key: PublicKey, root_signer: KeySigner, root: x509.Certificate
) -> x509.Certificate:
    builder = _ca_builder(
        _name("signer intermediate CA"), root.subject, key, _now(), INTERMEDIATE_VALIDITY, 0
    ).add_extension(_aki(root), critical=False)
    return sign_certificate(builder, root_signer)


def _encoded(value: x509.ExtensionType, critical: bool) -> x509.Extension[x509.ExtensionType]:
    """``value`` as an extension whose DER is encoded now, once: a certificate built with it
    is byte for byte one built with ``value``, and cryptography does not encode it again for
    each certificate that holds it."""
    encoded = x509.UnrecognizedExtension(value.oid, value.public_bytes())
    return x509.Extension(value.oid, critical, encoded)


@dataclass(frozen=True)
class _EndEntityProfile:
    """What every end-entity certificate of one issuer and one EKU holds, made once: the
    issuer's name and, around the subject key's SKI, BasicConstraints CA:false, KeyUsage and
    the EKU before it, the AKI after it."""

    issuer: x509.Name
    before_ski: tuple[x509.Extension[x509.ExtensionType], ...]
    after_ski: tuple[x509.Extension[x509.ExtensionType], ...]

    @classmethod
    def of(cls, issuer: x509.Certificate, eku: x509.ObjectIdentifier, eku_critical: bool
           ) -> _EndEntityProfile:
        return cls(issuer.subject, (
            _encoded(x509.BasicConstraints(ca=False, path_length=None), critical=True),
            _encoded(_key_usage(ca=False), critical=True),
            _encoded(x509.ExtendedKeyUsage([eku]), critical=eku_critical),
        ), (_encoded(_aki(issuer), critical=False),))

    def extensions(self, key: PublicKey) -> list[x509.Extension[x509.ExtensionType]]:
        ski = _encoded(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
        return [*self.before_ski, ski, *self.after_ski]


def _end_entity(
    builder: x509.CertificateBuilder, key: PublicKey, issuer: x509.Certificate,
    eku: x509.ObjectIdentifier, eku_critical: bool,
) -> x509.CertificateBuilder:
    profile = _EndEntityProfile.of(issuer, eku, eku_critical)
    builder = (builder.issuer_name(profile.issuer).public_key(key)
               .serial_number(x509.random_serial_number()))
    for extension in profile.extensions(key):
        builder = builder.add_extension(extension.value, extension.critical)
    return builder


def create_tsa_certificate(
    key: PublicKey, root_signer: KeySigner, root: x509.Certificate
) -> x509.Certificate:
    """The TSA's certificate, issued by the root: EKU timeStamping only, critical (RFC 3161)."""
    now = _now()
    builder = _end_entity(
        x509.CertificateBuilder()
        .subject_name(_name("signer timestamp authority"))
        .not_valid_before(now)
        .not_valid_after(now + TSA_VALIDITY),
        key, root, ExtendedKeyUsageOID.TIME_STAMPING, eku_critical=True,
    )
    return sign_certificate(builder, root_signer)


def parse_csr(pem: str, *, sigstore_client: bool = False) -> x509.CertificateSigningRequest:
    """A PKCS#10 CSR with an ECDSA P-256 key, a valid signature and no requested extensions.

    ``sigstore_client``: the CSR comes through Fulcio's API, whose clients also send what
    Fulcio ignores: a subject, and BasicConstraints CA:false (sigstore-python). Both are
    accepted and ignored; anything else a CSR asks for is still refused.
    """
    if len(pem) > MAX_CSR_BYTES:
        raise UsageError(
            f"The CSR is {len(pem)} bytes; a P-256 CSR is well under {MAX_CSR_BYTES}.",
            "Send a PEM PKCS#10 request for a fresh ECDSA P-256 key.",
        )
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except (ValueError, UnicodeEncodeError, x509.InvalidVersion) as exc:
        raise UsageError(
            "The CSR is not a PEM-encoded PKCS#10 certificate request.",
            "Send '-----BEGIN CERTIFICATE REQUEST-----' PEM for an ECDSA P-256 key.",
        ) from exc
    _check_p256(_csr_key(csr))
    if not csr.is_signature_valid:
        raise UsageError(
            "The CSR's signature does not verify with its public key, so it proves no "
            "possession of the key.",
            "Sign the CSR with the private key it names.",
        )
    if not (sigstore_client and _only_fulcio_hints(csr)) and (
            len(csr.extensions) or len(csr.attributes)):
        raise UsageError(
            "The CSR requests extensions or attributes (such as subject alternative names); "
            "the CA decides every extension from your identity.",
            "Send a CSR with an empty subject and no extensions.",
        )
    return csr


def _csr_key(csr: x509.CertificateSigningRequest) -> object:
    try:
        return csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError("The CSR's public key cannot be parsed.") from exc


def _check_p256(key: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise UsageError(
            f"The CSR holds a {_describe_key(key)} key; only ECDSA P-256 keys are certified.",
            "Generate the signing key with ECDSA on curve P-256 (secp256r1).",
        )
    return key


def _only_fulcio_hints(csr: x509.CertificateSigningRequest) -> bool:
    """Only an extension request for BasicConstraints CA:false, which the leaf has anyway."""
    if any(a.oid != EXTENSION_REQUEST for a in csr.attributes):
        return False
    try:
        return all(isinstance(e.value, x509.BasicConstraints) and not e.value.ca
                   for e in csr.extensions)
    except ValueError:  # an extension cryptography cannot parse
        return False


def key_from_proof(public_key: str, proof: bytes, subject: str) -> ec.EllipticCurvePublicKey:
    """Fulcio's other proof of possession (sigstore-go, cosign, sigstore-js): a signature
    with the key over the token's subject. Returns the P-256 key it proves."""
    if len(public_key) > MAX_CSR_BYTES:
        raise UsageError("The public key is far larger than a P-256 key.")
    try:
        key = load_pem_public_key(public_key.encode())
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm) as exc:
        raise UsageError("publicKeyRequest.publicKey.content is not a PEM public key.",
                         "Send the signing key's SubjectPublicKeyInfo as PEM.") from exc
    checked = _check_p256(key)
    try:
        checked.verify(proof, subject.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise UsageError(
            "publicKeyRequest.proofOfPossession does not verify: it must be a signature with "
            "the key over the token's subject ('sub').",
            f"Sign '{subject[:80]}' with the private key (ECDSA, SHA-256).") from exc
    return checked


def _describe_key(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__.removeprefix("_").replace("PublicKey", "") or "non-ECDSA"


@dataclass(frozen=True)
class CertificateAuthority:
    """Issues leaf certificates with the intermediate CA key."""

    signer: KeySigner
    certificate: x509.Certificate
    root: x509.Certificate
    validity: timedelta = CERT_VALIDITY
    _leaf: LeafTemplate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Fail at start-up, not at the first signing: the key must match, the chain verify.
        if self.signer.public_key != self.certificate.public_key():
            raise UsageError("The intermediate CA key does not match its certificate.")
        try:
            self.certificate.verify_directly_issued_by(self.root)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise UsageError("The intermediate CA certificate is not issued by the root.") from exc
        if not timedelta(0) < self.validity <= MAX_CERT_VALIDITY:
            raise UsageError(
                f"A leaf validity of {self.validity} is not allowed.",
                f"Choose at most {MAX_CERT_VALIDITY}.",
            )
        # Every leaf's shared DER, made once (frozen: set directly).
        profile = _EndEntityProfile.of(self.certificate, ExtendedKeyUsageOID.CODE_SIGNING,
                                       eku_critical=False)
        object.__setattr__(self, "_leaf", LeafTemplate(
            self.certificate, signature_algorithm(self.signer.public_key),
            profile.before_ski, profile.after_ski))

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.certificate, self.root]

    def issue(
        self,
        csr: x509.CertificateSigningRequest | ec.EllipticCurvePublicKey,
        identities: str | Sequence[str],
        extensions: Sequence[x509.UnrecognizedExtension],
        now: datetime | None = None,
        sct_source: SCTSource | None = None,
    ) -> x509.Certificate:
        """Issue a leaf; with a CT log, first a precertificate, then the leaf with its SCT.

        The precertificate and the leaf share serial, validity and extensions in the same
        order; the poison and the SCT list go last, so the leaf's TBS without its SCT list
        is exactly the precertificate's TBS without the poison (`Precertificate.tbs`).
        """
        # Several identities: each a URI SAN, in order (Fulcio-style GitHub leaves name the
        # job's workflow first, sigstore-go and sigstore-js read the first).
        names = [identities] if isinstance(identities, str) else list(identities)
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        # A CSR, or a key whose possession was proved otherwise (key_from_proof).
        key = csr if isinstance(csr, ec.EllipticCurvePublicKey) else csr.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # parse_csr guarantees it
        san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(i) for i in names])
        oids = [*self._leaf.oids, san.oid, *(ext.oid for ext in extensions)]
        if len(set(oids)) != len(oids) or (
                sct_source is not None and not set(oids).isdisjoint((POISON_OID, SCT_LIST_OID))):
            raise ValueError("An extension of the leaf is given twice.")
        own = [extension_der(san.oid, True, san.public_bytes()),
               *(extension_der(ext.oid, False, ext.value) for ext in extensions)]
        tbs = self._leaf.tbs(x509.random_serial_number(), now, now + self.validity, key, own)

        def signed(last: bytes = b"") -> bytes:
            """The leaf's DER with ``last`` after its extensions, signed."""
            return certificate_der(self.signer, tbs.with_last(last))

        if sct_source is not None:
            sct = sct_source(Precertificate(signed(_POISON), tbs.with_last()))
            return x509.load_der_x509_certificate(signed(
                extension_der(SCT_LIST_OID, False, sct_list_extension_value([sct]))))
        return x509.load_der_x509_certificate(signed())
