"""The CA's leaves: docs/design.md's profile, extension for extension, for the precertificate
and the certificate alike, whichever key signs; and a leaf never names an extension twice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from signer.service import ca
from signer.service.keys import FileKey, KeySigner
from signer.transparency.sct import (
    POISON_OID,
    SCT_LIST_OID,
    issuer_key_hash,
    log_id,
    precertificate_tbs,
    sign_precert_sct,
    verify_embedded_sct,
)
from tests.fakes.key_signer import RemoteKey

IDENTITIES = ["https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1",
              "repo:acme/app:ref:refs/tags/v1"]
PROVENANCE = [x509.UnrecognizedExtension(x509.ObjectIdentifier(f"1.3.6.1.4.1.57264.1.{n}"),
                                         b"\x0c\x03abc") for n in (8, 12, 1)]
NOW = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)


def _authority(signer: KeySigner) -> ca.CertificateAuthority:
    root_key = FileKey(ec.generate_private_key(ec.SECP256R1()))
    root = ca.create_root(root_key)
    return ca.CertificateAuthority(
        signer, ca.create_intermediate(signer.public_key, root_key, root), root)


@pytest.mark.parametrize("signer", [FileKey(ec.generate_private_key(ec.SECP256R1())),
                                    RemoteKey()], ids=["file key", "remote key"])
def test_a_leaf_has_the_designed_profile(signer: KeySigner) -> None:
    authority = _authority(signer)
    intermediate = authority.certificate
    log_key = FileKey(ec.generate_private_key(ec.SECP256R1()))
    precerts: list[x509.Certificate] = []

    def sct_source(precert: ca.Precertificate) -> bytes:
        certificate = x509.load_der_x509_certificate(precert.der)
        precerts.append(certificate)
        # What the CA says the SCT signs is what the precertificate holds, less the poison.
        assert precert.tbs == precertificate_tbs(certificate)
        return sign_precert_sct(log_key, 1_767_000_000_000, issuer_key_hash(intermediate),
                                precertificate_tbs(certificate))

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    leaf = authority.issue(key, IDENTITIES, PROVENANCE, now=NOW, sct_source=sct_source)
    plain = authority.issue(key, IDENTITIES, PROVENANCE, now=NOW)
    [precert] = precerts
    ski = intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    expected = [
        (ExtensionOID.BASIC_CONSTRAINTS, True, x509.BasicConstraints(ca=False, path_length=None)),
        (ExtensionOID.KEY_USAGE, True, x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False)),
        (ExtensionOID.EXTENDED_KEY_USAGE, False,
         x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING])),
        (ExtensionOID.SUBJECT_KEY_IDENTIFIER, False,
         x509.SubjectKeyIdentifier.from_public_key(key)),
        (ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False,
         x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)),
        (ExtensionOID.SUBJECT_ALTERNATIVE_NAME, True,
         x509.SubjectAlternativeName([x509.UniformResourceIdentifier(i) for i in IDENTITIES])),
        *((e.oid, False, e) for e in PROVENANCE),
    ]
    for cert, last in ((plain, None), (precert, (POISON_OID, True)),
                       (leaf, (SCT_LIST_OID, False))):
        assert cert.subject == x509.Name([]) and cert.issuer == intermediate.subject
        assert cert.public_key() == key
        assert cert.not_valid_before_utc == NOW.replace(microsecond=0)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == ca.CERT_VALIDITY
        cert.verify_directly_issued_by(intermediate)
        got = [(e.oid, e.critical, e.value) for e in cert.extensions]
        if last is None:
            assert got == expected
        else:
            assert got[:-1] == expected and got[-1][:2] == last
    assert precert.serial_number == leaf.serial_number != plain.serial_number
    assert leaf.tbs_precertificate_bytes == precertificate_tbs(precert)
    verify_embedded_sct(leaf, intermediate, {log_id(log_key.public_key): log_key.public_key})


@pytest.mark.parametrize("now", [NOW, datetime(2049, 12, 31, 23, 58, 0, tzinfo=UTC)],
                         ids=["UTCTime", "validity across 2050: GeneralizedTime"])
def test_a_leaf_is_byte_for_byte_what_cryptography_builds(now: datetime) -> None:
    """The CA assembles a leaf's DER from parts made once (signer.service.leaf_der):
    cryptography's builder, given the same fields, must write the very same TBSCertificate."""
    private = ec.generate_private_key(ec.SECP256R1())
    authority = _authority(FileKey(private))
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    long_value = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.21"),
                                            b"\x0c\x82\x01\x2c" + b"a" * 300)
    precerts: list[ca.Precertificate] = []

    def sct_source(precert: ca.Precertificate) -> bytes:
        precerts.append(precert)
        return sign_precert_sct(FileKey(private), 1_767_000_000_000,
                                issuer_key_hash(authority.certificate), precert.tbs)

    for leaf in (authority.issue(key, IDENTITIES, [*PROVENANCE, long_value], now=now),
                 authority.issue(key, IDENTITIES, PROVENANCE, now=now, sct_source=sct_source),
                 x509.load_der_x509_certificate(precerts[0].der)):
        rebuilt = x509.CertificateBuilder(
            leaf.issuer, leaf.subject, leaf.public_key(), leaf.serial_number,
            leaf.not_valid_before_utc, leaf.not_valid_after_utc, list(leaf.extensions),
        ).sign(private, hashes.SHA256())
        assert leaf.not_valid_before_utc == now.replace(microsecond=0)
        assert leaf.not_valid_after_utc == now.replace(microsecond=0) + ca.CERT_VALIDITY
        assert leaf.tbs_certificate_bytes == rebuilt.tbs_certificate_bytes
        assert leaf.signature_algorithm_oid == rebuilt.signature_algorithm_oid
        leaf.verify_directly_issued_by(authority.certificate)


def test_a_leaf_is_only_for_a_p256_key() -> None:
    authority = _authority(FileKey(ec.generate_private_key(ec.SECP256R1())))
    for curve in (ec.SECP256K1(), ec.SECP384R1()):
        with pytest.raises(ValueError, match="P-256"):
            authority.issue(ec.generate_private_key(curve).public_key(), IDENTITIES, PROVENANCE)


@pytest.mark.parametrize("oid", [
    "1.3.6.1.4.1.57264.1.8",  # a provenance extension given twice
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string,  # one the CA writes itself
    ExtensionOID.BASIC_CONSTRAINTS.dotted_string,
    POISON_OID.dotted_string,  # one it adds for the CT log
    SCT_LIST_OID.dotted_string,
])
def test_an_extension_is_never_written_twice(oid: str) -> None:
    authority = _authority(FileKey(ec.generate_private_key(ec.SECP256R1())))
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    again = x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), b"\x05\x00")
    with pytest.raises(ValueError, match="twice"):
        authority.issue(key, IDENTITIES, [*PROVENANCE, again], sct_source=lambda _: b"")


def test_the_tsa_certificate_has_its_profile() -> None:
    root_key = FileKey(ec.generate_private_key(ec.SECP256R1()))
    root = ca.create_root(root_key)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = ca.create_tsa_certificate(key, root_key, root)
    cert.verify_directly_issued_by(root)
    assert [(e.oid, e.critical) for e in cert.extensions] == [
        (ExtensionOID.BASIC_CONSTRAINTS, True), (ExtensionOID.KEY_USAGE, True),
        (ExtensionOID.EXTENDED_KEY_USAGE, True), (ExtensionOID.SUBJECT_KEY_IDENTIFIER, False),
        (ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False)]
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING])
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == ca.TSA_VALIDITY
    assert cert.public_key() == key
