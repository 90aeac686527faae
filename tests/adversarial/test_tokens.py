"""Hostile bearer tokens: every one is a 401/413 problem document, and nothing is stored.

tests/integration/test_refusals.py already covers alg none, HS256 key confusion, expired,
not yet valid, wrong audience, a look-alike issuer, a malformed token, an unknown key and a
missing ``sub`` with tokens made at run time; here are the asset files (real tokens, fixed)
and the cases it does not cover.
"""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signer.service.auth import MAX_TOKEN_BYTES
from tests.adversarial.builders import (
    assert_problem,
    asset_text,
    assets,
    reencode,
    request_cert,
    stored,
    token_with_header,
)
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant

pytestmark = pytest.mark.integration


def _phrase(asset: str) -> str:
    if asset.startswith(("token-alg-", "token-no-alg", "token-hs")):
        return "only asymmetric signatures"
    if asset.startswith("token-lookalike-issuer"):
        return "not trusted by any namespace policy"
    return "well-formed JWT"


@pytest.mark.parametrize("asset", assets("token-*"))
def test_token_assets_are_refused(service: Service, tenant: Tenant, asset: str) -> None:
    before = stored(service, tenant.namespace)
    response = request_cert(service, asset_text(asset).strip(), tenant.namespace)
    assert_problem(response, 401, _phrase(asset))
    assert response.headers["www-authenticate"] == "Bearer"
    assert stored(service, tenant.namespace) == before


def _now() -> int:
    return int(time.time())


# (label, token maker, status, phrase): made at test time from the session's test issuer.
RUNTIME_TOKENS = [
    ("missing iss", lambda i: i.token(iss=None), 401, "not trusted"),
    ("missing aud", lambda i: i.token(aud=None), 401, "'aud'"),
    ("missing exp", lambda i: i.token(exp=None), 401, "'exp'"),
    ("missing iat", lambda i: i.token(iat=None), 401, "'iat'"),
    ("aud list without ours", lambda i: i.token(aud=["sigstore", "other"]), 401, "audience"),
    ("exp not a number", lambda i: i.token(exp="tomorrow"), 401, "verification"),
    ("iat ten minutes ahead", lambda i: i.token(iat=_now() + 600, nbf=None), 401, ""),
    ("unknown kid, real key", lambda i: token_with_header(
        i, i.key, "RS256", {"kid": "rotated-away"}), 401, "signing key"),
    ("no kid", lambda i: jwt.encode(i.claims(), i.key, algorithm="RS256"), 401, ""),
    ("jku pointing at the attacker's JWKS", lambda i: token_with_header(
        i, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256",
        {"kid": i.kid, "jku": "http://127.0.0.1:9/jwks.json"}), 401, ""),
    ("claims edited after signing", lambda i: reencode(
        i.token(), claims=i.claims(repository_owner="acme", sub="repo:acme/other:ref:x")),
     401, "verification"),
    ("header alg swapped to PS256", lambda i: reencode(
        i.token(), header={"alg": "PS256", "kid": i.kid, "typ": "JWT"}), 401, ""),
    ("one byte over the size limit", lambda i: "x" * (MAX_TOKEN_BYTES + 1), 413, "limit"),
    ("a megabyte", lambda i: "x" * (1024 * 1024), 413, "limit"),
]


@pytest.mark.parametrize(("label", "make", "status", "phrase"), RUNTIME_TOKENS,
                         ids=[c[0] for c in RUNTIME_TOKENS])
def test_runtime_tokens_are_refused(service: Service, issuer: FakeGitHubIssuer, tenant: Tenant,
                                    label: str, make, status: int, phrase: str) -> None:
    before = stored(service, tenant.namespace)
    response = request_cert(service, make(issuer), tenant.namespace)
    assert_problem(response, status, *([phrase] if phrase else []))
    assert stored(service, tenant.namespace) == before


def test_garbage_at_the_size_limit_is_a_401_not_a_413(service: Service, tenant: Tenant) -> None:
    response = request_cert(service, "x" * MAX_TOKEN_BYTES, tenant.namespace)
    assert_problem(response, 401, "well-formed JWT")


def test_a_valid_token_is_accepted(service: Service, issuer: FakeGitHubIssuer, tenant: Tenant
                                   ) -> None:
    """The control: the same request with the issuer's own token gets a certificate."""
    assert request_cert(service, issuer.token(), tenant.namespace).status_code == 200


# Claims a trusted issuer may legitimately put in a token, that the certificate and the
# database must survive: the answer is a certificate or a 4xx, never a 500.
ODD_CLAIMS = [
    ("non-ASCII subject", {"sub": "repo:acme/app:ref:refs/heads/caf\u00e9"}, "both",
     "ca.issue passes the identity to x509.UniformResourceIdentifier, which raises ValueError "
     "for non-ASCII (an IRI): 500. Refuse it as 4xx in auth (or IDNA/percent-encode it)."),
    ("2,000-character subject", {"sub": "repo:acme/" + "a" * 2000}, "postgresql",
     "certificates.identity is VARCHAR(1024): PostgreSQL raises StringDataRightTruncation, a "
     "500. Bound the identity (and other claims that reach VARCHAR columns) in auth: 4xx."),
    ("NUL in a claim", {"ref": "refs/heads/\x00main",
                        "sub": "repo:acme/app:ref:refs/heads/\x00main"}, "postgresql",
     "PostgreSQL text cannot hold NUL: psycopg DataError, a 500. Refuse claims with control "
     "characters in auth (AuthenticationError)."),
]


@pytest.mark.parametrize(("label", "claims", "broken_on", "bug"), ODD_CLAIMS,
                         ids=[c[0] for c in ODD_CLAIMS])
def test_odd_claims_never_cause_a_server_error(
    service: Service, issuer: FakeGitHubIssuer, tenant: Tenant,
    request: pytest.FixtureRequest, label: str, claims: dict, broken_on: str, bug: str,
) -> None:
    response = request_cert(service, issuer.token(**claims), tenant.namespace)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_problem(response, response.status_code)


def test_alg_that_does_not_fit_the_published_key(service: Service, issuer: FakeGitHubIssuer,
                                                  tenant: Tenant) -> None:
    token = token_with_header(issuer, ec.generate_private_key(ec.SECP256R1()), "ES256",
                              {"kid": issuer.kid})
    assert_problem(request_cert(service, token, tenant.namespace), 401)
