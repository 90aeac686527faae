"""The RFC 3161 TSA, checked by the verifiers that will meet its tokens: OpenSSL and
rfc3161-client (sigstore-python's)."""

from __future__ import annotations

import hashlib
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

from signer.service.keys import FileKey
from signer.service.tsa import DEFAULT_POLICY_OID, TimestampAuthority, TimestampRequestError

OPENSSL = "/usr/bin/openssl"
DATA = b"sha256 of a signature, say"


@dataclass
class Pki:
    root: x509.Certificate
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    root_key: ec.EllipticCurvePrivateKey
    root_pem: Path
    leaf_pem: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _issue_tsa_leaf(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    eku: list[x509.ObjectIdentifier],
) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name("signer test TSA"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("signer test root"))
        .issuer_name(_name("signer test root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _issue_tsa_leaf(root, root_key, leaf_key, [ExtendedKeyUsageOID.TIME_STAMPING])
    directory = tmp_path_factory.mktemp("tsa-pki")
    root_pem, leaf_pem = directory / "root.pem", directory / "tsa.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    leaf_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    return Pki(root, leaf, leaf_key, root_key, root_pem, leaf_pem)


@pytest.fixture(scope="module")
def tsa(pki: Pki) -> TimestampAuthority:
    return TimestampAuthority(FileKey(pki.leaf_key), [pki.leaf, pki.root])


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENSSL, "ts", *map(str, args)], capture_output=True, text=True, check=False
    )


def _query(tmp_path: Path, *options: str) -> Path:
    data, query = tmp_path / "data", tmp_path / "q.tsq"
    data.write_bytes(DATA)
    result = _openssl("-query", "-data", data, *options, "-out", query)
    assert result.returncode == 0, result.stderr
    return query


def _tst_info(response_der: bytes) -> tsp.TSTInfo:
    token = tsp.TimeStampResp.load(response_der)["time_stamp_token"]
    return token["content"]["encap_content_info"]["content"].parsed


def _status(response_der: bytes) -> tuple[str, set[str]]:
    # asn1crypto's TimeStampResp insists on a token, which a rejection has not: read the
    # PKIStatusInfo, the response's first element, on its own.
    status = tsp.PKIStatusInfo.load(core.Sequence.load(response_der)[0].dump())
    return status["status"].native, status["fail_info"].native or set()


def test_openssl_verifies_the_token_over_the_data_and_only_that_data(
    tsa: TimestampAuthority, pki: Pki, tmp_path: Path
) -> None:
    response = tmp_path / "r.tsr"
    response.write_bytes(tsa.timestamp(DATA))
    data, other = tmp_path / "data", tmp_path / "other"
    data.write_bytes(DATA)
    other.write_bytes(DATA + b"!")
    trust = ("-CAfile", pki.root_pem, "-untrusted", pki.leaf_pem)

    good = _openssl("-verify", "-data", data, "-in", response, *trust)
    bad = _openssl("-verify", "-data", other, "-in", response, *trust)

    assert good.returncode == 0, good.stderr
    assert "Verification: OK" in good.stdout
    assert bad.returncode != 0
    assert "message imprint mismatch" in bad.stderr


def test_openssl_query_is_granted_with_its_nonce_and_verifies_against_the_query(
    tsa: TimestampAuthority, pki: Pki, tmp_path: Path
) -> None:
    query = _query(tmp_path, "-sha256", "-cert")
    response = tmp_path / "r.tsr"
    response.write_bytes(tsa.respond(query.read_bytes()))

    query_nonce = tsp.TimeStampReq.load(query.read_bytes())["nonce"].native
    text = _openssl("-reply", "-in", response, "-text")
    verified = _openssl(
        "-verify",
        "-queryfile",
        query,
        "-in",
        response,
        "-CAfile",
        pki.root_pem,
        "-untrusted",
        pki.leaf_pem,
    )

    assert text.returncode == 0, text.stderr
    assert "Status: Granted." in text.stdout
    nonce = re.search(r"^Nonce: 0x([0-9A-F]+)$", text.stdout, re.MULTILINE)
    assert nonce is not None
    assert int(nonce.group(1), 16) == query_nonce
    assert f"Policy OID: {DEFAULT_POLICY_OID}" in text.stdout
    assert verified.returncode == 0, verified.stderr


def test_token_profile(tsa: TimestampAuthority, pki: Pki) -> None:
    response = tsa.timestamp(DATA)
    signed_data = tsp.TimeStampResp.load(response)["time_stamp_token"]["content"]
    tst_info = _tst_info(response)
    signer_info = signed_data["signer_infos"][0]
    attributes = {a["type"].native: a["values"][0] for a in signer_info["signed_attrs"]}
    ess_cert_id = attributes["signing_certificate_v2"]["certs"][0]
    leaf_der = pki.leaf.public_bytes(serialization.Encoding.DER)

    assert signed_data["version"].native == "v3"
    assert [c.chosen.dump() for c in signed_data["certificates"]] == [leaf_der]
    assert signer_info["version"].native == "v1"
    assert signer_info["sid"].name == "issuer_and_serial_number"
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    assert set(attributes) == {"content_type", "message_digest", "signing_certificate_v2"}
    assert ess_cert_id["cert_hash"].native == hashlib.sha256(leaf_der).digest()
    # hashAlgorithm is SHA-256, the DEFAULT, so DER leaves it out: a hash and nothing else.
    assert ess_cert_id.contents == ess_cert_id["cert_hash"].dump()
    assert tst_info["version"].native == "v1"
    assert tst_info["accuracy"]["seconds"].native == 1
    assert not tst_info["ordering"].native
    assert tst_info["tsa"].name == "directory_name"
    assert tst_info["tsa"].chosen.untag().dump() == pki.leaf.subject.public_bytes()
    assert 0 < tst_info["serial_number"].native < 2**128
    # YYYYMMDDHHMMSSZ: whole seconds, no fractional digits at all.
    assert len(tst_info["gen_time"].contents) == len("20250101000000Z")


