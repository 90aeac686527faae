"""RFC 6962 embedded SCTs: a real CA issues precertificate and final leaf; cryptography parses
the SCT, and both our verifier and sigstore-python's accept it (and refuse forgeries)."""

from __future__ import annotations

import base64
import datetime
import random
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.certificate_transparency import (
    LogEntryType,
    SignatureAlgorithm,
    Version,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sigstore._internal.sct import verify_sct
from sigstore._internal.trust import CTKeyring, Keyring
from sigstore.errors import VerificationError
from sigstore_models.common import v1 as common_v1

from signer.service.keys import FileKey
from signer.transparency.sct import (
    SCT_LIST_OID,
    SCTError,
    issuer_key_hash,
    log_id,
    precert_merkle_tree_leaf,
    precertificate_tbs,
    sct_list_extension_value,
    sign_precert_sct,
    verify_embedded_sct,
)

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
TIMESTAMP_MS = 1_767_323_045_123


def ca_cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    root: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    leaf_builder: x509.CertificateBuilder


@pytest.fixture(scope="module")
def pki() -> Pki:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = ca_cert("root", root_key, None, root_key)
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = ca_cert("intermediate", intermediate_key, root, root_key)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(intermediate.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(minutes=5))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("https://github.com/acme/app/.github/x.yml")]
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(intermediate_key.public_key()),
            critical=False,
        )
    )
    return Pki(root, intermediate, intermediate_key, leaf_builder)


@pytest.fixture(scope="module")
def ct_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def issue(
    pki: Pki, sign_sct: ec.EllipticCurvePrivateKey, timestamp_ms: int = TIMESTAMP_MS
) -> tuple[x509.Certificate, x509.Certificate, bytes]:
    """What the CA and the CT log do, per signer.transparency.sct's docstring."""
    precert = pki.leaf_builder.add_extension(x509.PrecertPoison(), critical=True).sign(
        pki.intermediate_key, hashes.SHA256()
    )
    tbs = precertificate_tbs(precert)
    sct = sign_precert_sct(FileKey(sign_sct), timestamp_ms, issuer_key_hash(pki.intermediate), tbs)
    final = pki.leaf_builder.add_extension(
        x509.UnrecognizedExtension(SCT_LIST_OID, sct_list_extension_value([sct])),
        critical=False,
    ).sign(pki.intermediate_key, hashes.SHA256())
    return precert, final, sct


def ct_keyring(*keys: ec.EllipticCurvePrivateKey) -> CTKeyring:
    entries = [
        common_v1.PublicKey(
            raw_bytes=base64.b64encode(  # type: ignore[arg-type]
                key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ).decode(),
            key_details=common_v1.PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
        )
        for key in keys
    ]
    return CTKeyring(Keyring(entries))


def trusted(*keys: ec.EllipticCurvePrivateKey) -> dict[bytes, ec.EllipticCurvePublicKey]:
    return {log_id(key.public_key()): key.public_key() for key in keys}


def test_final_certificate_tbs_is_the_logged_precertificate_tbs(
    pki: Pki, ct_key: ec.EllipticCurvePrivateKey
) -> None:
    precert, final, _ = issue(pki, ct_key)
    assert final.tbs_precertificate_bytes == precertificate_tbs(precert)
    assert precert.serial_number == final.serial_number
    assert x509.PrecertPoison() in [ext.value for ext in precert.extensions]
    assert precert.extensions.get_extension_for_class(x509.PrecertPoison).critical


def test_cryptography_parses_the_embedded_sct(pki: Pki, ct_key: ec.EllipticCurvePrivateKey) -> None:
    _, final, _ = issue(pki, ct_key)
    extension = final.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps
    )
    assert not extension.critical
    [sct] = list(extension.value)
    assert sct.version == Version.v1
    assert sct.entry_type == LogEntryType.PRE_CERTIFICATE
    assert sct.log_id == log_id(ct_key.public_key())
    assert isinstance(sct.signature_hash_algorithm, hashes.SHA256)
    assert sct.signature_algorithm == SignatureAlgorithm.ECDSA
    assert sct.extension_bytes == b""
    stamp = sct.timestamp.replace(tzinfo=datetime.UTC)
    assert stamp == datetime.datetime.fromtimestamp(TIMESTAMP_MS / 1000, tz=datetime.UTC)


