"""signer.dsse against the DSSE specification's vectors and real Sigstore attestations."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signer import dsse
from signer.sigstore_json import Bundle, DsseEnvelope, DsseSignature
from tests.adversarial.builders import asset_text

# The DSSE protocol's worked example (secure-systems-lab/dsse protocol.md, "Test vectors").
SPEC_TYPE, SPEC_BODY = "http://example.com/HelloWorld", b"hello world"

# secure-systems-lab/dsse testvectors/vectors.json: key "A" is RFC 8032's first Ed25519 test key.
KEY_A = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
STATEMENT_PAYLOAD = "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ=="
VECTORS = [  # (id, payload type, payload base64, sig base64, PAE hex, expect)
    ("single-signature", "application/vnd.in-toto+json", STATEMENT_PAYLOAD,
     "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA==",
     "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203433207b225f"
     "74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d656e742f7631227d", True),
    ("non-ascii-payload-type", "application/vnd.exämple+json", STATEMENT_PAYLOAD,
     "xmSk/ug66ysT7ayhkCIjhAq42zgZXSsEWuzUaNL7w2eGAdF/NU6/fRXPtmfN+5DNSAs5/i2lUnHjbbjPsu0tAw==",
     "445353457631203239206170706c69636174696f6e2f766e642e6578c3a46d706c652b6a736f6e203433207b22"
     "5f74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d656e742f7631227d", True),
    ("empty-payload", "application/vnd.in-toto+json", "",
     "gSggCAaTLTYyRH6FIDBem6meyIynsYy8RTHVzwx9tnTb7Bg/1jMWnuVgI/gffqmbsC2VX5/jHfkkDqsj7CDbDg==",
     "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203020", True),
    ("payload-type-swapped", "application/vnd.example.other+json", STATEMENT_PAYLOAD,
     "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA==",
     None, False),
]

DSSE_BUNDLE = Bundle.from_json(asset_text("sigstore-python/a.dsse.staging-rekor-v2.txt.sigstore.json"))
# npm's publish attestation for sigstore@1.3.0, signed by the npm registry's key, which the
# intoto entry of the same asset carries (PEM, base64).
NPM = json.loads(asset_text("sigstore-go/bundle-publish.json"))


def test_pae_is_the_specifications_example() -> None:
    assert dsse.pae(SPEC_TYPE, SPEC_BODY) == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert dsse.pae("t", "é".encode()) == "DSSEv1 1 t 2 é".encode()  # bytes, not characters


@pytest.mark.parametrize(("name", "kind", "payload", "sig", "pae_hex", "accept"), VECTORS,
                         ids=[v[0] for v in VECTORS])
def test_dsse_test_vectors(name: str, kind: str, payload: str, sig: str, pae_hex: str | None,
                           accept: bool) -> None:
    envelope = DsseEnvelope.from_dict({"payload": payload, "payloadType": kind,
                                       "signatures": [{"sig": sig, "keyid": "A"}]})
    if pae_hex is not None:
        assert dsse.pae(kind, envelope.payload).hex() == pae_hex
    key = ed25519.Ed25519PublicKey.from_public_bytes(KEY_A)
    if accept:
        assert dsse.verify_signature(envelope, key).keyid == "A"
    else:
        with pytest.raises(dsse.DsseError, match="no signature of the DSSE envelope"):
            dsse.verify_signature(envelope, key)


def test_a_sigstore_attestation_verifies_with_its_leaf_key() -> None:
    envelope = DSSE_BUNDLE.dsse_envelope
    assert envelope is not None
    certificate = DSSE_BUNDLE.verification_material.certificate
    assert certificate is not None
    key = x509.load_der_x509_certificate(certificate.raw_bytes).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert dsse.verify_signature(envelope, key) == envelope.signatures[0]
    statement = dsse.Statement.parse(envelope.payload)
    assert statement.predicate_type == "https://slsa.dev/provenance/v1"
    digest = bytes.fromhex("e248a5db4933dba6578200238c91a57f5e65b925b73050ae786933468b7ac101")
    subject = statement.subject_with_sha256(digest)
    assert subject is not None and subject.name == "a.txt"
    assert statement.subject_with_sha256(hashlib.sha256(b"other").digest()) is None
    # Over the payload alone (not the PAE) the same signature is no DSSE signature.
    tampered = DsseEnvelope(envelope.payload + b" ", envelope.payload_type, envelope.signatures)
    with pytest.raises(dsse.DsseError):
        dsse.verify_signature(tampered, key)
    retyped = DsseEnvelope(envelope.payload, "application/json", envelope.signatures)
    with pytest.raises(dsse.DsseError):
        dsse.verify_signature(retyped, key)


def test_npm_publish_attestation_verifies_with_the_registry_key() -> None:
    envelope = DsseEnvelope.from_dict(NPM["dsseEnvelope"])
    body = json.loads(base64.b64decode(NPM["verificationMaterial"]["tlogEntries"][0]
                                       ["canonicalizedBody"]))
    pem = base64.b64decode(body["spec"]["content"]["envelope"]["signatures"][0]["publicKey"])
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert dsse.verify_signature(envelope, key).keyid == \
        "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA"
    statement = dsse.Statement.parse(envelope.payload)
    assert statement.type == dsse.STATEMENT_V01
    assert statement.subjects[0].name == "pkg:npm/sigstore@1.3.0"
    assert set(statement.subjects[0].digest) == {"sha512"}


class _EcdsaSigner:
    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


def test_sign_parse_and_verify_round_trip() -> None:
    signer = _EcdsaSigner()
    statement = dsse.Statement.about("app.tar.gz", hashlib.sha256(b"app").digest(),
                                     "https://spdx.dev/Document", {"spdxVersion": "SPDX-2.3"})
    envelope = dsse.sign_envelope(dsse.IN_TOTO_PAYLOAD_TYPE, statement.to_json(), signer)
    parsed = dsse.parse_envelope(envelope.to_json())
    assert parsed == envelope
    assert dsse.verify_signature(parsed, signer.public_key) == parsed.signatures[0]
    assert dsse.Statement.parse(parsed.payload) == statement
    assert dsse.payload_sha256(parsed) == hashlib.sha256(statement.to_json()).digest()
    with pytest.raises(dsse.DsseError):
        dsse.verify_signature(parsed, _EcdsaSigner().public_key)


@pytest.mark.parametrize(("text", "message"), [
    ('{"payload": "e30=", "payloadType": "x"}', "it carries no signature"),
    ('{"payload": "e30=", "payloadType": "", "signatures": [{"sig": "AA=="}]}',
     "payloadType is empty"),
    ('{"payloadType": "x", "signatures": []}', "payload: required"),
    ('{"payload": "e30=", "payloadType": "x", "signatures": [{"sig": "!"}]}',
     "signatures[0].sig: not base64"),
    ("[]", "expected an object"),
])
def test_malformed_envelopes_are_named(text: str, message: str) -> None:
    with pytest.raises(dsse.DsseError, match="malformed DSSE envelope") as refused:
        dsse.parse_envelope(text)
    assert message in str(refused.value)


GOOD = {"_type": dsse.STATEMENT_V1, "predicateType": "https://slsa.dev/provenance/v1",
        "subject": [{"name": "a", "digest": {"sha256": "ab" * 32}}], "predicate": {}}


@pytest.mark.parametrize(("change", "message"), [
    ({"_type": "https://in-toto.io/Statement/v2"}, "_type is 'https://in-toto.io/Statement/v2'"),
    ({"_type": None}, "_type is None"),
    ({"predicateType": ""}, "predicateType must be a non-empty string"),
    ({"predicate": []}, "predicate must be a JSON object"),
    ({"subject": []}, "subject must be a non-empty list"),
    ({"subject": "a"}, "subject must be a non-empty list"),
    ({"subject": [7]}, "subject[0] must be an object"),
    ({"subject": [{"name": 1, "digest": {"sha256": "ab" * 32}}]}, "subject[0].name must be"),
    ({"subject": [{"name": "a", "digest": {}}]}, "subject[0].digest must be a non-empty object"),
    ({"subject": [{"name": "a", "digest": {"sha256": "AB" * 32}}]}, "64 lowercase hex"),
    ({"subject": [{"name": "a", "digest": {"sha1": 5}}]}, "subject[0].digest.sha1 must be"),
])
def test_malformed_statements_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(dsse.DsseError) as refused:
        dsse.Statement.parse(json.dumps({**GOOD, **change}).encode())
    assert message in str(refused.value)


def test_statement_parse_refuses_non_json_and_duplicates_and_ignores_unknown_fields() -> None:
    with pytest.raises(dsse.DsseError, match="not JSON"):
        dsse.Statement.parse(b"{")
    with pytest.raises(dsse.DsseError, match="not UTF-8"):
        dsse.Statement.parse(b"\xff")
    with pytest.raises(dsse.DsseError, match="duplicate key 'subject'"):
        dsse.Statement.parse(b'{"subject": [], ' + json.dumps(GOOD).encode()[1:])
    extended = dsse.Statement.parse(json.dumps({**GOOD, "future": 1}).encode())
    assert extended.subjects[0].digest == {"sha256": "ab" * 32}


def test_an_envelope_with_two_signatures_names_the_one_that_verifies() -> None:
    first, second = _EcdsaSigner(), _EcdsaSigner()
    one = dsse.sign_envelope("text/plain", b"x", first, keyid="first")
    two = dsse.sign_envelope("text/plain", b"x", second, keyid="second")
    both = DsseEnvelope(b"x", "text/plain", (*one.signatures, *two.signatures))
    assert dsse.verify_signature(both, second.public_key) == DsseSignature(
        two.signatures[0].sig, "second")
