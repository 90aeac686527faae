"""Builders shared by the hardening tests: assets by name, hostile requests, and the checks
every refusal must pass (a 4xx problem document with an actionable detail, nothing stored).

Tokens that depend on the test issuer (its URL, keys and the clock) are made here at test
time; fixed objects live in tests/assets/ (see make_assets.py).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service

ASSETS = Path(__file__).resolve().parents[1] / "assets"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def asset_path(name: str) -> Path:
    path = ASSETS / name
    assert path.exists(), f"missing asset {name}: run tests/assets/make_assets.py"
    return path


def asset_text(name: str) -> str:
    return asset_path(name).read_text()


def assets(pattern: str) -> list[str]:
    return sorted(p.name for p in ASSETS.glob(pattern))


# -- responses ----------------------------------------------------------------------------------
def assert_problem(response: requests.Response, status: int, *phrases: str) -> dict[str, Any]:
    """An RFC 9457 document with this status, a title and a detail naming each phrase."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), response.headers
    body = response.json()
    assert body["status"] == status and body["title"], body
    assert len(body["detail"]) > 20, body  # a sentence, not a code
    for phrase in phrases:
        assert phrase in body["detail"], body["detail"]
    return body


def assert_refused(response: requests.Response, *phrases: str) -> dict[str, Any]:
    """Any 4xx problem document (the exact code is not what the case is about)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    return assert_problem(response, response.status_code, *phrases)


def backend_of(service: Service) -> str:
    """The store the service really runs on (a conftest may pin ``backend`` for its tests)."""
    return "postgresql" if service.database_url else "sqlite"


# -- what a namespace holds ---------------------------------------------------------------------
STORED_TABLES = ("certificates", "signatures", "revocations", "artifacts")


def stored(service: Service, namespace: str) -> dict[str, int]:
    """Row counts of everything a request could leave behind in a namespace."""
    assert namespace.replace("-", "").isalnum()  # it goes into the query text
    counts = ", ".join(f"(SELECT count(*) FROM {table} WHERE namespace = '{namespace}')"
                       for table in STORED_TABLES)
    (row,) = service.sql(f"SELECT {counts}")
    return dict(zip(STORED_TABLES, map(int, row), strict=True))


# -- CSRs, certificates, signatures -------------------------------------------------------------
def new_csr(key: ec.EllipticCurvePrivateKey | None = None
            ) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    return key, csr.public_bytes(Encoding.PEM).decode()


def request_cert(service: Service, token: str, namespace: str, csr: str | None = None,
                 **provenance: str) -> requests.Response:
    return service.post("/v1/certificates", token, json={
        "namespace": namespace, "csr": csr if csr is not None else new_csr()[1],
        "provenance": provenance})


def sign_digest(key: ec.EllipticCurvePrivateKey, digest_hex: str) -> str:
    signature = key.sign(bytes.fromhex(digest_hex), ec.ECDSA(Prehashed(hashes.SHA256())))
    return base64.b64encode(signature).decode()


def signature_request(service: Service, token: str, namespace: str, name: str
                      ) -> tuple[dict[str, str], ec.EllipticCurvePrivateKey]:
    """A valid POST /v1/signatures body for name@sha256:… (fresh key and certificate)."""
    key, csr = new_csr()
    issued = request_cert(service, token, namespace, csr)
    assert issued.status_code == 200, issued.text
    digest = name.rsplit("@sha256:", 1)[1]
    return {"namespace": namespace, "name": name,
            "certificate": issued.json()["certificate_chain"][0],
            "signature": sign_digest(key, digest)}, key


# -- tokens -------------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_with_header(issuer: FakeGitHubIssuer, key: Any, algorithm: str,
                      header: dict[str, Any], **claims: Any) -> str:
    """A token for the test issuer's claims, signed by ``key`` with a chosen header."""
    return jwt.encode(issuer.claims(**claims), key, algorithm=algorithm, headers=header)


def reencode(token: str, header: dict[str, Any] | None = None,
             claims: dict[str, Any] | None = None) -> str:
    """The same signature under an edited header or payload (a tampered token)."""
    head, payload, signature = token.split(".")
    if header is not None:
        head = b64url(json.dumps(header).encode())
    if claims is not None:
        payload = b64url(json.dumps(claims).encode())
    return f"{head}.{payload}.{signature}"
