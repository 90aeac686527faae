"""signer.sigstore_json against sigstore-models, the reference encoding sigstore-python uses.

Each document goes through both and must come out the same; what the reference refuses, we
refuse with the field's JSON path; what we write, the reference reads back unchanged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore_models.bundle.v1 import Bundle as ReferenceBundle
from sigstore_models.trustroot.v1 import ClientTrustConfig as ReferenceClientTrustConfig
from sigstore_models.trustroot.v1 import TrustedRoot as ReferenceTrustedRoot

from signer import bundle, trust
from signer.errors import UsageError
from signer.sigstore_json import Bundle, ClientTrustConfig, TrustedRoot, WireError
from tests.adversarial.builders import asset_text

BUNDLE = asset_text("bundle-from-foreign-service.sigstore.json")
ROOT = asset_text("trusted_root-foreign-service.json")


@pytest.mark.parametrize(("ours", "reference", "text"), [
    (Bundle, ReferenceBundle, BUNDLE), (TrustedRoot, ReferenceTrustedRoot, ROOT)])
def test_documents_read_and_write_as_the_reference_does(ours: Any, reference: Any,
                                                        text: str) -> None:
    model = ours.from_json(text)
    assert model.to_dict() == reference.from_json(text).to_dict() == json.loads(text)
    assert reference.from_json(model.to_json()).to_dict() == json.loads(text)


# Real bundles from the Sigstore projects' test assets (see tests/assets/*/README.md): a DSSE
# envelope logged in Rekor v2, a Rekor v2 hashedrekord, managed-key bundles with a key hint
# (v0.1 with a DSSE envelope, v0.3 with a message signature), a v0.2 certificate chain, and
# a Rekor v1 dsse entry.
PUBLIC_BUNDLES = [
    "sigstore-python/a.dsse.staging-rekor-v2.txt.sigstore.json",
    "sigstore-python/staging-rekor-v2.txt.sigstore.json",
    "sigstore-go/bundle-public-key.json",
    "sigstore-go/public-key-validity.sigstore.json",
    "sigstore-go/bundle-v02.json",
    "model-transparency/model.sig.sigstore.json",
]


@pytest.mark.parametrize("text", [asset_text(name) for name in PUBLIC_BUNDLES],
                         ids=PUBLIC_BUNDLES)
def test_dsse_chain_and_key_hint_bundles_read_and_write_as_the_reference_does(text: str) -> None:
    model = Bundle.from_json(text)
    assert Bundle.from_json(model.to_json()) == model
    if "tlogEntries" not in text:
        # sigstore-models requires tlogEntries, a repeated field protobuf lets a bundle omit
        # (sigstore-go writes such bundles): sigstore-python cannot read this one. We read it,
        # and write the empty list, which the reference then reads.
        with pytest.raises(ValueError, match="tlogEntries"):
            ReferenceBundle.from_json(text)
        expected = json.loads(text)
        expected["verificationMaterial"]["tlogEntries"] = []
        assert model.to_dict() == expected
        assert ReferenceBundle.from_json(model.to_json()).to_dict() == expected
        return
    assert model.to_dict() == ReferenceBundle.from_json(text).to_dict() == json.loads(text)
    assert ReferenceBundle.from_json(model.to_json()).to_dict() == json.loads(text)


def test_dsse_envelope_chain_and_hint_are_typed() -> None:
    dsse = Bundle.from_json(asset_text(PUBLIC_BUNDLES[0]))
    assert dsse.dsse_envelope is not None and dsse.message_signature is None
    assert dsse.dsse_envelope.payload_type == "application/vnd.in-toto+json"
    assert json.loads(dsse.dsse_envelope.payload)["_type"] == "https://in-toto.io/Statement/v1"
    assert [len(s.sig) for s in dsse.dsse_envelope.signatures] == [72]
    assert dsse.dsse_envelope.signatures[0].keyid is None
    keyed = Bundle.from_json(asset_text(PUBLIC_BUNDLES[2]))
    assert keyed.verification_material.public_key is not None
    assert keyed.verification_material.public_key.hint == \
        "9a76331edc1cfd3933040996615b1c06adbe6f9b4f11df4106dcceb66e3bdb1b"
    assert keyed.dsse_envelope is not None
    assert keyed.dsse_envelope.payload == b"hello, world!"
    assert keyed.dsse_envelope.signatures[0].keyid == ""
    chain = Bundle.from_json(asset_text("sigstore-go/bundle-v02.json"))
    certificates = chain.verification_material.x509_certificate_chain
    assert certificates is not None and chain.verification_material.certificate is None
    assert [len(c.raw_bytes) for c in certificates.certificates] == [2077]


def test_typed_fields() -> None:
    entry = Bundle.from_json(BUNDLE).verification_material.tlog_entries[0]
    raw = json.loads(BUNDLE)["verificationMaterial"]["tlogEntries"][0]
    assert entry.log_index == int(raw["logIndex"]) and isinstance(entry.log_index, int)
    assert entry.inclusion_proof.tree_size > entry.inclusion_proof.log_index
    assert isinstance(entry.canonicalized_body, bytes)
    assert json.loads(entry.canonicalized_body)["kind"] == "hashedrekord"
    log = TrustedRoot.from_json(ROOT).tlogs[0]
    assert log.public_key.valid_for is not None
    assert log.public_key.valid_for.start.tzinfo is not None


def test_client_trust_config_is_read_by_the_reference() -> None:
    material = trust.parse(ROOT)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    start = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    retired = trust.log_instance("http://127.0.0.1:1", key, start, datetime(2026, 2, 1, tzinfo=UTC))
    text = trust.client_trust_config(
        trust.TrustMaterial(material.cas, material.tsas, (*material.tlogs, retired),
                            material.ctlogs), "http://127.0.0.1:1", start)
    config = ReferenceClientTrustConfig.from_json(text)
    assert config.to_dict() == json.loads(text) == ClientTrustConfig.from_json(text).to_dict()
    listed = config.trusted_root.tlogs[-1].public_key.valid_for
    assert (listed.start, listed.end) == (start, datetime(2026, 2, 1, tzinfo=UTC))
    assert config.signing_config.tsa_urls[0].url == "http://127.0.0.1:1/api/v1/timestamp"


def _mutated(path: list[str | int], value: object) -> str:
    data = json.loads(BUNDLE)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(data)


ENTRY = ["verificationMaterial", "tlogEntries", 0]


@pytest.mark.parametrize(("path", "value", "message"), [
    ([*ENTRY, "logIndex"], "-1", "verificationMaterial.tlogEntries[0].logIndex: '-1' is not"),
    ([*ENTRY, "logIndex"], str(2**64), "logIndex: '18446744073709551616' is not an unsigned"),
    ([*ENTRY, "logIndex"], 1.5, "logIndex: expected a 64-bit integer"),
    ([*ENTRY, "canonicalizedBody"], "not base64!", "canonicalizedBody: not base64"),
    # inclusionProof may be absent (v0.1 bundles): the verifier says when it is required.
    ([*ENTRY, "inclusionProof", "rootHash"], KeyError, "inclusionProof.rootHash: required"),
    ([*ENTRY, "inclusionProof", "hashes"], "AAAA", "inclusionProof.hashes: expected a list"),
    ([*ENTRY, "logID"], {"keyId": "AAAA"}, "tlogEntries[0].logID: unknown field"),
    (["dsseEnvelope"], {"payloadType": "x", "signatures": []}, "dsseEnvelope.payload: required"),
    (["dsseEnvelope"], {"payload": "", "payloadType": "x", "signatures": [{"sig": 1}]},
     "dsseEnvelope.signatures[0].sig: expected base64"),
    (["verificationMaterial", "publicKey"], {"hint": 7}, "publicKey.hint: expected text"),
    (["verificationMaterial", "x509CertificateChain"], {"certificates": {}},
     "x509CertificateChain.certificates: expected a list"),
    (["messageSignature", "signature"], 7, "messageSignature.signature: expected base64"),
    (["verificationMaterial"], [], "verificationMaterial: expected an object"),
])
def test_malformed_fields_are_named(path: list[str | int], value: object, message: str) -> None:
    text = _mutated(path, value)
    with pytest.raises(ValueError):  # the reference says it its own way
        ReferenceBundle.from_json(text)
    with pytest.raises(WireError) as caught:
        Bundle.from_json(text)
    assert message in str(caught.value)
    with pytest.raises(UsageError) as refused:
        bundle.parse(text)
    assert message in refused.value.explain()


@pytest.mark.parametrize(("path", "value", "message"), [
    (["mediaType"], "application/json", "has the media type 'application/json'"),
    (["dsseEnvelope"], {"payload": "", "payloadType": "x", "signatures": []},
     "holds a DSSE envelope"),
    (["verificationMaterial", "certificate"], KeyError, "has no certificate"),
])
def test_bundles_signer_cannot_verify_are_refused_by_what_they_are(
        path: list[str | int], value: object, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        bundle.parse(_mutated(path, value))
    assert message in refused.value.explain()


def test_trust_root_errors_are_named() -> None:
    data = json.loads(ROOT)
    data["tlogs"][0]["publicKey"]["validFor"]["start"] = "yesterday"
    with pytest.raises(UsageError) as refused:
        trust.parse(json.dumps(data))
    assert "tlogs[0].publicKey.validFor.start: 'yesterday' is not an RFC 3339 timestamp" in \
        refused.value.explain()