def test_both_verifiers_accept_our_sct(pki: Pki, ct_key: ec.EllipticCurvePrivateKey) -> None:
    _, final, _ = issue(pki, ct_key)
    verify_embedded_sct(final, pki.intermediate, trusted(ct_key))
    verify_sct(final, [pki.intermediate, pki.root], ct_keyring(ct_key))


def test_sct_by_another_key_is_refused_by_both(
    pki: Pki, ct_key: ec.EllipticCurvePrivateKey, other_key: ec.EllipticCurvePrivateKey
) -> None:
    _, final, _ = issue(pki, other_key)
    with pytest.raises(SCTError, match="not trusted"):
        verify_embedded_sct(final, pki.intermediate, trusted(ct_key))
    with pytest.raises(VerificationError):
        verify_sct(final, [pki.intermediate, pki.root], ct_keyring(ct_key))


def test_sct_by_another_key_claiming_our_log_id_is_refused_by_both(
    pki: Pki, ct_key: ec.EllipticCurvePrivateKey, other_key: ec.EllipticCurvePrivateKey
) -> None:
    precert = pki.leaf_builder.add_extension(x509.PrecertPoison(), critical=True).sign(
        pki.intermediate_key, hashes.SHA256()
    )
    forged = sign_precert_sct(
        FileKey(other_key), TIMESTAMP_MS, issuer_key_hash(pki.intermediate), precertificate_tbs(precert)
    )
    forged = forged[:1] + log_id(ct_key.public_key()) + forged[33:]
    final = pki.leaf_builder.add_extension(
        x509.UnrecognizedExtension(SCT_LIST_OID, sct_list_extension_value([forged])),
        critical=False,
    ).sign(pki.intermediate_key, hashes.SHA256())
    with pytest.raises(SCTError, match="does not verify"):
        verify_embedded_sct(final, pki.intermediate, trusted(ct_key))
    with pytest.raises(VerificationError):
        verify_sct(final, [pki.intermediate, pki.root], ct_keyring(ct_key))


def test_sct_moved_to_another_certificate_is_refused(
    pki: Pki, ct_key: ec.EllipticCurvePrivateKey
) -> None:
    _, _, sct = issue(pki, ct_key)
    other = pki.leaf_builder.add_extension(
        x509.SubjectKeyIdentifier(b"\x01" * 20), critical=False
    ).add_extension(
        x509.UnrecognizedExtension(SCT_LIST_OID, sct_list_extension_value([sct])),
        critical=False,
    )
    moved = other.sign(pki.intermediate_key, hashes.SHA256())
    with pytest.raises(SCTError, match="does not verify"):
        verify_embedded_sct(moved, pki.intermediate, trusted(ct_key))
    with pytest.raises(VerificationError):
        verify_sct(moved, [pki.intermediate, pki.root], ct_keyring(ct_key))


def test_wrong_issuer_is_refused(pki: Pki, ct_key: ec.EllipticCurvePrivateKey) -> None:
    _, final, _ = issue(pki, ct_key)
    with pytest.raises(SCTError, match="does not verify"):
        verify_embedded_sct(final, pki.root, trusted(ct_key))


