"""The audit log: every kind of decision, through a real service, leaves one line.

A service runs with ``--audit-log FILE``; ``server init``, ``rotate-key`` and
``rotate-admin-key`` write to the same file. The test issues, stores, revokes, refuses,
changes admin state and rotates a key, then reads the file: one line per decision with its
fields, the request id of each refusal's problem document finds its line, and no credential
is in it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import softhsm
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import SIGNER, Service, clean_env, database, init

pytestmark = pytest.mark.integration

DIGEST = hashlib.sha256(b"audited image").hexdigest()
NAME = f"ghcr.io/acme/app@sha256:{DIGEST}"
COMMON = {"time", "event", "request_id", "principal"}


def read(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines]


def only(lines: list[dict[str, Any]], event: str, **fields: Any) -> dict[str, Any]:
    found = [line for line in lines if line["event"] == event
             and all(line.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, (event, fields, found)
    return found[0]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([SIGNER, *args], capture_output=True, text=True, env=clean_env(),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_every_decision_leaves_one_line(issuer: FakeGitHubIssuer, backend: str,
                                        tmp_path: Path) -> None:
    audit_log = tmp_path / "audit.jsonl"
    data = tmp_path / "data"
    with database(backend) as url:
        db = ["--database-url", url] if url else []
        admin_key = init(data, url, SIGNER_AUDIT_LOG=str(audit_log))  # the variable works too
        service = Service(data, admin_key, issuer.url, database_url=url,
                          extra_args=["--audit-log", str(audit_log)])
        service.start()  # declares the fake issuer: an admin change
        try:
            credentials = _decide_everything(service, issuer)
        finally:
            service.stop()
        run("server", "rotate-key", "tsa", "--data-dir", str(data), *db,
            "--audit-log", str(audit_log))
        new_admin = run("server", "rotate-admin-key", "--data-dir", str(data), *db,
                        "--audit-log", str(audit_log)).stdout.strip()
    lines = read(audit_log)
    for line in lines:  # the fields every line has
        assert set(line) >= COMMON, line
        at = datetime.fromisoformat(line["time"])
        assert line["time"].endswith("Z") and at.utcoffset() == timedelta(0), line

    refusals = credentials.pop("refusals")
    tenant_ns, key_identity = credentials["namespace"], credentials["key_identity"]
    admin = "apikey:*/admin"

    made = only(lines, "admin_change", action="admin_key.create")
    assert made["principal"].startswith("local:") and made["request_id"] is None
    declared = only(lines, "admin_change", action="issuer.add")
    assert declared["principal"] == admin and declared["target"]["url"] == issuer.url
    only(lines, "admin_change", action="namespace.create", namespace=tenant_ns)
    policy = only(lines, "admin_change", action="policy.add", namespace=tenant_ns)
    assert policy["target"]["claims"] == {"repository_owner": "acme"}
    assert policy["target"]["permissions"] == ["revoke", "sign", "verify"]
    created = only(lines, "admin_change", action="api_key.create", namespace=tenant_ns)
    assert created["target"]["name"] == "ci" and "token" not in created["target"]
    only(lines, "admin_change", action="api_key.revoke", namespace=tenant_ns)
    only(lines, "admin_change", action="policy.remove", namespace=tenant_ns)
    only(lines, "admin_change", action="issuer.remove")

    by_token = only(lines, "certificate_issued", provenance_source="token")
    assert by_token["identity"] == "repo:acme/app:ref:refs/tags/v1.2.3"
    assert by_token["principal"] == by_token["identity"]
    assert by_token["principal_issuer"] == by_token["issuer"] == issuer.url
    assert by_token["namespace"] == tenant_ns and int(by_token["serial"], 16) > 0
    lived = (datetime.fromisoformat(by_token["not_after"])
             - datetime.fromisoformat(by_token["not_before"]))
    assert lived == timedelta(minutes=5)
    by_key = only(lines, "certificate_issued", provenance_source="declared")
    assert by_key["identity"] == key_identity == by_key["principal"]
    assert by_key["issuer"] == f"{service.url}/auth"

    stored = [line for line in lines if line["event"] == "entry_stored"]
    assert len(stored) == 2, stored
    assert {s["entry_id"] for s in stored} == set(credentials["signature_ids"])
    for entry in stored:
        assert entry["kind"] == "signature" and entry["namespace"] == tenant_ns
        assert entry["name"] == "ghcr.io/acme/app" and entry["digest"] == DIGEST
        assert isinstance(entry["log_index"], int)

    revoked = only(lines, "revoked")
    assert revoked["principal"] == key_identity
    assert (revoked["name"], revoked["source_repository_ref"], revoked["count"],
            revoked["reason"]) == ("ghcr.io/acme/app", "refs/heads/main", 1, "leaked key")
    assert isinstance(revoked["log_index"], int)

    # Each refusal the user saw: its request id finds exactly its line.
    for problem, who, check in refusals:
        line = only(lines, "refused", request_id=problem["request_id"])
        assert (line["principal"], line["check"]) == (who, check), line
        assert (line["status"], line["title"], line["detail"]) == (
            problem["status"], problem["title"], problem["detail"])
        assert line["method"] and line["path"].startswith("/v1/")

    page = only(lines, "refused", path="/ui/sign-in")
    assert (page["principal"], page["check"], page["status"]) == (
        "anonymous", "authentication", 401)

    rotated = only(lines, "key_rotated")
    assert rotated["kind"] == "tsa" and rotated["principal"].startswith("local:")
    retired, active = rotated["retired_key"], rotated["active_key"]
    if softhsm.token_keys():  # where the key store says a key is: pkcs11:<label>
        assert retired.startswith("pkcs11:") and retired.endswith("tsa"), retired
        assert active.startswith(retired + "-"), active
    else:
        assert retired == "tsa.key" and active.startswith("tsa-"), (retired, active)
    assert rotated["request_id"] is None
    assert len(only(lines, "admin_change", action="admin_key.rotate")["target"]["revoked"]) == 1

    text = audit_log.read_text()
    for secret in [admin_key, new_admin, *credentials["secrets"]]:
        assert secret not in text
        if secret.startswith("sgk_"):  # an API key's secret part, which may hold '_'
            assert secret.split("_", 2)[2] not in text
        else:  # a token's signature
            assert secret.split(".")[-1] not in text


def _decide_everything(service: Service, issuer: FakeGitHubIssuer) -> dict[str, Any]:
    tenant = service.tenant()
    ns = tenant.namespace
    key_identity = f"apikey:{ns}/ci"
    env = {"SIGNER_API_KEY": tenant.api_key, "SIGNER_NAMESPACE": ns}
    signed = service.cli("artifact", "sign", "--name", NAME, "--source-repository-ref",
                         "refs/heads/main", env=env, cwd=service.data_dir.parent)
    assert signed.returncode == 0, signed.stderr
    by_token = service.cli("artifact", "sign", "--name", NAME, "--enable-github-action-token",
                           "--output", "json", cwd=service.data_dir.parent,
                           env={**issuer.runner_env(), "SIGNER_NAMESPACE": ns})
    assert by_token.returncode == 0, by_token.stderr
    revoked = service.cli("artifact", "revoke-signature", "--name", NAME,
                          "--source-repository-ref", "refs/heads/main", "--reason",
                          "leaked key", env=env)
    assert revoked.returncode == 0, revoked.stderr

    refusals = []
    # Authenticated, refused by the namespace check: the key's identity, 403.
    other = service.post("/v1/certificates", tenant.api_key,
                         json={"namespace": "someone-else", "csr": "x"})
    refusals.append((_problem(other, 403), key_identity, "permission"))
    # No credentials: anonymous, 401; a proxy's request id is kept.
    anonymous = service.post("/v1/certificates", headers={"X-Request-Id": "proxy-req-0001"},
                             json={"namespace": ns, "csr": "x"})
    assert _problem(anonymous, 401)["request_id"] == "proxy-req-0001"
    refusals.append((_problem(anonymous, 401), "anonymous", "authentication"))
    # A token whose signature was tampered with: anonymous (it proved nothing), 401.
    token = issuer.token()
    forged = service.post("/v1/certificates", token[:-4] + "AAAA",
                          json={"namespace": ns, "csr": "x"})
    refusals.append((_problem(forged, 401), "anonymous", "authentication"))
    # Authenticated, but the body does not fit the schema: 422.
    invalid = service.post("/v1/revocations", tenant.api_key, json={"namespace": ns})
    refusals.append((_problem(invalid, 422), key_identity, "schema"))

    # The page's sign-in with a key that is none: anonymous, 401, at /ui/sign-in.
    browser = requests.Session()
    form = browser.get(f"{service.url}/ui/sign-in", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    page = browser.post(f"{service.url}/ui/sign-in", timeout=30, data={
        "api_key": "sgk_0000000000000000_bogus", "csrf_token": csrf.group(1)})
    assert page.status_code == 401 and page.headers["X-Request-Id"]

    admin = service.admin()
    policies = admin.request("GET", f"/v1/namespaces/{ns}/policies")["policies"]
    admin.request("DELETE", f"/v1/namespaces/{ns}/policies/{policies[0]['id']}")
    keys = admin.request("GET", f"/v1/namespaces/{ns}/api-keys")["api_keys"]
    admin.request("DELETE", f"/v1/namespaces/{ns}/api-keys/{keys[0]['id']}")
    requests.delete(f"{service.url}/v1/issuers", params={"url": issuer.url}, timeout=30,
                    headers={"Authorization": f"Bearer {service.admin_key}"}
                    ).raise_for_status()
    return {"namespace": ns, "key_identity": key_identity, "refusals": refusals,
            "signature_ids": [signed.stdout.strip(), json.loads(by_token.stdout)["id"]],
            "secrets": [tenant.api_key, token]}


def _problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["request_id"] == response.headers["X-Request-Id"]
    return body


def test_lines_of_concurrent_workers_do_not_interleave(issuer: FakeGitHubIssuer,
                                                       tmp_path: Path) -> None:
    """Two workers append to one file at once: every line whole (one O_APPEND write each)."""
    audit_log = tmp_path / "audit.jsonl"
    data = tmp_path / "data"
    service = Service(data, init(data), issuer.url, workers=2, issuer_kind=None,
                      extra_args=["--audit-log", str(audit_log)])
    service.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: service.post(
                "/v1/certificates", f"sgk_{i:016x}_{'A' * 43}",
                json={"namespace": "ns", "csr": "x"}), range(300)))
    finally:
        service.stop()
    assert {a.status_code for a in answers} == {401}
    ids = {a.json()["request_id"] for a in answers}
    lines = read(audit_log)  # raises if any line is torn
    refused = [line for line in lines if line["event"] == "refused"]
    assert {line["request_id"] for line in refused} == ids and len(refused) == 300