def test_certificate_is_included_only_on_request(tsa: TimestampAuthority, tmp_path: Path) -> None:
    query = _query(tmp_path, "-sha256")  # no -cert
    token = tsp.TimeStampResp.load(tsa.respond(query.read_bytes()))["time_stamp_token"]

    assert not token["content"]["certificates"]


def test_serial_numbers_are_unique(tsa: TimestampAuthority) -> None:
    serials = {_tst_info(tsa.timestamp(DATA))["serial_number"].native for _ in range(50)}

    assert len(serials) == 50


def test_rfc3161_client_verifies_like_sigstore_python(tsa: TimestampAuthority, pki: Pki) -> None:
    response = decode_timestamp_response(tsa.timestamp(DATA))
    # As sigstore.verify.verifier._verify_signed_timestamp walks a trusted root's TSA chain.
    certificates = [pki.leaf, pki.root]
    builder = (
        VerifierBuilder().tsa_certificate(certificates[0]).add_root_certificate(certificates[-1])
    )
    for certificate in certificates[1:-1]:
        builder = builder.add_intermediate_certificate(certificate)
    verifier = builder.build()

    assert verifier.verify_message(response, DATA)
    assert response.tst_info.gen_time.microsecond == 0
    assert response.tst_info.policy.dotted_string == DEFAULT_POLICY_OID
    with pytest.raises(VerificationError, match="Mismatch between messages"):
        verifier.verify_message(response, DATA + b"!")


def test_tokens_stamped_concurrently_each_verify_over_their_own_data(
    tsa: TimestampAuthority, pki: Pki
) -> None:
    # The shared, precomputed ASN.1 parts must not bleed between requests in flight.
    messages = [DATA + i.to_bytes(2, "big") for i in range(80)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(tsa.timestamp, messages))
    verifier = VerifierBuilder().tsa_certificate(pki.leaf).add_root_certificate(pki.root).build()

    for message, response in zip(messages, responses, strict=True):
        assert verifier.verify_message(decode_timestamp_response(response), message)


def test_rfc3161_client_refuses_a_token_from_another_root(
    tsa: TimestampAuthority, pki: Pki
) -> None:
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = (
        x509.CertificateBuilder()
        .subject_name(pki.root.subject)
        .issuer_name(pki.root.subject)
        .public_key(stranger_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.root.not_valid_before_utc)
        .not_valid_after(pki.root.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(stranger_key, hashes.SHA256())
    )
    verifier = VerifierBuilder().tsa_certificate(pki.leaf).add_root_certificate(stranger).build()

    with pytest.raises(VerificationError):
        verifier.verify_message(decode_timestamp_response(tsa.timestamp(DATA)), DATA)


@pytest.mark.parametrize("body", [b"", b"\x30\x03\x02\x01", b"not DER at all", b"\x04\x00"])
def test_malformed_request_raises(tsa: TimestampAuthority, body: bytes) -> None:
    with pytest.raises(TimestampRequestError, match="TimeStampReq"):
        tsa.respond(body)


def test_sha1_query_is_rejected_with_bad_alg(tsa: TimestampAuthority, tmp_path: Path) -> None:
    query = _query(tmp_path, "-sha1", "-cert")

    assert _status(tsa.respond(query.read_bytes())) == ("rejection", {"bad_alg"})


def test_short_sha256_digest_is_rejected_with_bad_data_format(tsa: TimestampAuthority) -> None:
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(DATA).digest()[:31],
            },
            "cert_req": True,
        }
    )
    assert _status(tsa.respond(request.dump())) == ("rejection", {"bad_data_format"})


def test_other_policy_is_rejected(tsa: TimestampAuthority, tmp_path: Path) -> None:
    query = _query(tmp_path, "-sha256", "-tspolicy", "1.2.3.4")

    assert _status(tsa.respond(query.read_bytes())) == ("rejection", {"unaccepted_policy"})


def test_rejection_reads_as_a_reply_to_openssl(tsa: TimestampAuthority, tmp_path: Path) -> None:
    response = tmp_path / "r.tsr"
    response.write_bytes(tsa.respond(_query(tmp_path, "-sha1").read_bytes()))

    text = _openssl("-reply", "-in", response, "-text")

    assert "Status: Rejected." in text.stdout
    assert "unrecognized or unsupported algorithm identifier" in text.stdout


def test_refuses_a_key_that_is_not_the_leafs(pki: Pki) -> None:
    with pytest.raises(ValueError, match="does not match the public key"):
        TimestampAuthority(FileKey(ec.generate_private_key(ec.SECP256R1())), [pki.leaf, pki.root])


def test_refuses_a_leaf_without_time_stamping_eku(pki: Pki) -> None:
    code_signing = _issue_tsa_leaf(
        pki.root, pki.root_key, pki.leaf_key, [ExtendedKeyUsageOID.CODE_SIGNING]
    )
    with pytest.raises(ValueError, match="timeStamping as its only purpose"):
        TimestampAuthority(FileKey(pki.leaf_key), [code_signing, pki.root])


def test_refuses_a_chain_out_of_order(pki: Pki) -> None:
    with pytest.raises(ValueError, match="out of order"):
        TimestampAuthority(FileKey(pki.leaf_key), [pki.leaf, pki.leaf])
