"""POST /v1/sign: one request per signing (CSR + signature over the digest → bundle), with
every refusal the two-step API has, idempotent on a retry."""

from __future__ import annotations

import base64
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding

from signer import bundle
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.integration.test_refusals import assert_problem, nothing_stored
from tests.service_process import Service, Tenant

pytestmark = pytest.mark.integration

DIGEST = hashlib.sha256(b"one request").hexdigest()
NAME = f"ghcr.io/acme/app@sha256:{DIGEST}"


def sign_body(namespace: str, name: str = NAME, key: ec.EllipticCurvePrivateKey | None = None,
              **provenance: str) -> dict[str, object]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    digest = bytes.fromhex(name.rsplit(":", 1)[1]) if "@sha256:" in name else bytes(32)
    signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    return {"namespace": namespace, "name": name,
            "csr": csr.public_bytes(Encoding.PEM).decode(),
            "signature": base64.b64encode(signature).decode(), "provenance": provenance}


def test_one_request_signs_and_a_retry_gets_the_same_entry(
        service: Service, issuer: FakeGitHubIssuer, tenant: Tenant) -> None:
    body = sign_body(tenant.namespace)
    created = service.post("/v1/sign", issuer.token(), json=body)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["name"] == NAME and view["digest"] == f"sha256:{DIGEST}"
    assert view["identity"] and view["provenance"]["provenance_source"] == "token"
    artifact = bundle.parse(json.dumps(view["bundle"]), "the /v1/sign bundle")
    csr = x509.load_pem_x509_csr(str(body["csr"]).encode())
    assert artifact.certificate.public_key() == csr.public_key()
    # The same view as POST /v1/signatures gives, and found by GET /v1/entries.
    entries = service.get("/v1/entries", tenant.api_key,
                          params={"namespace": tenant.namespace, "name": NAME}).json()["entries"]
    assert [e["id"] for e in entries] == [view["id"]]
    assert entries[0] == view
    shown = service.get(f"/v1/signatures/{view['id']}", tenant.api_key,
                        params={"namespace": tenant.namespace})
    assert shown.json() == view
    sizes = log_sizes(service)
    again = service.post("/v1/sign", issuer.token(), json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == view["id"] and again.json()["bundle"] == view["bundle"]
    assert len(service.get("/v1/entries", tenant.api_key, params={
        "namespace": tenant.namespace, "name": NAME}).json()["entries"]) == 1
    # Neither a second signature entry nor the retry's certificate was logged.
    assert log_sizes(service) == sizes


def test_concurrent_copies_of_one_upload_get_one_entry(
        service: Service, issuer: FakeGitHubIssuer, tenant: Tenant) -> None:
    """Copies of one request racing each other, in one log batch or several, among other
    signings: one is stored and logged, every copy answers with it, and the others' entries
    are all there."""
    name = f"ghcr.io/acme/race@sha256:{hashlib.sha256(b'raced').hexdigest()}"
    copy = sign_body(tenant.namespace, name)
    others = [sign_body(tenant.namespace, f"ghcr.io/acme/race@sha256:"
                        f"{hashlib.sha256(str(i).encode()).hexdigest()}") for i in range(8)]
    sizes = log_sizes(service)
    token = issuer.token()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda body: service.post("/v1/sign", token, json=body),
                                [copy] * 8 + others))
    copies, rest = answers[:8], answers[8:]
    assert sorted(a.status_code for a in copies) == [200] * 7 + [201], [a.text for a in copies]
    assert len({a.json()["id"] for a in copies}) == 1
    assert all(a.status_code == 201 for a in rest), [a.text for a in rest]
    assert log_sizes(service) == (sizes[0] + 9, sizes[1] + 9)
    stored = service.get("/v1/entries", tenant.api_key,
                         params={"namespace": tenant.namespace, "name": name}).json()
    assert [e["id"] for e in stored["entries"]] == [copies[0].json()["id"]]


def log_sizes(service: Service) -> tuple[int, int]:
    """The signature log's and the CT log's sizes."""
    return (service.get("/api/v1/log").json()["treeSize"],
            service.get("/ct/v1/get-sth").json()["tree_size"])


def test_declared_provenance_with_an_api_key(service: Service, tenant: Tenant) -> None:
    name = f"ghcr.io/acme/lib@sha256:{hashlib.sha256(b'declared').hexdigest()}"
    body = sign_body(tenant.namespace, name, source_repository_ref="refs/tags/v2.0.0")
    created = service.post("/v1/sign", tenant.api_key, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["provenance"]["source_repository_ref"] == "refs/tags/v2.0.0"
    assert created.json()["provenance"]["provenance_source"] == "declared"


def test_refusals_leave_nothing_behind(service: Service, issuer: FakeGitHubIssuer,
                                       tenant: Tenant) -> None:
    token = issuer.token()
    good = sign_body(tenant.namespace)
    post = lambda body, who=token: service.post("/v1/sign", who, json=body)  # noqa: E731
    assert_problem(post(dict(good, csr="garbage")), 400, "PKCS#10")
    other_key = sign_body(tenant.namespace)
    assert_problem(post(dict(good, signature=other_key["signature"])), 400, "does not verify",
                   "CSR's key")
    assert_problem(post(dict(good, name="ghcr.io/acme/app:v1")), 400, "has no digest")
    assert_problem(post(dict(good, signature="not base64!")), 400, "base64")
    other = service.tenant(owner="someone-else")
    assert_problem(post(dict(good, namespace=other.namespace)), 403, "may not sign")
    assert_problem(post(dict(good, namespace=other.namespace), tenant.api_key), 403)
    assert_problem(post(sign_body(tenant.namespace, source_repository_ref="refs/heads/evil")),
                   400, "contradicts the OIDC token", "refs/tags/v1.2.3")
    assert_problem(post(dict(good, provenance={"bogus": "x"})), 400, "Unknown provenance")
    assert_problem(post(dict(good, csr=None)), 422)
    nothing_stored(service, tenant)
