"""Tenant isolation: two namespaces, and nothing of one is readable, writable or revocable
from the other, through the API, the CLI or the page; policies match claims exactly.

Each check is made in both directions (acme → beta and beta → acme).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.adversarial.builders import (
    assert_problem,
    request_cert,
    signature_request,
    stored,
)
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service

pytestmark = pytest.mark.integration

REF = "refs/heads/main"


@dataclass
class Side:
    namespace: str
    owner: str
    key: str  # sign, verify, revoke
    admin_key: str  # the namespace's admin
    key_id: str
    policy_id: str
    name: str  # name@sha256:… signed here
    signature_id: str
    artifact_id: str


def _side(service: Service, issuer: FakeGitHubIssuer, owner: str) -> Side:
    admin = service.admin()
    namespace = f"iso-{owner}-{uuid.uuid4().hex[:6]}"
    admin.request("POST", "/v1/namespaces", json={"name": namespace})
    policy = admin.request("POST", f"/v1/namespaces/{namespace}/policies", json={
        "issuer": service.issuer_url, "claims": {"repository_owner": owner},
        "permissions": ["sign", "verify", "revoke"]})
    key = admin.request("POST", f"/v1/namespaces/{namespace}/api-keys", json={
        "name": "ci", "permissions": ["sign", "verify", "revoke"]})
    ns_admin = admin.request("POST", f"/v1/namespaces/{namespace}/api-keys", json={
        "name": "ns-admin", "permissions": ["admin"]})
    digest = hashlib.sha256(f"{owner}-{namespace}".encode()).hexdigest()
    name = f"ghcr.io/{owner}/{namespace}-image@sha256:{digest}"
    token = issuer.token(repository=f"{owner}/app", repository_owner=owner, ref=REF)
    body, _ = signature_request(service, token, namespace, name)
    created = service.post("/v1/signatures", token, json=body)
    assert created.status_code == 201, created.text
    artifact_id = service.sql(f"SELECT id FROM artifacts WHERE namespace = '{namespace}'")[0][0]
    return Side(namespace, owner, key["token"], ns_admin["token"], key["id"], policy["id"],
                name, created.json()["id"], artifact_id)


@pytest.fixture(scope="module")
def tenants(service: Service, issuer: FakeGitHubIssuer) -> dict[str, Side]:
    return {owner: _side(service, issuer, owner) for owner in ("acme", "beta")}


@pytest.fixture
def sides(tenants: dict[str, Side], request: pytest.FixtureRequest) -> tuple[Side, Side]:
    me, them = request.param.split("->")
    return tenants[me], tenants[them]


both_directions = pytest.mark.parametrize("sides", ["acme->beta", "beta->acme"],
                                          indirect=True)


@both_directions
def test_signing_and_uploading_across_namespaces(service: Service, issuer: FakeGitHubIssuer,
                                                 sides: tuple[Side, Side]) -> None:
    me, them = sides
    before = stored(service, them.namespace)
    my_token = issuer.token(repository=f"{me.owner}/app", repository_owner=me.owner)
    for credential in (me.key, me.admin_key, my_token):
        assert_problem(request_cert(service, credential, them.namespace), 403)
    # My valid certificate and signature, uploaded into their namespace.
    digest = hashlib.sha256(b"cross").hexdigest()
    body, _ = signature_request(service, me.key, me.namespace,
                                f"ghcr.io/{me.owner}/x@sha256:{digest}")
    assert_problem(service.post("/v1/signatures", me.key,
                                json=dict(body, namespace=them.namespace)), 403)
    # ... and by them, with my certificate: the certificate names my namespace and identity.
    assert_problem(service.post("/v1/signatures", them.key,
                                json=dict(body, namespace=them.namespace)), 403,
                   "another identity or namespace")
    assert stored(service, them.namespace) == before


@both_directions
def test_reading_across_namespaces(service: Service, sides: tuple[Side, Side]) -> None:
    me, them = sides
    get = service.get
    assert_problem(get("/v1/signatures", me.key, params={"namespace": them.namespace}), 403)
    assert_problem(get(f"/v1/signatures/{them.signature_id}", me.key,
                       params={"namespace": them.namespace}), 403)
    # Through my own namespace their ids and names do not exist (no existence leak).
    assert_problem(get(f"/v1/signatures/{them.signature_id}", me.key,
                       params={"namespace": me.namespace}), 404)
    assert_problem(get("/v1/entries", me.key,
                       params={"namespace": them.namespace, "name": them.name}), 403)
    assert_problem(get("/v1/entries", me.key,
                       params={"namespace": me.namespace, "name": them.name}), 404)
    listed = get("/v1/signatures", me.key, params={"namespace": me.namespace}).json()
    assert [s["id"] for s in listed["signatures"]] == [me.signature_id]
    # The denial reads the same whether or not the namespace exists.
    missing = get("/v1/signatures", me.key, params={"namespace": "no-such-namespace"})
    present = get("/v1/signatures", me.key, params={"namespace": them.namespace})
    assert missing.status_code == present.status_code == 403
    assert missing.json()["detail"].replace("no-such-namespace", "X") == \
        present.json()["detail"].replace(them.namespace, "X")


@both_directions
def test_cli_verify_and_show_across_namespaces(service: Service, sides: tuple[Side, Side],
                                               tmp_path) -> None:
    me, them = sides
    mine = {"SIGNER_API_KEY": me.key, "SIGNER_NAMESPACE": me.namespace}
    verify = service.cli("artifact", "verify", "--name", them.name,
                         "--certificate-oidc-issuer", service.issuer_url, env=mine, cwd=tmp_path)
    assert verify.returncode == 1 and "No signature" in verify.stderr
    show = service.cli("artifact", "show", them.signature_id, env=mine)
    assert show.returncode == 1 and them.name not in show.stdout + show.stderr


@both_directions
def test_revoking_across_namespaces(service: Service, sides: tuple[Side, Side]) -> None:
    me, them = sides
    name = them.name.split("@")[0]
    revocation = {"name": name, "source_repository_ref": REF, "reason": "hostile"}
    for credential in (me.key, me.admin_key):
        assert_problem(service.post("/v1/revocations", credential,
                                    json={**revocation, "namespace": them.namespace}), 403)
    # In my namespace the same name and ref match nothing of theirs.
    mine = service.post("/v1/revocations", me.key, json={**revocation,
                                                         "namespace": me.namespace})
    assert mine.status_code == 200 and mine.json()["revoked_count"] == 0
    theirs = service.get(f"/v1/signatures/{them.signature_id}", them.key,
                         params={"namespace": them.namespace}).json()
    assert theirs["revoked"] is False


@both_directions
def test_api_keys_and_policies_across_namespaces(service: Service,
                                                 sides: tuple[Side, Side]) -> None:
    me, them = sides
    admin, base = me.admin_key, f"/v1/namespaces/{them.namespace}"
    assert_problem(service.get(f"{base}/api-keys", admin), 403)
    assert_problem(service.post(f"{base}/api-keys", admin,
                                json={"name": "mine", "permissions": ["sign"]}), 403)
    assert_problem(requests.delete(f"{service.url}{base}/api-keys/{them.key_id}", timeout=30,
                                   headers={"Authorization": f"Bearer {admin}"}), 403)
    assert_problem(service.get(f"{base}/policies", admin), 403)
    assert_problem(service.post(f"{base}/policies", admin, json={
        "issuer": service.issuer_url, "claims": {"repository_owner": me.owner},
        "permissions": ["sign"]}), 403)
    assert_problem(requests.delete(f"{service.url}{base}/policies/{them.policy_id}",
                                   timeout=30, headers={"Authorization": f"Bearer {admin}"}),
                   403)
    # Their ids through my namespace's paths: not found, and untouched.
    mine = f"{service.url}/v1/namespaces/{me.namespace}"
    headers = {"Authorization": f"Bearer {admin}"}
    assert_problem(requests.delete(f"{mine}/api-keys/{them.key_id}", headers=headers,
                                   timeout=30), 404)
    assert_problem(requests.delete(f"{mine}/policies/{them.policy_id}", headers=headers,
                                   timeout=30), 404)
    assert service.get("/v1/signatures", them.key,
                       params={"namespace": them.namespace}).status_code == 200
    policies = service.admin().request("GET", f"{base}/policies")["policies"]
    assert [p["id"] for p in policies] == [them.policy_id]
    # A namespace admin cannot mint a key for the server, nor list namespaces.
    assert_problem(service.get("/v1/namespaces", admin), 403)


def _sign_in(service: Service, api_key: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{service.url}/ui/sign-in", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, form.text[:500]
    done = browser.post(f"{service.url}/ui/sign-in", timeout=30, allow_redirects=False, data={
        "api_key": api_key, "csrf_token": csrf.group(1), "next": "/ui/artifacts"})
    assert done.status_code == 303 and "signer_session" in browser.cookies, done.text[:500]
    return browser


@both_directions
def test_the_page_across_namespaces(service: Service, sides: tuple[Side, Side]) -> None:
    me, them = sides
    browser = _sign_in(service, me.key)
    page = browser.get(f"{service.url}/ui/artifacts", timeout=30)
    assert page.status_code == 200
    assert me.name.split("@")[0] in page.text and them.name.split("@")[0] not in page.text
    assert them.namespace not in page.text
    for path in (f"/ui/signatures/{them.signature_id}",
                 f"/ui/signatures/{them.signature_id}/bundle",
                 f"/ui/artifacts/{them.artifact_id}"):
        answer = browser.get(service.url + path, timeout=30)
        assert answer.status_code == 404, path
        assert them.name.split("@")[0] not in answer.text and them.namespace not in answer.text
    search = browser.get(f"{service.url}/ui/artifacts",
                         params={"q": them.name.split("@")[0]}, timeout=30)
    assert them.signature_id not in search.text and them.artifact_id not in search.text


# -- claims match exactly ------------------------------------------------------------------------
LOOK_ALIKE_OWNERS = ["acme-evil", "evil-acme", "ACME", "Acme", "acme ", " acme", "acm",
                     "acme/", "acme\u200b", "\u0430cme"]


@pytest.mark.parametrize("owner", LOOK_ALIKE_OWNERS, ids=[repr(o) for o in LOOK_ALIKE_OWNERS])
def test_a_policy_for_acme_admits_no_look_alike(service: Service, issuer: FakeGitHubIssuer,
                                                owner: str) -> None:
    tenant = service.tenant(owner="acme")
    token = issuer.token(repository=f"{owner}/app", repository_owner=owner)
    if owner.isascii() and owner.isprintable():
        assert_problem(request_cert(service, token, tenant.namespace), 403, "may not sign")
    else:  # look-alike and invisible characters are refused before any policy is consulted
        assert_problem(request_cert(service, token, tenant.namespace), 401)


@pytest.mark.parametrize("value", [["acme"], {"owner": "acme"}, True, 0])
def test_non_string_claims_never_match_a_string(service: Service, issuer: FakeGitHubIssuer,
                                                value: Any) -> None:
    tenant = service.tenant(owner="acme")
    token = issuer.token(repository_owner=value)
    assert_problem(request_cert(service, token, tenant.namespace), 403)


@pytest.mark.parametrize("repository", ["acme/app-evil", "acme/app/x", "acme/ap", "acme/App",
                                        "evil/acme/app"])
def test_a_repository_policy_is_exact(service: Service, issuer: FakeGitHubIssuer,
                                      repository: str) -> None:
    tenant = service.tenant(claims={"repository": "acme/app"})
    assert request_cert(service, issuer.token(), tenant.namespace).status_code == 200
    token = issuer.token(repository=repository, repository_owner="acme")
    assert_problem(request_cert(service, token, tenant.namespace), 403)


def test_a_policy_without_claims_is_refused(service: Service) -> None:
    namespace = service.tenant().namespace
    response = service.post(f"/v1/namespaces/{namespace}/policies", service.admin_key, json={
        "issuer": service.issuer_url, "claims": {}, "permissions": ["sign"]})
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("claims", [{"repository_owner": "acme\x00"}, {"repo\nsitory": "acme"},
                                    {"repository_owner": "acme\u202e"}])
def test_a_policy_with_control_characters_is_refused(service: Service,
                                                     claims: dict[str, str]) -> None:
    """No token can carry them (authentication refuses such claims), and they would be
    stored: 400 on both stores, nothing added."""
    namespace = service.tenant().namespace
    response = service.post(f"/v1/namespaces/{namespace}/policies", service.admin_key, json={
        "issuer": service.issuer_url, "claims": claims, "permissions": ["sign"]})
    assert_problem(response, 400, "holds control characters")
    listed = service.admin().request("GET", f"/v1/namespaces/{namespace}/policies")
    assert len(listed["policies"]) == 1, "only the tenant's own policy"
