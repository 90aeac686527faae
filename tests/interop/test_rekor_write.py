"""Rekor's write routes (v1 ``POST /api/v1/log/entries``, v2 ``POST /api/v2/log/entries``)
of a real service: what they log, in which log, and their refusals, each a problem document
whose detail says what to fix. sigstore-python's own signing through them:
test_sigstore_signs.py."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sigstore_models.rekor.v1 import TransparencyLogEntry as ReferenceEntry

from signer import dsse, slsa
from signer.transparency import rekor_bodies
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.interop.conftest import Signer, leaf_and_key
from tests.service_process import Service

pytestmark = pytest.mark.integration
PREDICATE_TYPE = "https://example.com/test-result/v1"


def _ecdsa(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _v2_hashedrekord(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, data: bytes,
                     signature: bytes | None = None) -> dict[str, Any]:
    request = rekor_bodies.hashedrekord_v002_request(
        hashlib.sha256(data).digest(), signature or _ecdsa(key, data),
        rekor_bodies.certificate_verifier(cert))
    body: dict[str, Any] = json.loads(request)
    return body


def _envelope(key: ec.EllipticCurvePrivateKey, name: str, digest: str,
              predicate_type: str = PREDICATE_TYPE,
              predicate: dict[str, Any] | None = None) -> dsse.DsseEnvelope:
    statement = dsse.Statement.about(name, bytes.fromhex(digest), predicate_type,
                                     predicate or {"passed": True})

    class Signing:
        @staticmethod
        def sign(data: bytes) -> bytes:
            return _ecdsa(key, data)

    return dsse.sign_envelope(dsse.IN_TOTO_PAYLOAD_TYPE, statement.to_json(), Signing())


def _dsse_request(version: int, cert: x509.Certificate, envelope: dsse.DsseEnvelope
                  ) -> dict[str, Any]:
    if version == 2:
        body: dict[str, Any] = json.loads(rekor_bodies.dsse_v002_request(
            envelope, [rekor_bodies.certificate_verifier(cert)]))
        return body
    return {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": envelope.to_json(),
        "verifiers": [base64.b64encode(cert.public_bytes(Encoding.PEM)).decode()]}}}


def _post(service: Service, signer: Signer | None, version: int, body: dict[str, Any]
          ) -> requests.Response:
    base = service.url if signer is None else f"{service.url}/ns/{signer.tenant.namespace}"
    return requests.post(f"{base}/api/v{version}/log/entries", json=body, timeout=30)


def _refused(answer: requests.Response, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    detail = answer.json()["detail"]
    for word in words:
        assert word in detail, detail


def test_v2_hashedrekord_is_logged_once_in_the_v2_log(
        service: Service, issuer: FakeGitHubIssuer, owner_tenant: Signer) -> None:
    cert, key = leaf_and_key(service, issuer, owner_tenant)
    data = uuid.uuid4().bytes
    request = _v2_hashedrekord(cert, key, data)
    created = _post(service, owner_tenant, 2, request)
    assert created.status_code == 201, created.text
    entry = created.json()
    ReferenceEntry.from_dict(entry)  # what sigstore-python's RekorV2Client parses
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert "inclusionPromise" not in entry and int(entry.get("integratedTime", 0)) == 0
    assert entry["inclusionProof"]["checkpoint"]["envelope"]
    trusted = requests.get(f"{service.url}/v1/trust-root", timeout=30).json()
    v2_keys = {t["checkpointKeyId"]["keyId"] for t in trusted["tlogs"] if "checkpointKeyId" in t}
    assert entry["logId"]["keyId"] in v2_keys

    index = entry["logIndex"]
    again = _post(service, None, 2, request)  # at the root too: the same entry
    _refused(again, 409, "Rekor v2 log", f"index {index}")
    # The same signature through Rekor v1 is the same signature: it names where it is.
    digest = hashlib.sha256(data).hexdigest()
    v1 = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": digest}},
        "signature": {"content": request["hashedRekordRequestV002"]["signature"]["content"],
                      "publicKey": {"content": base64.b64encode(
                          cert.public_bytes(Encoding.PEM)).decode()}}}}
    _refused(_post(service, owner_tenant, 1, v1), 409, "Rekor v2 log", f"index {index}")

    [stored] = service.get("/v1/entries", owner_tenant.tenant.api_key, params={
        "namespace": owner_tenant.tenant.namespace,
        "name": f"sha256:{digest}@sha256:{digest}"}).json()["entries"]
    assert (stored["log_tree"], stored["log_index"]) == ("tlog2", int(index))
    # v1's search by digest finds v1 entries only: a v2 index is no v1 entry.
    found = service.post("/api/v1/log/entries/retrieve", owner_tenant.tenant.api_key,
                         json={"hash": f"sha256:{digest}"})
    assert found.status_code == 200 and found.json() == [], found.text


def test_v2_refusals_say_what_to_fix(service: Service, issuer: FakeGitHubIssuer,
                                     owner_tenant: Signer) -> None:
    cert, key = leaf_and_key(service, issuer, owner_tenant)
    data = uuid.uuid4().bytes
    # Another namespace's URL: the leaf is this namespace's.
    other = service.tenant(owner=f"other-{uuid.uuid4().hex[:6]}")
    wrong = requests.post(f"{service.url}/ns/{other.namespace}/api/v2/log/entries",
                          json=_v2_hashedrekord(cert, key, data), timeout=30)
    _refused(wrong, 403, f"namespace '{owner_tenant.tenant.namespace}'", other.namespace)
    # A signature over other data does not verify over the digest.
    forged = _v2_hashedrekord(cert, key, data, signature=_ecdsa(key, b"something else"))
    _refused(_post(service, owner_tenant, 2, forged), 400, "does not verify",
             hashlib.sha256(data).hexdigest())
    # A bare public key is no leaf of this CA.
    stranger = ec.generate_private_key(ec.SECP256R1())
    bare = json.loads(rekor_bodies.hashedrekord_v002_request(
        hashlib.sha256(data).digest(), _ecdsa(stranger, data),
        rekor_bodies.public_key_verifier(stranger.public_key())))
    _refused(_post(service, None, 2, bare), 400, "bare public key", "/api/v2/signingCert")
    # Malformed requests: neither kind, a digest that is not SHA-256, wrong keyDetails.
    _refused(_post(service, None, 2, {}), 400, "exactly one of hashedRekordRequestV002")
    short = _v2_hashedrekord(cert, key, data)
    short["hashedRekordRequestV002"]["digest"] = base64.b64encode(b"\0" * 20).decode()
    _refused(_post(service, None, 2, short), 400, "20 bytes", "SHA-256")
    mislabeled = _v2_hashedrekord(cert, key, data)
    mislabeled["hashedRekordRequestV002"]["signature"]["verifier"]["keyDetails"] = \
        "PKIX_ED25519"
    _refused(_post(service, None, 2, mislabeled), 400, "keyDetails", "PKIX_ECDSA_P256_SHA_256")
    # None of these logged anything.
    digest = hashlib.sha256(data).hexdigest()
    missing = service.get("/v1/entries", owner_tenant.tenant.api_key, params={
        "namespace": owner_tenant.tenant.namespace, "name": f"sha256:{digest}@sha256:{digest}"})
    assert missing.status_code == 404, missing.text


@pytest.mark.parametrize("version", [1, 2])
def test_dsse_is_an_attestation(service: Service, issuer: FakeGitHubIssuer,
                                owner_tenant: Signer, version: int) -> None:
    cert, key = leaf_and_key(service, issuer, owner_tenant)
    digest = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    name = f"ghcr.io/{owner_tenant.repository}"
    envelope = _envelope(key, name, digest)
    created = _post(service, owner_tenant, version, _dsse_request(version, cert, envelope))
    assert created.status_code == 201, created.text
    if version == 2:
        kind = created.json()["kindVersion"]
        index = int(created.json()["logIndex"])
    else:
        [logged] = created.json().values()
        kind = json.loads(base64.b64decode(logged["body"]))
        kind = {"kind": kind["kind"], "version": kind["apiVersion"]}
        index = logged["logIndex"]
    assert kind == {"kind": "dsse", "version": "0.0.1" if version == 1 else "0.0.2"}

    listed = service.get("/v1/attestations", owner_tenant.tenant.api_key, params={
        "namespace": owner_tenant.tenant.namespace, "name": f"{name}@sha256:{digest}"})
    assert listed.status_code == 200, listed.text
    [attestation] = listed.json()["attestations"]
    assert attestation["predicate_type"] == PREDICATE_TYPE
    assert attestation["identity"] == f"repo:{owner_tenant.repository}:ref:refs/tags/v1.2.3"
    assert (attestation["log_tree"], attestation["log_index"]) == (
        "tlog" if version == 1 else "tlog2", index)
    # The stored bundle verifies like one made with 'signer artifact attest'.
    bundle = owner_tenant.workdir / "attestation.sigstore.json"
    bundle.write_text(json.dumps(attestation["bundle"]))
    verified = service.cli("artifact", "verify", "--name", f"{name}@sha256:{digest}",
                           "--bundle", str(bundle), "--predicate-type", PREDICATE_TYPE,
                           "--trust-root", str(owner_tenant.root),
                           "--certificate-oidc-issuer", issuer.url)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    again = _post(service, owner_tenant, version, _dsse_request(version, cert, envelope))
    _refused(again, 409, f"index {index}")
    # Revocable like any attestation: by its name and the ref it was built from.
    revoked = service.cli("artifact", "revoke-signature", "--namespace",
                          owner_tenant.tenant.namespace, "--api-key",
                          owner_tenant.tenant.api_key, "--name", name,
                          "--source-repository-ref", "refs/tags/v1.2.3", "--reason", "test")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    [after] = service.get("/v1/attestations", owner_tenant.tenant.api_key, params={
        "namespace": owner_tenant.tenant.namespace,
        "name": f"{name}@sha256:{digest}"}).json()["attestations"]
    assert after["revoked"] is True


@pytest.mark.parametrize("version", [1, 2])
def test_dsse_refusals(service: Service, issuer: FakeGitHubIssuer, owner_tenant: Signer,
                       version: int) -> None:
    cert, key = leaf_and_key(service, issuer, owner_tenant)
    digest = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    # A subject name that is no artifact name: the attestation is named by the digest.
    odd = _envelope(key, "release notes (final).txt", digest)
    created = _post(service, None, version, _dsse_request(version, cert, odd))
    assert created.status_code == 201, created.text
    listed = service.get("/v1/attestations", owner_tenant.tenant.api_key, params={
        "namespace": owner_tenant.tenant.namespace, "name": f"sha256:{digest}@sha256:{digest}"})
    assert listed.status_code == 200, listed.text
    # An envelope signed by another key than the leaf's.
    stranger = ec.generate_private_key(ec.SECP256R1())
    foreign = _envelope(stranger, "ghcr.io/acme/app", digest)
    _refused(_post(service, None, version, _dsse_request(version, cert, foreign)), 400,
             "does not verify")
    # SLSA provenance is what a token proves, and a Rekor entry carries none.
    provenance = _envelope(key, "ghcr.io/acme/app", digest, slsa.PREDICATE_TYPE)
    _refused(_post(service, None, version, _dsse_request(version, cert, provenance)), 400,
             "SLSA", "signer artifact attest")
    # A bare key as the verifier.
    pem = stranger.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if version == 1:
        bare = _dsse_request(1, cert, foreign)
        bare["spec"]["proposedContent"]["verifiers"] = [base64.b64encode(pem).decode()]
        word = "not a PEM certificate"
    else:
        bare = json.loads(rekor_bodies.dsse_v002_request(
            foreign, [rekor_bodies.public_key_verifier(stranger.public_key())]))
        word = "bare public key"
    _refused(_post(service, None, version, bare), 400, word)
    # Another namespace's URL.
    other = service.tenant(owner=f"other-{uuid.uuid4().hex[:6]}")
    envelope = _envelope(key, "ghcr.io/acme/app", digest)
    wrong = requests.post(f"{service.url}/ns/{other.namespace}/api/v{version}/log/entries",
                          json=_dsse_request(version, cert, envelope), timeout=30)
    _refused(wrong, 403, other.namespace)