def test_missing_or_extra_scts_are_refused(pki: Pki, ct_key: ec.EllipticCurvePrivateKey) -> None:
    plain = pki.leaf_builder.sign(pki.intermediate_key, hashes.SHA256())
    with pytest.raises(SCTError, match="no embedded SCT"):
        verify_embedded_sct(plain, pki.intermediate, trusted(ct_key))
    _, _, sct = issue(pki, ct_key)
    two = pki.leaf_builder.add_extension(
        x509.UnrecognizedExtension(SCT_LIST_OID, sct_list_extension_value([sct, sct])),
        critical=False,
    ).sign(pki.intermediate_key, hashes.SHA256())
    assert len(two.extensions.get_extension_for_oid(SCT_LIST_OID).value) == 2  # type: ignore[arg-type]
    with pytest.raises(SCTError, match="exactly one"):
        verify_embedded_sct(two, pki.intermediate, trusted(ct_key))


def test_timestamps_survive_both_parsers(pki: Pki, ct_key: ec.EllipticCurvePrivateKey) -> None:
    """sigstore-python rebuilds milliseconds as int(datetime.timestamp() * 1000), through a
    float. That is exact for 2004-11 .. 2038-01 (seconds in [2^30, 2^31), ms in [2^40, 2^41));
    outside it some values come back 1 ms short. Ours is integer arithmetic throughout."""
    rng = random.Random(6962)
    era = range(1 << 40, (1 << 31) * 1000)
    stamps = [era[0], era[-1], TIMESTAMP_MS + 1, *(rng.choice(era) for _ in range(60))]
    for stamp in stamps:
        _, final, _ = issue(pki, ct_key, stamp)
        verify_embedded_sct(final, pki.intermediate, trusted(ct_key))
        verify_sct(final, [pki.intermediate, pki.root], ct_keyring(ct_key))
    misread_by_sigstore = 1_093_480_550_511  # 2004-08-26
    _, final, _ = issue(pki, ct_key, misread_by_sigstore)
    verify_embedded_sct(final, pki.intermediate, trusted(ct_key))
    with pytest.raises(VerificationError):
        verify_sct(final, [pki.intermediate, pki.root], ct_keyring(ct_key))


def test_tls_layout(pki: Pki, ct_key: ec.EllipticCurvePrivateKey) -> None:
    precert, _, sct = issue(pki, ct_key)
    tbs = precertificate_tbs(precert)
    key_hash = issuer_key_hash(pki.intermediate)
    assert sct[0] == 0  # v1
    assert sct[1:33] == log_id(ct_key.public_key())
    assert int.from_bytes(sct[33:41], "big") == TIMESTAMP_MS
    assert sct[41:43] == b"\x00\x00"  # no extensions
    assert sct[43:45] == b"\x04\x03"  # sha256, ecdsa
    assert int.from_bytes(sct[45:47], "big") == len(sct) - 47

    leaf = precert_merkle_tree_leaf(TIMESTAMP_MS, key_hash, tbs)
    assert leaf[:2] == b"\x00\x00"  # v1, timestamped_entry
    assert int.from_bytes(leaf[2:10], "big") == TIMESTAMP_MS
    assert leaf[10:12] == b"\x00\x01"  # precert_entry
    assert leaf[12:44] == key_hash
    assert int.from_bytes(leaf[44:47], "big") == len(tbs)
    assert leaf[47:] == tbs + b"\x00\x00"

    value = sct_list_extension_value([sct] * 3)  # > 127 bytes: long-form DER length
    assert value[:2] == b"\x04\x82"
    assert value[4:6] == (len(value) - 6).to_bytes(2, "big")


def test_precertificate_tbs_needs_a_precertificate(pki: Pki) -> None:
    plain = pki.leaf_builder.sign(pki.intermediate_key, hashes.SHA256())
    with pytest.raises(ValueError, match="poison"):
        precertificate_tbs(plain)
    with pytest.raises(ValueError, match="at least one"):
        sct_list_extension_value([])
    with pytest.raises(TypeError, match="P-256"):
        sign_precert_sct(FileKey(ec.generate_private_key(ec.SECP384R1())), 0, bytes(32), b"tbs")
    with pytest.raises(ValueError, match="32 bytes"):
        sign_precert_sct(FileKey(ec.generate_private_key(ec.SECP256R1())), 0, b"short", b"tbs")


