"""Every refusal is a 4xx problem document that says what was wrong and what to do,
and leaves nothing behind."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant

pytestmark = pytest.mark.integration

DIGEST = hashlib.sha256(b"refusals").hexdigest()
NAME = f"ghcr.io/acme/app@sha256:{DIGEST}"


def csr_pem(key: object | None = None) -> tuple[object, str]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, algorithm)  # type: ignore[arg-type]
    return key, csr.public_bytes(Encoding.PEM).decode()


def assert_problem(response, status: int, *phrases: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"]
    for phrase in phrases:
        assert phrase in body["detail"], body["detail"]
    return body


def request_cert(service: Service, token: str, namespace: str, csr: str | None = None,
                 **provenance: str):
    return service.post("/v1/certificates", token, json={
        "namespace": namespace, "csr": csr or csr_pem()[1], "provenance": provenance})


def nothing_stored(service: Service, tenant: Tenant) -> None:
    listed = service.get("/v1/signatures", tenant.api_key, params={"namespace": tenant.namespace})
    assert listed.json()["signatures"] == []


@pytest.mark.parametrize(("label", "make", "phrase"), [
    ("unsigned alg none", lambda i: jwt.encode(i.claims(), None, algorithm="none"), "'none'"),
    ("HS256 with the RSA public key", lambda i: _hs256_confused(i), "'HS256'"),
    ("expired", lambda i: i.token(exp=int(time.time()) - 600, iat=int(time.time()) - 900,
                                  nbf=int(time.time()) - 900), "expired"),
    ("not yet valid", lambda i: i.token(nbf=int(time.time()) + 600, iat=int(time.time()) + 600),
     "not valid yet"),
    ("wrong audience", lambda i: i.token(aud="sigstore"), "audience"),
    ("unknown issuer", lambda i: i.token(iss="https://token.actions.githubusercontent.com.evil"),
     "not trusted"),
    ("malformed", lambda i: "not-a-jwt", "well-formed JWT"),
    ("unknown key", lambda i: _other_key_token(i), "signing key"),
    ("missing sub", lambda i: i.token(sub=None), "'sub'"),
])
def test_bad_tokens_are_refused(service: Service, issuer: FakeGitHubIssuer, tenant: Tenant,
                                label: str, make, phrase: str) -> None:
    response = request_cert(service, make(issuer), tenant.namespace)
    assert_problem(response, 401, phrase)
    nothing_stored(service, tenant)


def _hs256_confused(issuer: FakeGitHubIssuer) -> str:
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = base64.urlsafe_b64encode(json.dumps(
        {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(issuer.claims()).encode()).rstrip(b"=")
    import hmac

    sig = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    return b".".join([header, payload, base64.urlsafe_b64encode(sig).rstrip(b"=")]).decode()


def _other_key_token(issuer: FakeGitHubIssuer) -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(issuer.claims(), other, algorithm="RS256", headers={"kid": "unknown"})


def test_no_policy_no_permission(service: Service, issuer: FakeGitHubIssuer) -> None:
    other_owner = service.tenant(owner="someone-else")
    response = request_cert(service, issuer.token(), other_owner.namespace)
    assert_problem(response, 403, "may not sign", "signer policy add")
    look_alike = service.tenant(owner="acme-evil")
    assert_problem(request_cert(service, issuer.token(), look_alike.namespace), 403)
    verify_only = service.tenant(permissions="verify")
    assert_problem(request_cert(service, verify_only.api_key, verify_only.namespace), 403,
                   "may not sign")


def test_api_key_of_one_namespace_is_refused_in_another(service: Service) -> None:
    a, b = service.tenant(), service.tenant()
    assert_problem(request_cert(service, a.api_key, b.namespace), 403)
    listed = service.get("/v1/signatures", a.api_key, params={"namespace": b.namespace})
    assert_problem(listed, 403)


def test_unknown_and_revoked_api_keys(service: Service, tenant: Tenant) -> None:
    assert_problem(request_cert(service, "sgk_0000_bogus", tenant.namespace), 401, "unknown")
    keys = service.admin().request("GET", f"/v1/namespaces/{tenant.namespace}/api-keys")
    key_id = keys["api_keys"][0]["id"]
    service.admin().request("DELETE", f"/v1/namespaces/{tenant.namespace}/api-keys/{key_id}")
    assert_problem(request_cert(service, tenant.api_key, tenant.namespace), 401, "revoked")


@pytest.mark.parametrize(("label", "key", "phrase"), [
    ("RSA", rsa.generate_private_key(public_exponent=65537, key_size=2048), "only ECDSA P-256"),
    ("P-384", ec.generate_private_key(ec.SECP384R1()), "secp384r1"),
    ("Ed25519", ed25519.Ed25519PrivateKey.generate(), "only ECDSA P-256"),
])
def test_csr_key_types_are_refused(service: Service, tenant: Tenant, label: str, key: object,
                                   phrase: str) -> None:
    _, pem = csr_pem(key)
    assert_problem(request_cert(service, tenant.api_key, tenant.namespace, pem), 400, phrase)


def test_csr_with_bad_signature_or_extensions(service: Service, tenant: Tenant) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    der = bytearray(csr.public_bytes(Encoding.DER))
    der[-1] ^= 0x01
    bad = "-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)).decode() + \
        "-----END CERTIFICATE REQUEST-----\n"
    assert_problem(request_cert(service, tenant.api_key, tenant.namespace, bad), 400)
    with_san = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).add_extension(
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier("https://evil")]), False
    ).sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()
    assert_problem(request_cert(service, tenant.api_key, tenant.namespace, with_san), 400,
                   "extensions")
    assert_problem(request_cert(service, tenant.api_key, tenant.namespace, "garbage"), 400,
                   "PKCS#10")


def _signed_upload(service: Service, tenant: Tenant, name: str = NAME) -> dict:
    key, pem = csr_pem()
    chain = request_cert(service, tenant.api_key, tenant.namespace, pem).json()
    digest = bytes.fromhex(name.rsplit(":", 1)[1]) if "@sha256:" in name else bytes(32)
    sig = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))  # type: ignore[union-attr]
    return {"namespace": tenant.namespace, "name": name,
            "certificate": chain["certificate_chain"][0],
            "signature": base64.b64encode(sig).decode()}


@pytest.mark.parametrize(("name", "phrase"), [
    ("ghcr.io/acme/app:v1", "has no digest"),
    ("ghcr.io/acme/app@sha256:" + "a" * 63, "64 lowercase"),
    ("ghcr.io/acme/app@sha256:" + "A" * 64, "64 lowercase"),
    ("ghcr.io/acme/app@sha512:" + "a" * 128, "not a sha256"),
    ("ghcr.io/acme/\x07app@sha256:" + "a" * 64, "not allowed"),
    ("../../etc/passwd@sha256:" + "a" * 64, "not allowed"),
])
def test_malformed_names_are_refused(service: Service, tenant: Tenant, name: str, phrase: str
                                     ) -> None:
    body = _signed_upload(service, tenant)
    body["name"] = name
    assert_problem(service.post("/v1/signatures", tenant.api_key, json=body), 400, phrase)
    nothing_stored(service, tenant)


def test_tampered_signature_and_certificate(service: Service, tenant: Tenant) -> None:
    body = _signed_upload(service, tenant)
    sig = bytearray(base64.b64decode(body["signature"]))
    sig[-1] ^= 0x01
    tampered = dict(body, signature=base64.b64encode(bytes(sig)).decode())
    assert_problem(service.post("/v1/signatures", tenant.api_key, json=tampered), 400,
                   "does not verify")
    other_digest = dict(body, name="ghcr.io/acme/app@sha256:" + "b" * 64)
    assert_problem(service.post("/v1/signatures", tenant.api_key, json=other_digest), 400,
                   "does not verify")
    # A certificate from a foreign CA with the same shape.
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    original = x509.load_pem_x509_certificate(body["certificate"].encode())
    builder = x509.CertificateBuilder().subject_name(original.subject).issuer_name(
        original.issuer).public_key(original.public_key()).serial_number(1).not_valid_before(
        original.not_valid_before_utc).not_valid_after(original.not_valid_after_utc)
    for ext in original.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    forged = builder.sign(foreign_key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()
    assert_problem(service.post("/v1/signatures", tenant.api_key,
                                json=dict(body, certificate=forged)), 400, "not issued by")
    assert_problem(service.post("/v1/signatures", tenant.api_key,
                                json=dict(body, certificate="junk")), 400, "PEM")
    nothing_stored(service, tenant)


def test_certificate_of_another_principal_is_refused(service: Service, issuer: FakeGitHubIssuer,
                                                     tenant: Tenant) -> None:
    body = _signed_upload(service, tenant)
    other = service.tenant()
    moved = dict(body, namespace=other.namespace)
    assert_problem(service.post("/v1/signatures", other.api_key, json=moved), 403,
                   "another identity or namespace")


def test_cli_exit_codes(service: Service, tenant: Tenant, tmp_path) -> None:
    env = {"SIGNER_NAMESPACE": tenant.namespace, "SIGNER_API_KEY": tenant.api_key}
    tag = service.cli("artifact", "sign", "--name", "ghcr.io/acme/app:latest", env=env)
    assert tag.returncode == 2 and "has no digest" in tag.stderr and "crane digest" in tag.stderr
    denied = service.cli("artifact", "sign", "--name", NAME, cwd=tmp_path,
                         env={**env, "SIGNER_API_KEY": "sgk_x_y"})
    assert denied.returncode == 3 and "unknown or revoked" in denied.stderr
    down = service.cli("artifact", "sign", "--name", NAME, cwd=tmp_path,
                       env={**env, "SIGNER_API": "http://127.0.0.1:9"})
    assert down.returncode == 4 and "cannot be reached" in down.stderr
    no_token = service.cli("artifact", "sign", "--name", NAME, "--enable-github-action-token",
                           cwd=tmp_path, env=env)
    assert no_token.returncode == 3 and "id-token: write" in no_token.stderr
    missing = service.cli("artifact", "verify", "--name", "ghcr.io/acme/app@sha256:" + "c" * 64,
                          "--certificate-oidc-issuer", "https://x", env=env)
    assert missing.returncode == 1 and "No signature" in missing.stderr
    assert "Traceback" not in tag.stderr + denied.stderr + down.stderr + missing.stderr


def test_problem_documents_for_schema_and_unknown_paths(service: Service, tenant: Tenant) -> None:
    assert_problem(service.post("/v1/signatures", tenant.api_key, json={"nope": 1}), 422,
                   "openapi.json")
    assert_problem(service.get("/v1/nothing-here"), 404)
    unauthenticated = service.post("/v1/certificates", json={})
    assert_problem(unauthenticated, 401, "Authorization")
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    big = service.post("/v1/signatures", tenant.api_key, data=b"x" * (2 * 1024 * 1024),
                       headers={"Content-Type": "application/json"})
    assert_problem(big, 413, "limit")
