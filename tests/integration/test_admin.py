"""Operators: init, keys on disk, passphrases, namespaces, policies, API keys."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import SIGNER, Service, clean_env, init
from tests.softhsm import file_keys_only

pytestmark = pytest.mark.integration


def test_keys_are_private_and_encrypted_with_a_passphrase(tmp_path: Path,
                                                          issuer: FakeGitHubIssuer) -> None:
    file_keys_only()
    data = tmp_path / "data"
    admin_key = init(data, SIGNER_CA_PASSPHRASE="correct horse")
    assert admin_key.startswith("sgk_")
    for name in ("root", "intermediate", "tsa"):
        key = data / "keys" / f"{name}.key"
        assert key.stat().st_mode & 0o777 == 0o600
        assert key.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # Without the passphrase the service refuses to start, and says why.
    svc = Service(data, admin_key, issuer.url)
    with pytest.raises(RuntimeError, match="SIGNER_CA_PASSPHRASE"):
        svc.start()
    svc.env = {"SIGNER_CA_PASSPHRASE": "wrong"}
    with pytest.raises(RuntimeError, match="wrong passphrase"):
        svc.start()
    svc.env = {"SIGNER_CA_PASSPHRASE": "correct horse"}
    svc.start()
    try:
        assert svc.get("/readyz").status_code == 200
    finally:
        svc.stop()
    # A second init never overwrites keys.
    again = subprocess.run([SIGNER, "server", "init", "--data-dir", str(data)],
                           capture_output=True, text=True, env=clean_env())
    assert again.returncode == 2 and "already initialized" in again.stderr


def test_plain_http_issuer_needs_the_insecure_option(service: Service) -> None:
    namespace = service.tenant().namespace
    refused = service.cli("policy", "add", "--namespace", namespace, "--issuer",
                          "http://127.0.0.1:1/other", "--claim", "repository_owner=acme",
                          "--permissions", "sign", env={"SIGNER_API_KEY": service.admin_key})
    assert refused.returncode == 2 and "--insecure-issuer" in refused.stderr
    https = service.cli("policy", "add", "--namespace", namespace, "--issuer",
                        "https://token.actions.githubusercontent.com", "--claim",
                        "repository=acme/app", "--permissions", "sign,revoke",
                        env={"SIGNER_API_KEY": service.admin_key})
    assert https.returncode == 0, https.stderr


def test_policy_and_api_key_lifecycle_through_the_cli(service: Service,
                                                      issuer: FakeGitHubIssuer) -> None:
    admin = {"SIGNER_API_KEY": service.admin_key}
    created = service.cli("namespace", "create", "team-a", env=admin)
    assert created.returncode == 0, created.stderr
    assert service.cli("namespace", "create", "team-a", env=admin).returncode == 2  # conflict
    bad_name = service.cli("namespace", "create", "Team A", env=admin)
    assert bad_name.returncode == 2 and "lowercase" in bad_name.stderr

    added = service.cli("policy", "add", "--namespace", "team-a", "--issuer", issuer.url,
                        "--claim", "repository=acme/app", "--permissions", "sign,verify",
                        "--output", "json", env=admin)
    policy = json.loads(added.stdout)
    assert policy["claims"] == {"repository": "acme/app"}
    listed = service.cli("policy", "list", "--namespace", "team-a", env=admin)
    assert policy["id"] in listed.stdout and "repository=acme/app" in listed.stdout

    token = issuer.token()
    cert_request = {"namespace": "team-a", "csr": "x", "provenance": {}}
    # The policy admits the token (the CSR is what is wrong now) ...
    assert service.post("/v1/certificates", token, json=cert_request).status_code == 400
    # ... another repository is not admitted ...
    other = issuer.token(repository="acme/other")
    assert service.post("/v1/certificates", other, json=cert_request).status_code == 403
    # ... and after removal nothing is.
    assert service.cli("policy", "remove", "--namespace", "team-a", policy["id"],
                       env=admin).returncode == 0
    refused = service.post("/v1/certificates", issuer.token(), json=cert_request)
    assert refused.status_code in (401, 403)
    # Nor the token admitted before (the service remembers it verified, not that it may).
    refused = service.post("/v1/certificates", token, json=cert_request)
    assert refused.status_code in (401, 403)

    bad_perm = service.cli("api-key", "create", "--namespace", "team-a", "--name", "x",
                           "--permissions", "sign,destroy", env=admin)
    assert bad_perm.returncode == 2 and "destroy" in bad_perm.stderr
    made = service.cli("api-key", "create", "--namespace", "team-a", "--name", "ns-admin",
                       "--permissions", "admin", "--output", "json", env=admin)
    key = json.loads(made.stdout)
    assert key["token"].startswith("sgk_")
    # A namespace admin manages its own namespace, not others, and cannot create namespaces.
    ns_admin = {"SIGNER_API_KEY": key["token"]}
    assert service.cli("api-key", "list", "--namespace", "team-a", env=ns_admin).returncode == 0
    assert service.cli("api-key", "list", "--namespace", service.tenant().namespace,
                       env=ns_admin).returncode == 3
    assert service.cli("namespace", "create", "team-b", env=ns_admin).returncode == 3
    listed_keys = service.cli("api-key", "list", "--namespace", "team-a", "--output", "json",
                              env=admin)
    assert key["token"] not in listed_keys.stdout  # the secret is shown once only
    assert service.cli("api-key", "revoke", "--namespace", "team-a", key["id"],
                       env=admin).returncode == 0
    assert service.cli("api-key", "list", "--namespace", "team-a",
                       env=ns_admin).returncode == 3
    # Only the hash is stored.
    secret = key["token"].split("_", 2)[2]
    stored = service.sql(f"SELECT secret_hash FROM api_keys WHERE id = '{key['id']}'")
    assert bytes(stored[0][0]) == hashlib.sha256(secret.encode()).digest()
    assert not any(secret in str(row) for row in service.sql("SELECT * FROM api_keys"))
