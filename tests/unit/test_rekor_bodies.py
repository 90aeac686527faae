"""Rekor entry bodies rebuilt from real bundles' parts, byte for byte, and read back.

Assets (tests/assets/*/README.md): Rekor v2 `hashedrekord` and `dsse` 0.0.2 entries from
Sigstore staging (sigstore-python), a Rekor v1 `dsse` 0.0.1 entry (sigstore/model-transparency)
and a Rekor v1 `intoto` 0.0.2 entry (npm's publish attestation, sigstore-go). The reference
models are sigstore-models', which sigstore-python verifies with.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import rekor_types
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sigstore_models.rekor.v2.entry import CreateEntryRequest as ReferenceRequest
from sigstore_models.rekor.v2.entry import Entry as ReferenceEntry

from signer import dsse
from signer.key_details import key_details
from signer.sigstore_json import Bundle, DsseEnvelope
from signer.transparency import merkle
from signer.transparency import rekor_bodies as rb
from signer.transparency.rekor import hashedrekord_body
from tests.adversarial.builders import asset_text

V2_HASHEDREKORD = Bundle.from_json(asset_text("sigstore-python/staging-rekor-v2.txt.sigstore.json"))
V2_DSSE = Bundle.from_json(asset_text("sigstore-python/a.dsse.staging-rekor-v2.txt.sigstore.json"))
V1_DSSE = Bundle.from_json(asset_text("model-transparency/model.sig.sigstore.json"))
NPM = json.loads(asset_text("sigstore-go/bundle-publish.json"))


def _body(bundle: Bundle) -> bytes:
    return bundle.verification_material.tlog_entries[0].canonicalized_body


def _leaf(bundle: Bundle) -> x509.Certificate:
    certificate = bundle.verification_material.certificate
    assert certificate is not None
    return x509.load_der_x509_certificate(certificate.raw_bytes)


def _cert_verifier(bundle: Bundle) -> rb.V2Verifier:
    return rb.certificate_verifier(_leaf(bundle))


def test_v2_hashedrekord_body_is_rebuilt_from_the_bundle() -> None:
    signed = V2_HASHEDREKORD.message_signature
    assert signed is not None and signed.message_digest is not None
    body = rb.hashedrekord_v002_body(signed.message_digest.digest, signed.signature,
                                     _cert_verifier(V2_HASHEDREKORD))
    assert body == _body(V2_HASHEDREKORD)
    parsed = rb.parse_body(body)
    assert isinstance(parsed, rb.V2Entry) and parsed.spec.hashed_rekord_v002 is not None
    assert parsed.spec.hashed_rekord_v002.data.digest == signed.message_digest.digest
    assert ReferenceEntry.from_json(body).to_dict() == parsed.to_dict()


def test_v2_dsse_body_is_rebuilt_from_the_bundle() -> None:
    envelope = V2_DSSE.dsse_envelope
    assert envelope is not None
    body = rb.dsse_v002_body(envelope, _cert_verifier(V2_DSSE))
    assert body == _body(V2_DSSE)
    parsed = rb.parse_body(body)
    assert isinstance(parsed, rb.V2Entry) and parsed.spec.dsse_v002 is not None
    assert parsed.spec.dsse_v002.payload_hash.digest == dsse.payload_sha256(envelope)
    assert [s.content for s in parsed.spec.dsse_v002.signatures] == [envelope.signatures[0].sig]
    assert ReferenceEntry.from_json(body).to_dict() == parsed.to_dict()


def test_dsse_as_hashedrekord_is_what_sigstore_python_expects() -> None:
    envelope = V2_DSSE.dsse_envelope
    assert envelope is not None
    body = rb.dsse_as_hashedrekord_v002_body(envelope, _cert_verifier(V2_DSSE))
    parsed = rb.parse_body(body)
    assert isinstance(parsed, rb.V2Entry) and parsed.spec.hashed_rekord_v002 is not None
    # sigstore-python 4.x (verifier._validate_hashedrekord_v002_dsse_entry_body): the digest is
    # SHA-256 over PAE(payloadType, payload), the content the envelope's one signature.
    assert parsed.spec.hashed_rekord_v002.data.digest == hashlib.sha256(
        dsse.pae(envelope.payload_type, envelope.payload)).digest()
    assert parsed.spec.hashed_rekord_v002.signature.content == envelope.signatures[0].sig
    assert ReferenceEntry.from_json(body).to_dict() == parsed.to_dict()


def test_v1_dsse_body_is_rebuilt_from_the_bundle_and_the_submitted_envelope() -> None:
    envelope = V1_DSSE.dsse_envelope
    assert envelope is not None
    # The log hashed the envelope as sigstore-python submitted it: json.dumps of its dict.
    submitted = json.dumps(envelope.to_dict()).encode()
    pem = _leaf(V1_DSSE).public_bytes(serialization.Encoding.PEM)
    body = rb.dsse_v001_body(submitted, envelope, pem)
    assert body == _body(V1_DSSE)
    parsed = rb.parse_body(body)
    assert parsed == rb.DsseV001(hashlib.sha256(submitted).digest(),
                                 dsse.payload_sha256(envelope),
                                 ((envelope.signatures[0].sig, pem),))


def test_v1_intoto_body_is_rebuilt_from_the_bundle_and_the_submitted_envelope() -> None:
    envelope = DsseEnvelope.from_dict(NPM["dsseEnvelope"])
    body = base64.b64decode(NPM["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])
    parsed = rb.parse_body(body)
    assert isinstance(parsed, rb.IntotoV002)
    assert parsed.payload_type == envelope.payload_type
    assert parsed.payload_hash == dsse.payload_sha256(envelope)
    [signature] = parsed.signatures
    assert signature.signature == envelope.signatures[0].sig  # the double base64, undone
    assert signature.keyid == envelope.signatures[0].keyid
    # sigstore-js submitted JSON.stringify({payload, payloadType, signatures: [{keyid, sig}]}).
    raw = NPM["dsseEnvelope"]
    submitted = json.dumps({"payload": raw["payload"], "payloadType": raw["payloadType"],
                            "signatures": [{"keyid": raw["signatures"][0]["keyid"],
                                            "sig": raw["signatures"][0]["sig"]}]},
                           separators=(",", ":")).encode()
    assert parsed.envelope_hash == hashlib.sha256(submitted).digest()
    assert rb.intoto_v002_body(submitted, envelope, signature.public_key) == body


def test_v1_hashedrekord_body_reads_what_rekor_py_writes() -> None:
    bundle = Bundle.from_json(asset_text("bundle-from-foreign-service.sigstore.json"))
    body = _body(bundle)
    parsed = rb.parse_body(body)
    assert isinstance(parsed, rb.HashedRekordV001) and parsed.algorithm == "sha256"
    assert hashedrekord_body(parsed.digest, parsed.signature, parsed.public_key) == body


def test_v2_requests_are_read_by_the_reference() -> None:
    signed = V2_HASHEDREKORD.message_signature
    assert signed is not None and signed.message_digest is not None
    verifier = _cert_verifier(V2_HASHEDREKORD)
    request = rb.hashedrekord_v002_request(signed.message_digest.digest, signed.signature,
                                           verifier)
    reference = ReferenceRequest.from_json(request)
    assert reference.hashed_rekord_request_v002 is not None
    assert json.loads(reference.to_json()) == json.loads(request)
    parsed = rb.parse_create_entry_request(request)
    assert parsed.hashed_rekord_request_v002 is not None
    assert parsed.hashed_rekord_request_v002.signature.verifier == verifier

    envelope = V2_DSSE.dsse_envelope
    assert envelope is not None
    dsse_request = rb.dsse_v002_request(envelope, [_cert_verifier(V2_DSSE)])
    assert json.loads(ReferenceRequest.from_json(dsse_request).to_json()) == \
        json.loads(dsse_request)
    parsed = rb.parse_create_entry_request(dsse_request)
    assert parsed.dsse_request_v002 is not None
    assert parsed.dsse_request_v002.envelope == envelope


def test_key_details_names_sigstores_key_kinds() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    assert key_details(p384) == "PKIX_ECDSA_P384_SHA_384"
    assert rb.public_key_verifier(p384) == rb.V2Verifier(
        "PKIX_ECDSA_P384_SHA_384", public_key=rb.V2PublicKey(p384.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)))
    assert key_details(ed25519.Ed25519PrivateKey.generate().public_key()) == "PKIX_ED25519"
    assert key_details(rsa.generate_private_key(65537, 3072).public_key()) == \
        "PKIX_RSA_PKCS1V15_3072_SHA256"
    with pytest.raises(ValueError, match="secp256k1"):
        key_details(ec.generate_private_key(ec.SECP256K1()).public_key())


def _v2_body_with(change: dict[str, Any]) -> bytes:
    data = json.loads(_body(V2_HASHEDREKORD))
    data["spec"]["hashedRekordV002"].update(change)
    return json.dumps(data).encode()


@pytest.mark.parametrize(("body", "message"), [
    (b"{", "log entry body is not JSON"),
    (b"[]", "not a JSON object"),
    (b'{"kind": "rekord", "apiVersion": "0.0.1"}', "kind 'rekord' version '0.0.1' is not one"),
    (b'{"kind": "hashedrekord", "apiVersion": "0.0.2", "spec": {}}',
     "spec must hold hashedRekordV002"),
    (_v2_body_with({"data": {"algorithm": "SHA2_256"}}), "hashedRekordV002.data.digest: required"),
    (_v2_body_with({"extra": 1}), "hashedRekordV002.extra: unknown field"),
    (b'{"kind": "dsse", "apiVersion": "0.0.1", "spec": {"signatures": []}}',
     "spec.signatures: expected a non-empty list"),
    (b'{"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {"data": {"hash": '
     b'{"algorithm": "md5", "value": "00"}}}}', "'md5' is not sha256"),
    (b'{"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {"data": {"hash": '
     b'{"algorithm": "sha256", "value": "AB"}}}}', "spec.data.hash.value: expected 64"),
])
def test_malformed_bodies_are_named(body: bytes, message: str) -> None:
    with pytest.raises(rb.RekorBodyError) as refused:
        rb.parse_body(body)
    assert message in str(refused.value)


def test_a_v2_verifier_holds_exactly_one_key() -> None:
    verifier = _cert_verifier(V2_HASHEDREKORD)
    both = rb.V2Verifier(verifier.key_details, rb.V2PublicKey(b"k"), verifier.x509_certificate)
    with pytest.raises(ValueError, match="exactly one of publicKey and x509Certificate"):
        rb.hashedrekord_v002_body(b"\0" * 32, b"sig", both)
    request = json.loads(rb.hashedrekord_v002_request(b"\0" * 32, b"sig", verifier))
    del request["hashedRekordRequestV002"]["signature"]["verifier"]["x509Certificate"]
    with pytest.raises(rb.RekorBodyError, match="exactly one of publicKey"):
        rb.parse_create_entry_request(json.dumps(request))
    with pytest.raises(rb.RekorBodyError, match="exactly one of hashedRekordRequestV002"):
        rb.parse_create_entry_request("{}")


def test_v1_proposed_entries_are_read_as_rekor_py_writes_them() -> None:
    envelope = V1_DSSE.dsse_envelope
    assert envelope is not None
    pem = _leaf(V1_DSSE).public_bytes(serialization.Encoding.PEM)
    # sigstore-python's RekorClient._build_dsse_request, through rekor-types' model.
    proposed = rekor_types.Dsse(spec=rekor_types.dsse.DsseSchema(
        proposed_content=rekor_types.dsse.ProposedContent(
            envelope=envelope.to_json(), verifiers=[base64.b64encode(pem).decode()])))
    parsed = rb.parse_proposed_entry(proposed.model_dump(mode="json", by_alias=True))
    assert parsed == rb.DsseProposalV001(envelope.to_json(), (pem,))
    # A hashedrekord's proposed entry is its body.
    body = _body(Bundle.from_json(asset_text("bundle-from-foreign-service.sigstore.json")))
    assert rb.parse_proposed_entry(json.loads(body)) == rb.parse_body(body)


@pytest.mark.parametrize(("proposed", "message"), [
    ([], "a JSON object"),
    ({"kind": "intoto", "apiVersion": "0.0.2"}, "kind 'intoto' version '0.0.2' is not one"),
    ({"kind": "dsse", "apiVersion": "0.0.1", "spec": {}}, "spec.proposedContent: expected"),
    ({"kind": "dsse", "apiVersion": "0.0.1", "spec": {"proposedContent": {
        "envelope": "{}", "verifiers": ["%%"]}}}, "verifiers[0]: not base64"),
    ({"kind": "dsse", "apiVersion": "0.0.1", "spec": {"proposedContent": {
        "verifiers": ["AA=="]}}}, "proposedContent.envelope: expected non-empty text"),
    ({"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {"n": 1e400}},
     "no canonical JSON"),
])
def test_malformed_proposed_entries_are_named(proposed: object, message: str) -> None:
    with pytest.raises(rb.RekorBodyError) as refused:
        rb.parse_proposed_entry(proposed)
    assert message in str(refused.value)


@pytest.mark.parametrize("bundle", [V2_HASHEDREKORD, V2_DSSE], ids=["hashedrekord", "dsse"])
def test_a_rekor_v2_leaf_is_the_rfc6962_leaf_hash_of_the_body(bundle: Bundle) -> None:
    entry = bundle.verification_material.tlog_entries[0]
    proof = entry.inclusion_proof
    merkle.verify_inclusion(merkle.leaf_hash(entry.canonicalized_body), proof.log_index,
                            proof.tree_size, proof.hashes, proof.root_hash)
