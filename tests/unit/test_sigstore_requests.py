"""What signer takes from Sigstore's clients at its Fulcio and TSA APIs: only the key (and
the digest); everything else a request asks for is ignored or refused, never trusted."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from signer.errors import UsageError
from signer.service.ca import key_from_proof, parse_csr
from signer.service.timestamping import json_request

SUBJECT = "repo:acme/app:ref:refs/tags/v1.2.3"


def _csr(key: ec.EllipticCurvePrivateKey, *extensions: x509.ExtensionType,
         subject: x509.Name | None = None) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject or x509.Name([]))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


def test_sigstore_pythons_csr_is_accepted_at_the_fulcio_api_only() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = _csr(key, x509.BasicConstraints(ca=False, path_length=None))
    assert parse_csr(csr, sigstore_client=True).public_key() == key.public_key()
    with pytest.raises(UsageError, match="extensions or attributes"):
        parse_csr(csr)  # /v1/certificates keeps its rule: no extensions at all


def test_a_named_subject_is_ignored_not_copied() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "someone@evil.example")])
    assert parse_csr(_csr(key, subject=name), sigstore_client=True)


@pytest.mark.parametrize("extension", [
    x509.BasicConstraints(ca=True, path_length=None),
    x509.SubjectAlternativeName([x509.RFC822Name("admin@example.com")]),
])
def test_anything_else_a_csr_asks_for_is_refused(extension: x509.ExtensionType) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(UsageError, match="extensions or attributes"):
        parse_csr(_csr(key, extension), sigstore_client=True)


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def test_proof_of_possession_over_the_subject() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    proof = key.sign(SUBJECT.encode(), ec.ECDSA(hashes.SHA256()))
    assert key_from_proof(_pem(key), proof, SUBJECT) == key.public_key()
    with pytest.raises(UsageError, match="over the token's subject"):
        key_from_proof(_pem(key), proof, SUBJECT + "x")
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(UsageError, match="over the token's subject"):
        key_from_proof(_pem(other), proof, SUBJECT)


def test_proof_of_possession_needs_a_pem_p256_key() -> None:
    with pytest.raises(UsageError, match="not a PEM public key"):
        key_from_proof("AAAA", b"x", SUBJECT)
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(UsageError, match="only ECDSA P-256"):
        key_from_proof(_pem(p384), p384.sign(SUBJECT.encode(), ec.ECDSA(hashes.SHA256())),
                       SUBJECT)


def test_timestamp_authoritys_json_request_is_the_der_request() -> None:
    digest = hashlib.sha256(b"signature").digest()
    der = json_request(json.dumps({"artifactHash": base64.b64encode(digest).decode(),
                                   "hashAlgorithm": "sha256", "nonce": 42}).encode())
    request = tsp.TimeStampReq.load(der)
    assert request["message_imprint"]["hashed_message"].native == digest
    assert request["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert request["nonce"].native == 42
    assert request["cert_req"].native is True


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"artifactHash": "!!"}',
                                  b'{"artifactHash": "AAAA", "hashAlgorithm": "md5"}',
                                  b'{"artifactHash": "AAAA", "nonce": -1}', b"[]"])
def test_malformed_json_timestamp_requests_are_usage_errors(body: bytes) -> None:
    with pytest.raises(UsageError):
        json_request(body)
